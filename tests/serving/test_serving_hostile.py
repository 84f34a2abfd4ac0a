"""Hostile and heavy input, in process: slow bodies hold no slot, abandoned work stops, batches are fair,
texts are cut before tokenising, a request's decoded pixels are budgeted, and the OpenAPI document says
what the server sends."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
from fastapi.testclient import TestClient
from serving_helpers import GatedRunner, async_client, data_uri, png_bytes, vectors

from uniembed.serving import ServerConfig, create_app
from uniembed.serving.runner import ModelRunner


async def _slow_body(total: int, pause_s: float, chunk: bytes = b" "):
    for _ in range(total):
        yield chunk
        await asyncio.sleep(pause_s)


def test_slow_bodies_hold_no_slot_and_are_cut_off(tiny_embedder):
    app = create_app(tiny_embedder, ServerConfig(max_concurrency=2, body_timeout_s=0.6, min_body_rate=1000))

    async def scenario():
        async with async_client(app) as client:
            slow = [asyncio.create_task(client.post("/v1/embeddings", content=_slow_body(100, 0.05),
                                                    headers={"content-type": "application/json"}))
                    for _ in range(6)]
            await asyncio.sleep(0.2)  # the slow uploads are under way, three times the slot count
            normal = [await client.post("/v1/embeddings", json={"input": f"normal {i}"}) for i in range(3)]
            return normal, await asyncio.gather(*slow)

    normal, slow = asyncio.run(scenario())
    assert [r.status_code for r in normal] == [200, 200, 200]  # no 429 although 6 > 2 clients are uploading
    assert all(r.status_code == 408 and r.json()["error"]["code"] == "body_timeout" for r in slow)
    assert all(r.headers["connection"] == "close" for r in slow)


class SlowPrepareRunner(ModelRunner):
    """Each media item takes `delay_s` to decode (as a long video does); counts the items it decoded."""

    def __init__(self, model, delay_s: float) -> None:
        super().__init__(model)
        self.delay_s = delay_s
        self.prepared: list[str] = []

    def prepare(self, item, position=None):
        time.sleep(self.delay_s)
        self.prepared.append(item.text)
        return super().prepare(item, position)


def test_the_request_behind_a_timed_out_one_is_served(tiny_embedder):
    runner = SlowPrepareRunner(tiny_embedder, delay_s=0.1)
    app = create_app(tiny_embedder, ServerConfig(request_timeout_s=1.0, max_batch_items=64), runner=runner)

    async def scenario():
        async with async_client(app) as client:
            image = data_uri(png_bytes())
            heavy = await client.post("/v1/embeddings", json={"input": [{"text": f"heavy {i}", "image": image}
                                                                        for i in range(60)]})
            behind = await client.post("/v1/embeddings", json={"input": "behind"})
            return heavy, behind

    heavy, behind = asyncio.run(scenario())
    assert heavy.status_code == 504
    assert behind.status_code == 200  # not 504: the abandoned items were never decoded
    assert len([t for t in runner.prepared if t.startswith("heavy")]) < 20


def test_batches_are_shared_round_robin(tiny_embedder):
    gate = threading.Event()
    runner = GatedRunner(tiny_embedder, gate)
    runner.batches: list[list[str]] = []
    original = runner.encode

    def recording(items):
        runner.batches.append([getattr(i, "item", i).text for i in items])
        return original(items)

    runner.encode = recording
    app = create_app(tiny_embedder, ServerConfig(max_batch_items=4, max_wait_ms=0), runner=runner)

    async def scenario():
        async with async_client(app) as client:
            first = asyncio.create_task(client.post("/v1/embeddings", json={"input": "first"}))
            while not runner.started.is_set():
                await asyncio.sleep(0.01)
            big = asyncio.create_task(client.post("/v1/embeddings", json={"input": [f"big {i}" for i in range(40)]}))
            await asyncio.sleep(0.1)
            small = asyncio.create_task(client.post("/v1/embeddings", json={"input": "small"}))
            await asyncio.sleep(0.1)
            gate.set()
            return await asyncio.gather(first, big, small)

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert runner.batches[1] == ["big 0", "small", "big 1", "big 2"]  # not after all ten batches of "big"


def test_huge_text_is_cut_before_tokenising(tiny_embedder, monkeypatch):
    text = "a red circle beside two blue squares " * 200_000  # 7.4 MB
    seen = []
    tokenizer = tiny_embedder.backbone.tokenizer
    original = type(tokenizer).__call__

    def recording(self, texts, *args, **kwargs):
        seen.append(len(texts) if isinstance(texts, str) else sum(map(len, texts)))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", recording)
    with TestClient(create_app(tiny_embedder, ServerConfig(max_text_chars=20_000))) as client:
        response = client.post("/v1/embeddings", json={"input": [text]})
    assert max(seen) < 25_000  # the tokenizer never saw the 7.4 MB
    monkeypatch.setattr(type(tokenizer), "__call__", original)
    # the model truncates at max_length tokens anyway: the embedding is that of the whole text
    np.testing.assert_allclose(vectors(response), tiny_embedder.encode([text[:100_000]]), atol=1e-5)


def test_decoded_pixels_per_request_are_budgeted(tiny_embedder):
    image = data_uri(png_bytes("red", (1000, 1000)))
    with TestClient(create_app(tiny_embedder, ServerConfig(max_request_pixels=2_500_000))) as client:
        two = client.post("/v1/embeddings", json={"input": [{"image": image}, {"images": [image]}]})
        three = client.post("/v1/embeddings", json={"input": [{"image": image}, {"images": [image, image]}]})
    assert two.status_code == 200
    assert three.status_code == 400 and "more than 2500000 pixels" in three.json()["error"]["message"]
    assert three.json()["error"]["param"] == "input[1]"


def test_openapi_tells_what_the_server_sends(tiny_embedder):
    with TestClient(create_app(tiny_embedder, ServerConfig()), raise_server_exceptions=False) as client:
        schema = client.get("/openapi.json").json()
        wrong_method = client.get("/v1/embeddings")
        empty = client.post("/v1/embeddings", json={"input": ""})
    paths = schema["paths"]
    for status in ("400", "401", "404", "408", "413", "429", "500", "504"):
        response = paths["/v1/embeddings"]["post"]["responses"][status]
        assert response["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse"), status
    assert all("422" not in op["responses"] for path in paths.values() for op in path.values())  # never sent
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    # "" is refused by the schema too, not only by the server
    string_input = schema["components"]["schemas"]["EmbeddingRequest"]["properties"]["input"]["anyOf"][0]
    assert string_input["minLength"] == 1 and empty.status_code == 400
