"""`Embedder.iter_batches` prepares the next batches (decode, tokenise, pixel patches) in background threads while
the forward pass of the current one runs, a bounded number of batches ahead, without changing any vector; `encode`
and `encode_multi` also collate there (pad, stack, positions), so the main thread runs only the model.

No timing: the overlap is shown with events (the first forward waits until a later batch's item is being
prepared, which can only happen if preparing runs beside the forward) and memory with weak references.
"""
from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest
from PIL import Image

from uniembed import Embedder, Item
from uniembed.errors import InputError

BATCH = 3


@pytest.fixture(scope="module")
def model():
    return Embedder.tiny()


def items(count: int = 10) -> list[Item]:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 20)]
    return [Item(text=f"shape {i} " * (1 + i % 3), image=Image.new("RGB", (40 + 13 * i, 60 + 7 * i), colours[i % 4]))
            for i in range(count)]


def test_the_next_batch_is_prepared_in_background_while_the_forward_runs(model, monkeypatch):
    later_batch_started = threading.Event()
    prepared_on: list[str] = []
    real_prepare, real_forward = model.backbone.prepare, model.module.forward

    def spy_prepare(decoded, config):
        prepared_on.append(threading.current_thread().name)
        if len(prepared_on) == BATCH + 1:  # the first item of a batch after the first
            later_batch_started.set()
        return real_prepare(decoded, config)

    overlapped: list[bool] = []

    def spy_forward(batch, normalize=None):
        if not overlapped:  # the first forward: returns only once a later batch is being prepared
            overlapped.append(later_batch_started.wait(timeout=60))
        return real_forward(batch, normalize)

    monkeypatch.setattr(model.backbone, "prepare", spy_prepare)
    monkeypatch.setattr(model.module, "forward", spy_forward)
    model.encode(items(), batch_size=BATCH)
    assert overlapped == [True]
    assert len(prepared_on) == 10 and threading.main_thread().name not in prepared_on  # collate re-prepares nothing


@pytest.mark.parametrize("method", ["encode", "encode_multi"])
def test_batches_are_collated_in_the_background_threads_too(method, monkeypatch):
    """The main thread waits for a collated batch; it never pads, stacks or computes positions itself."""
    model = Embedder.tiny(multi_vector_dim=16) if method == "encode_multi" else Embedder.tiny()
    collated_on: list[str] = []
    real_collate = model.backbone.collate

    def spy_collate(decoded, config):
        collated_on.append(threading.current_thread().name)
        return real_collate(decoded, config)

    monkeypatch.setattr(model.backbone, "collate", spy_collate)
    getattr(model, method)(items(7), batch_size=BATCH)
    assert len(collated_on) == 3 and threading.main_thread().name not in collated_on


def test_vectors_and_their_order_are_unchanged(model):
    batch = items()
    together = model.encode(batch, batch_size=BATCH)
    alone = np.stack([model.encode([item], batch_size=1)[0] for item in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    groups = [group for group, _ in model.iter_batches(batch, BATCH)]
    assert sorted(i for group in groups for i in group) == list(range(10)) and max(map(len, groups)) == BATCH


def test_prepared_batches_are_released_once_yielded(model):
    """At most `workers + 1` batches are held ahead; a yielded batch is not kept by the iterator."""
    refs: list[list[weakref.ref]] = []
    for index, (_, decoded) in enumerate(model.iter_batches(items(12), 2, workers=1)):
        refs.append([weakref.ref(item) for item in decoded])
        del decoded
        gc.collect()
        assert all(ref() is None for batch in refs[:index] for ref in batch)


def test_an_item_that_fails_in_a_background_thread_is_named_in_the_caller(model):
    broken = items(6) + [Item(image="/nonexistent/picture.png")]
    with pytest.raises(InputError, match=r"item 6, file '/nonexistent/picture.png': file not found"):
        model.encode(broken, batch_size=2)
