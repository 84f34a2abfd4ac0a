"""Long items run in a lane of their own (issue 26.6): their batches hold no short item and run in a second model
thread, so a short request is served while a long item's forward pass is still running."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from serving_helpers import async_client

from uniembed import Item
from uniembed.errors import ConfigError
from uniembed.serving import ServerConfig, create_app
from uniembed.serving.runner import ModelRunner

LONG_TOKENS = 100  # the lane threshold of these tests: a 600-character text is estimated at 200 + 24 tokens
LONG_TEXT = "a long document about trains and cats " * 16  # 608 characters


def _text(item) -> str:
    return getattr(item, "item", item).text or ""  # prepared (DecodedItem) or not (Item)


class LaneRunner(ModelRunner):
    """Records every batch's text lengths and thread; a batch holding a long text waits for `gate`."""

    def __init__(self, model, gate: threading.Event | None = None) -> None:
        super().__init__(model)
        self.gate = gate
        self.batches: list[tuple[list[int], str]] = []
        self.long_started = threading.Event()

    def encode(self, items):
        lengths = [len(_text(item)) for item in items]
        self.batches.append((lengths, threading.current_thread().name.rsplit("_", 1)[0]))
        if self.gate is not None and max(lengths) >= len(LONG_TEXT):
            self.long_started.set()
            assert self.gate.wait(30)
        return super().encode(items)


def test_a_short_request_is_served_while_a_long_items_forward_is_blocked(tiny_embedder):
    gate = threading.Event()
    runner = LaneRunner(tiny_embedder, gate)
    app = create_app(tiny_embedder, ServerConfig(long_item_tokens=LONG_TOKENS), runner=runner)

    async def scenario():
        async with async_client(app) as client:
            long = asyncio.create_task(client.post("/v1/embeddings", json={"input": [LONG_TEXT]}))
            try:
                assert await asyncio.to_thread(runner.long_started.wait, 30)
                # one lane: this request would queue behind the blocked batch until the gate opens
                short = await asyncio.wait_for(client.post("/v1/embeddings", json={"input": ["a short one"]}), 20)
                long_still_running = not long.done()
            finally:
                gate.set()
            return short, long_still_running, await long

    short, long_still_running, long = asyncio.run(scenario())
    assert short.status_code == long.status_code == 200 and long_still_running
    np.testing.assert_allclose(short.json()["data"][0]["embedding"], tiny_embedder.encode(["a short one"])[0],
                               atol=1e-5)


BODIES = [{"input": [LONG_TEXT + str(i), f"short {i}"]} for i in range(3)] + [{"input": [f"other {i}"]} for i in range(3)]


class BlockingRunner(LaneRunner):
    """A batch holding a text that starts with "blocker" waits for `gate`; counts those started and the long
    texts prepared."""

    def __init__(self, model, gate: threading.Event) -> None:
        super().__init__(model)
        self.blocker_gate = gate
        self.blocked = 0
        self.long_prepared = 0

    def encode(self, items):
        if any(_text(item).startswith("blocker") for item in items):
            self.blocked += 1
            assert self.blocker_gate.wait(30)
        return super().encode(items)

    def prepare(self, item, position=None):
        prepared = super().prepare(item, position)
        self.long_prepared += len(item.text or "") >= len(LONG_TEXT) and not item.text.startswith("blocker")
        return prepared


