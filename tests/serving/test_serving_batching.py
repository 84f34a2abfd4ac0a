"""The dynamic batcher merges concurrent requests, respects its budget, and isolates a failing request."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import async_client, data_uri, image_from, png_bytes

from uniembed import Item
from uniembed.errors import InputError
from uniembed.serving import ServerConfig, create_app
from uniembed.serving.batcher import PREPARE_TEXT_CHARS, prepared_ahead
from uniembed.serving.runner import ModelRunner

TEXTS = [f"request number {i} about {'cats' if i % 2 else 'trains'}" for i in range(12)]


class CountingRunner(ModelRunner):
    def __init__(self, model, fail_on: str | None = None) -> None:
        super().__init__(model)
        self.batch_sizes: list[int] = []
        self.fail_on = fail_on

    def encode(self, items):
        self.batch_sizes.append(len(items))
        for position, item in enumerate(items):
            if self.fail_on is not None and getattr(item, "item", item).text == self.fail_on:  # prepared items
                raise InputError("this item breaks the model", position=position)
        return super().encode(items)


async def _post_all(app, bodies):
    async with async_client(app) as client:
        return await asyncio.gather(*(client.post("/v1/embeddings", json=body) for body in bodies))


def _serve(model, runner, **options):
    config = ServerConfig(max_wait_ms=options.pop("max_wait_ms", 50), **options)
    return create_app(model, config, runner=runner)


def test_concurrent_requests_are_merged_and_equal_direct_encode(tiny_embedder):
    runner = CountingRunner(tiny_embedder)
    app = _serve(tiny_embedder, runner)
    responses = asyncio.run(_post_all(app, [{"input": [text]} for text in TEXTS]))
    got = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    assert sum(runner.batch_sizes) == len(TEXTS)
    assert len(runner.batch_sizes) < len(TEXTS) / 2, runner.batch_sizes  # merged, not one call per request
    np.testing.assert_allclose(got, tiny_embedder.encode(TEXTS), atol=1e-5)


def test_without_batching_each_request_is_its_own_model_call(tiny_embedder):
    runner = CountingRunner(tiny_embedder)
    app = _serve(tiny_embedder, runner, batching=False)
    responses = asyncio.run(_post_all(app, [{"input": [text]} for text in TEXTS[:6]]))
    assert all(r.status_code == 200 for r in responses)
    assert runner.batch_sizes == [1] * 6


def test_batches_respect_item_and_token_budgets(tiny_embedder):
    runner = CountingRunner(tiny_embedder)
    app = _serve(tiny_embedder, runner, max_batch_items=4)
    responses = asyncio.run(_post_all(app, [{"input": TEXTS[:7]}, {"input": TEXTS[7:]}]))
    assert [r.status_code for r in responses] == [200, 200]
    assert max(runner.batch_sizes) <= 4 and sum(runner.batch_sizes) == len(TEXTS)
    got = np.concatenate([[row["embedding"] for row in r.json()["data"]] for r in responses]).astype(np.float32)
    np.testing.assert_allclose(got, tiny_embedder.encode(TEXTS), atol=1e-5)

    image_item = {"text": "x", "image": data_uri(png_bytes())}
    cost = runner.cost(Item(text="x", image=image_from(png_bytes())))
    budget_runner = CountingRunner(tiny_embedder)
    budget_app = _serve(tiny_embedder, budget_runner, max_batch_tokens=2 * cost)
    responses = asyncio.run(_post_all(budget_app, [{"input": [image_item]} for _ in range(5)]))
    assert all(r.status_code == 200 for r in responses)
    assert max(budget_runner.batch_sizes) <= 2 and sum(budget_runner.batch_sizes) == 5


def test_a_failing_request_fails_alone_with_its_own_item_index(tiny_embedder):
    runner = CountingRunner(tiny_embedder, fail_on="BOOM")
    app = _serve(tiny_embedder, runner)
    bodies = [{"input": ["fine one"]}, {"input": ["ok", "still ok", "BOOM"]}, {"input": ["fine two"]}]
    good_one, bad, good_two = asyncio.run(_post_all(app, bodies))
    assert good_one.status_code == good_two.status_code == 200
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "input[2]" and bad.json()["error"]["message"].startswith("item 2:")


@pytest.mark.parametrize("batching", [True, False])
def test_large_request_spans_several_batches_in_order(tiny_embedder, batching):
    runner = CountingRunner(tiny_embedder)
    app = _serve(tiny_embedder, runner, max_batch_items=5, batching=batching)
    (response,) = asyncio.run(_post_all(app, [{"input": TEXTS}]))
    got = np.array([row["embedding"] for row in response.json()["data"]], dtype=np.float32)
    assert runner.batch_sizes == [5, 5, 2]
    np.testing.assert_allclose(got, tiny_embedder.encode(TEXTS), atol=1e-5)


def test_the_app_serves_again_after_a_restart_of_its_lifespan(tiny_embedder):
    app = create_app(tiny_embedder, ServerConfig())
    for _ in range(2):  # shutdown closes the model and decode threads; the next startup makes new ones
        with TestClient(app) as client:
            assert client.post("/v1/embeddings", json={"input": [{"text": "x", "image": data_uri(png_bytes())}]}
                               ).status_code == 200


class PrepareRecorder(ModelRunner):
    """Records which items are prepared, and in which thread."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.prepared: list[tuple[int, str]] = []  # (text length, thread name)

    def prepare(self, item, position=None):
        self.prepared.append((len(item.text or ""), threading.current_thread().name))
        return super().prepare(item, position)


def test_long_texts_are_tokenised_in_the_decode_thread_not_the_model_thread(tiny_embedder):
    # tokenising a 65,536-character text holds the model thread ~30 ms, every other request behind it waits
    long_text = ("a long document about trains and cats " * 400)[:PREPARE_TEXT_CHARS + 10]
    runner = PrepareRecorder(tiny_embedder)
    app = _serve(tiny_embedder, runner)
    responses = asyncio.run(_post_all(app, [{"input": [long_text]}, {"input": ["a short one"]}]))
    assert [r.status_code for r in responses] == [200, 200]
    threads = {length: name.rsplit("_", 1)[0] for length, name in runner.prepared}
    # the short text goes straight to the model thread (a thread hop costs more than tokenising it)
    assert threads == {len(long_text): "uniembed-decode", len("a short one"): "uniembed-model"}, runner.prepared
    got = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, tiny_embedder.encode([long_text, "a short one"]), atol=1e-5)
    assert prepared_ahead(Item(text="x" * PREPARE_TEXT_CHARS)) and not prepared_ahead(Item(text="x" * 100))
