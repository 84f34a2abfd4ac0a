"""The loader thread: batches in sampler order, the checkpointed sampler position never runs ahead."""
from __future__ import annotations

import threading

import pytest

from uniembed.data.examples import TrainingExample
from uniembed.data.sampler import MixtureSampler
from uniembed.errors import InputError
from uniembed.inputs import Item
from uniembed.training.prefetch import BatchPrefetcher


def _sampler() -> MixtureSampler:
    sources = {name: [TrainingExample(Item(text=f"{name} q{i}"), [Item(text=f"{name} t{i}")], source=name)
                      for i in range(20)] for name in ("a", "b")}
    return MixtureSampler(sources, 4, seed=1, epochs=1)


def test_prefetched_batches_and_states_match_the_plain_sampler():
    plain, expected = _sampler(), []
    while (batch := plain.next_batch()) is not None:
        expected.append((batch.source, batch.indices, plain.state_dict()))
    threads = []
    loader = BatchPrefetcher(_sampler(), lambda batch: threads.append(threading.current_thread().name) or len(batch.examples))
    got = []
    while (ready := loader.next()) is not None:
        got.append((ready.batch.source, ready.batch.indices, ready.sampler_state))
        assert ready.prepared == 4
    loader.close()
    assert got == expected and len(got) == 10
    assert all(name.startswith("uniembed-loader") for name in threads[1:])  # all but the first are made ahead


def test_an_error_in_preparation_surfaces_at_the_batch_that_needs_it():
    def prepare(batch):
        if batch.step == 2:
            raise InputError("item 3 of the batch: image is corrupt")
        return batch.step

    loader = BatchPrefetcher(_sampler(), prepare)
    assert [loader.next().prepared, loader.next().prepared] == [0, 1]
    with pytest.raises(InputError, match="item 3"):
        loader.next()
    loader.close()
