"""The mixture sampler: homogeneous batches, no duplicate targets, weights, seeds, exact resume, ranks."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from uniembed.data.examples import TrainingExample
from uniembed.data.sampler import MixtureSampler
from uniembed.errors import ConfigError
from uniembed.inputs import Item


def _source(name: str, size: int, distinct_targets: int | None = None) -> list[TrainingExample]:
    distinct = distinct_targets or size
    return [TrainingExample(Item(text=f"{name} query {i}"), [Item(text=f"{name} target {i % distinct}")], source=name)
            for i in range(size)]


def _batches(sampler, count=None):
    out = []
    for batch in sampler:
        out.append((batch.source, batch.indices))
        if count is not None and len(out) == count:
            break
    return out


def test_batches_are_homogeneous_and_have_no_duplicate_targets():
    sources = {"a": _source("a", 60, distinct_targets=10), "b": _source("b", 40)}
    sampler = MixtureSampler(sources, 8, seed=1)
    for batch in _batches(sampler, 50):
        name, indices = batch
        assert len(indices) == 8
        targets = [sources[name][i].positives[0].text for i in indices]
        assert len(set(targets)) == 8
        assert all(sources[name][i].source == name for i in indices)


def test_deferred_examples_are_not_lost_in_epoch_mode():
    sources = {"a": _source("a", 40, distinct_targets=4)}
    seen = Counter()
    for batch in MixtureSampler(sources, 4, seed=0, epochs=1):
        seen.update(batch.indices)
    assert sorted(seen) == list(range(40)) and set(seen.values()) == {1}


def test_epoch_mode_reads_every_source_n_times_then_stops():
    sources = {"a": _source("a", 12), "b": _source("b", 8)}
    batches = _batches(MixtureSampler(sources, 4, seed=5, epochs=2))
    assert len(batches) == (12 * 2 + 8 * 2) // 4
    counts = Counter((name, i) for name, indices in batches for i in indices)
    assert set(counts.values()) == {2} and len(counts) == 20


def test_same_seed_same_stream_other_seed_other_stream():
    sources = {"a": _source("a", 50), "b": _source("b", 50)}
    first = _batches(MixtureSampler(sources, 5, seed=7), 30)
    assert first == _batches(MixtureSampler(sources, 5, seed=7), 30)
    assert first != _batches(MixtureSampler(sources, 5, seed=8), 30)


def test_resume_in_epoch_mode_gives_the_same_remaining_batches():
    sources = {"a": _source("a", 37, distinct_targets=9), "b": _source("b", 23), "c": _source("c", 11)}
    weights = {"a": 1, "b": 2, "c": 1}
    reference = MixtureSampler(sources, 6, seed=3, epochs=3, weights=weights)
    stream = iter(reference)
    head = [next(stream) for _ in range(13)]
    state = json.loads(json.dumps(reference.state_dict()))  # as written in a checkpoint
    tail = [(b.source, b.indices) for b in stream]
    resumed = MixtureSampler(sources, 6, seed=3, epochs=3, weights=weights)
    resumed.load_state_dict(state)
    assert head[-1].step == 12 and len(tail) > 5
    assert _batches(resumed) == tail


def test_resume_equals_uninterrupted_run_in_infinite_mode():
    sources = {"a": _source("a", 30, distinct_targets=7), "b": _source("b", 19)}
    uninterrupted = _batches(MixtureSampler(sources, 5, seed=11), 60)
    first = MixtureSampler(sources, 5, seed=11)
    head = _batches(first, 25)
    state = json.loads(json.dumps(first.state_dict()))
    second = MixtureSampler(sources, 5, seed=11)
    second.load_state_dict(state)
    assert head + _batches(second, 35) == uninterrupted


def test_state_from_another_mixture_is_refused():
    sampler = MixtureSampler({"a": _source("a", 10)}, 2, seed=0)
    other = MixtureSampler({"a": _source("a", 11)}, 2, seed=0)
    with pytest.raises(ConfigError, match="same data"):
        other.load_state_dict(sampler.state_dict())
    with pytest.raises(ConfigError, match="seed"):
        MixtureSampler({"a": _source("a", 10)}, 2, seed=1).load_state_dict(sampler.state_dict())


def test_weights_set_the_share_of_batches():
    sources = {"a": _source("a", 100), "b": _source("b", 100), "c": _source("c", 100)}
    sampler = MixtureSampler(sources, 4, seed=0, weights={"a": 6, "b": 3, "c": 1})
    counts = Counter(name for name, _ in _batches(sampler, 3000))
    assert counts["a"] / 3000 == pytest.approx(0.6, abs=0.03)
    assert counts["b"] / 3000 == pytest.approx(0.3, abs=0.03)
    assert counts["c"] / 3000 == pytest.approx(0.1, abs=0.02)


def test_default_weights_follow_source_sizes():
    sources = {"big": _source("big", 300), "small": _source("small", 100)}
    counts = Counter(name for name, _ in _batches(MixtureSampler(sources, 2, seed=2), 2000))
    assert counts["big"] / 2000 == pytest.approx(0.75, abs=0.03)


def test_ranks_get_disjoint_slices_of_the_same_global_batch():
    sources = {"a": _source("a", 40), "b": _source("b", 30)}
    whole = _batches(MixtureSampler(sources, 6, seed=4), 20)
    slices = [_batches(MixtureSampler(sources, 6, seed=4, rank=r, world_size=3), 20) for r in range(3)]
    for step, (name, indices) in enumerate(whole):
        assert all(s[step][0] == name for s in slices)
        assert [i for s in slices for i in s[step][1]] == indices
        assert all(len(s[step][1]) == 2 for s in slices)
    with pytest.raises(ConfigError, match="divisible"):
        MixtureSampler(sources, 7, world_size=2)


def test_a_source_with_few_distinct_targets_gets_smaller_batches_and_resumes_exactly():
    """A classification source with 3 labels and batch size 4: batches of 3 distinct targets, never a repeat."""
    source = {"a": _source("a", 20, distinct_targets=3)}
    sampler = MixtureSampler(source, 4, seed=0)
    batches = [sampler.next_batch() for _ in range(6)]
    for batch in batches:
        keys = [example.positives[0].content_key() for example in batch.examples]
        assert batch.global_size == 3 and len(set(keys)) == 3
    state = sampler.state_dict()
    following = [sampler.next_batch().indices for _ in range(4)]
    restored = MixtureSampler(source, 4, seed=0)
    restored.load_state_dict(state)
    assert [restored.next_batch().indices for _ in range(4)] == following


def test_last_partial_batch_kept_when_asked():
    sources = {"a": _source("a", 10)}
    sizes = [b.global_size for b in MixtureSampler(sources, 4, epochs=1, drop_last=False)]
    assert sizes == [4, 4, 2]
    assert [b.global_size for b in MixtureSampler(sources, 4, epochs=1)] == [4, 4]


def _mixed(sampler, count=None):
    out = []
    for batch in sampler:
        out.append(list(zip(batch.sources, batch.indices)))
        if count is not None and len(out) == count:
            break
    return out


def test_mixed_batches_draw_each_example_source_by_weight_with_distinct_targets():
    sources = {"a": _source("a", 300, distinct_targets=40), "b": _source("b", 300), "c": _source("c", 300)}
    sampler = MixtureSampler(sources, 16, seed=2, batching="mixed", weights={"a": 2.0, "b": 1.0, "c": 1.0})
    batches = _mixed(sampler, 200)
    assert all(len(batch) == 16 for batch in batches)
    assert sum(len({name for name, _ in batch}) > 1 for batch in batches) == len(batches)
    for batch in batches:
        targets = [sources[name][i].positives[0].text for name, i in batch]
        assert len(set(targets)) == len(targets)
    share = Counter(name for batch in batches for name, _ in batch)
    assert abs(share["a"] / sum(share.values()) - 0.5) < 0.03
    assert abs(share["b"] - share["c"]) / sum(share.values()) < 0.03


def test_mixed_batches_resume_exactly_and_cover_an_epoch_once():
    sources = {"a": _source("a", 30, distinct_targets=6), "b": _source("b", 22)}
    full = _mixed(MixtureSampler(sources, 4, seed=3, epochs=1, drop_last=False, batching="mixed"))
    seen = Counter(pair for batch in full for pair in batch)
    assert len(seen) == 52 and set(seen.values()) == {1}
    first = MixtureSampler(sources, 4, seed=3, epochs=1, drop_last=False, batching="mixed")
    head = _mixed(first, 5)
    state = json.loads(json.dumps(first.state_dict()))
    again = MixtureSampler(sources, 4, seed=3, epochs=1, drop_last=False, batching="mixed")
    again.load_state_dict(state)
    assert head + _mixed(again) == full
    source_mode = MixtureSampler(sources, 4, seed=3, epochs=1)
    with pytest.raises(ConfigError, match="batching"):
        source_mode.load_state_dict(state)


def test_mixed_batches_keep_deferred_examples_to_the_end_of_an_epoch():
    sources = {"a": _source("a", 24, distinct_targets=2), "b": _source("b", 10, distinct_targets=2)}
    batches = _mixed(MixtureSampler(sources, 4, seed=0, epochs=1, drop_last=False, batching="mixed"))
    seen = Counter(pair for batch in batches for pair in batch)
    assert len(seen) == 34 and set(seen.values()) == {1}


def test_mixed_batches_split_across_ranks():
    sources = {"a": _source("a", 50), "b": _source("b", 50)}
    whole = _mixed(MixtureSampler(sources, 6, seed=4, batching="mixed"), 10)
    parts = [_mixed(MixtureSampler(sources, 6, seed=4, batching="mixed", rank=r, world_size=3), 10) for r in range(3)]
    assert [sum((p[k] for p in parts), []) for k in range(10)] == whole