@pytest.mark.parametrize("lanes", [True, False])
def test_long_and_short_items_never_share_a_batch(tiny_embedder, lanes):
    gate = threading.Event()
    runner = BlockingRunner(tiny_embedder, gate)
    config = ServerConfig(long_item_tokens=LONG_TOKENS if lanes else None, max_wait_ms=50)
    app = create_app(tiny_embedder, config, runner=runner)
    blockers = ["blocker"] + (["blocker " + LONG_TEXT] if lanes else [])  # one per lane: each lane's thread busy

    async def until(condition) -> None:
        for _ in range(3000):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("timed out")

    async def scenario():
        async with async_client(app) as client:
            post = lambda body: asyncio.create_task(client.post("/v1/embeddings", json=body))  # noqa: E731
            held = [post({"input": [text]}) for text in blockers]
            try:
                await until(lambda: runner.blocked == len(blockers))
                tasks = [post(body) for body in BODIES]
                # every item queued, the long ones prepared: once the lanes are free, each forms a batch of all
                # it may take
                await until(lambda: app.state.uniembed.batcher.queued_items == 9
                            and runner.long_prepared == (3 if lanes else 0))
            finally:
                gate.set()
            await asyncio.gather(*held)
            return await asyncio.gather(*tasks)

    responses = asyncio.run(scenario())
    texts = [text for body in BODIES for text in body["input"]]
    got = np.concatenate([[row["embedding"] for row in r.json()["data"]] for r in responses]).astype(np.float32)
    np.testing.assert_allclose(got, tiny_embedder.encode(texts), atol=1e-5)
    kinds = [({length >= len(LONG_TEXT) for length in lengths}, thread) for lengths, thread in runner.batches]
    if lanes:
        assert all(kind in ({True}, {False}) for kind, _ in kinds), runner.batches
        assert {(min(kind), thread) for kind, thread in kinds} == {(True, "uniembed-model-long"),
                                                                   (False, "uniembed-model")}, runner.batches
    else:  # one lane (the old behaviour): the same requests do mix, so the assertion above can see a mix
        assert any(kind == {True, False} for kind, _ in kinds), runner.batches


def test_the_model_stays_in_eval_mode_until_the_last_lane_is_done(tiny_embedder):
    runner, module = ModelRunner(tiny_embedder), tiny_embedder.module
    was_training = module.training
    module.train()
    inside = {name: threading.Event() for name in "ab"}
    release = {name: threading.Event() for name in "ab"}
    seen: dict[str, bool] = {}

    def forward(name: str):
        def run(module, batch):
            inside[name].set()
            assert release[name].wait(30)
            seen[name] = module.training
        return lambda: runner._forward([Item(text=name)], run)

    threads = {name: threading.Thread(target=forward(name)) for name in "ab"}
    try:
        threads["a"].start()
        assert inside["a"].wait(30)
        threads["b"].start()
        assert inside["b"].wait(30)
        release["a"].set()
        threads["a"].join(30)
        assert not module.training  # "b" still runs: the first batch out must not restore training mode
        release["b"].set()
        threads["b"].join(30)
        assert seen == {"a": False, "b": False} and module.training and runner.calls == 2
    finally:
        for event in release.values():
            event.set()
        module.train(was_training)


def test_the_lane_threshold_is_validated():
    assert ServerConfig().long_item_tokens == 512 and ServerConfig(long_item_tokens=None).long_item_tokens is None
    with pytest.raises(ConfigError, match="long_item_tokens must be at least 1"):
        ServerConfig(long_item_tokens=0)



def test_a_failing_long_batch_is_retried_per_request_in_the_long_lane():
    from uniembed.errors import InputError
    from uniembed.serving.batcher import DynamicBatcher
    from uniembed.serving.runner import BatchOutput

    calls: list[tuple[str, list[str]]] = []

    def encode(items):
        calls.append((threading.current_thread().name.rsplit("_", 1)[0], [item.text for item in items]))
        for position, item in enumerate(items):
            if item.text == "long BOOM":
                raise InputError("this item breaks the model", position=position)
        return BatchOutput(np.ones((len(items), 2), np.float32), np.ones(len(items), np.int64),
                           np.zeros(len(items), np.int64))

    async def scenario():
        batcher = DynamicBatcher(encode, lambda item: 1000 if item.text.startswith("long") else 10, 2,
                                 long_item_tokens=500)
        try:
            return await asyncio.gather(batcher.submit([Item(text="long fine")]),
                                        batcher.submit([Item(text="short"), Item(text="long BOOM")]),
                                        return_exceptions=True)
        finally:
            await batcher.stop()
            batcher.close()

    fine, failed = asyncio.run(scenario())
    assert fine.vectors.shape == (1, 2)
    assert isinstance(failed, InputError) and failed.position == 1  # its own request's index, not the batch's
    long_calls = [texts for thread, texts in calls if "long fine" in texts or "long BOOM" in texts]
    assert long_calls[0] == ["long fine", "long BOOM"] and {"long fine"} in [set(t) for t in long_calls[1:]]
    assert all(thread == "uniembed-model-long" for thread, texts in calls if any(t.startswith("long") for t in texts))
    assert all(thread == "uniembed-model" for thread, texts in calls if texts == ["short"])
