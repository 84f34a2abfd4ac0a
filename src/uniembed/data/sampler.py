"""The mixture sampler: homogeneous (or mixed) global batches, no duplicate targets, exact resume.

By default each global batch comes from ONE source (as most recipes train: in-batch negatives then share a
task and a format), the source drawn by weight. `batching="mixed"` instead draws every example's source by
weight, so one batch mixes tasks and target modalities: the setting UNITE's modality-aware mask is made
for (docs/methods.md §2, option 1). Within a batch no two examples share a target
(`positives[0].content_key()`): a duplicate would be a false negative for its twin. An example whose
target is already in the batch is deferred to the source's next batch, not dropped.

Everything random is a pure function of (seed, counters): the order of source i in pass p is a
permutation drawn from `(seed, i, p)`, the source of step s is drawn from `(seed, s)`. So the state is a
few counters plus the deferred examples, `state_dict()` is plain JSON, and a run restored from it sees
exactly the batches an uninterrupted run would have seen.

With `epochs=N` every source is read N times (weights then set the order in which sources are
interleaved, not how often each example is seen) and iteration ends when all are exhausted; with
`epochs=None` the stream is infinite, each source reshuffled after every pass, and weights set the share
of batches. Under data parallelism every rank builds the same global batch and keeps its slice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, InputError
from .examples import TrainingExample

logger = logging.getLogger("uniembed.data")
_STATE_VERSION = 1
BATCHING = ("source", "mixed")
_ORDER, _CHOICE = 0, 1  # entropy tags keeping the two random streams apart


@dataclass
class SampledBatch:
    """This rank's slice of one global batch."""

    step: int  # 0-based index of the global batch in the stream
    source: str  # the batch's source, or "mixed"
    examples: list[TrainingExample]
    indices: list[int]  # positions of `examples` in their source
    global_size: int  # size of the whole global batch (smaller than requested only for a kept last batch)
    sources: list[str]  # each example's source


class MixtureSampler:
    """Draws global batches of `global_batch_size` examples, each from one source (or mixed, see above).

    `sources` maps names to example lists (or a `Mixture` / `TrainingSource`s); `weights` default to the
    sources' own weights, else their sizes. `rank`/`world_size` pick this process's slice.
    """

    def __init__(
        self,
        sources: Any,
        global_batch_size: int,
        *,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
        epochs: int | None = None,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        batching: str = "source",
    ) -> None:
        self.sources, own_weights = _unpack_sources(sources)
        self.names = list(self.sources)
        if global_batch_size < 1:
            raise ConfigError(f"global batch size must be >= 1, got {global_batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in a world of {world_size} processes")
        if global_batch_size % world_size:
            raise ConfigError(f"global batch size {global_batch_size} is not divisible by {world_size} processes",
                              )
        if batching not in BATCHING:
            raise ConfigError(f"batching {batching!r} is not one of {BATCHING}")
        if epochs is not None and epochs < 1:
            raise ConfigError(f"epochs must be >= 1 (or None for an infinite stream), got {epochs}")
        self.weights = _weights(self.names, weights if weights is not None else own_weights, self.sources)
        self.global_batch_size = global_batch_size
        self.seed = int(seed)
        self.epochs = epochs
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.batching = batching
        self._keys: dict[str, dict[int, str]] = {name: {} for name in self.names}
        self._orders: dict[str, tuple[int, np.ndarray]] = {}
        self._reset()

    # ------------------------------------------------------------------------------------------ state

    def _reset(self) -> None:
        self._step = 0
        self._cursor = {name: 0 for name in self.names}
        self._pass = {name: 0 for name in self.names}
        self._deferred: dict[str, list[int]] = {name: [] for name in self.names}
        self._done = {name: False for name in self.names}
        self._distinct: dict[str, int] = {}

    def state_dict(self) -> dict[str, Any]:
        """Position of the stream (JSON-serialisable); restore with `load_state_dict`."""
        return {
            "version": _STATE_VERSION,
            "seed": self.seed,
            "global_batch_size": self.global_batch_size,
            "epochs": self.epochs,
            "batching": self.batching,
            "step": self._step,
            "sources": {
                name: {"size": len(self.sources[name]), "pass": self._pass[name], "cursor": self._cursor[name],
                       "deferred": list(self._deferred[name]), "done": self._done[name],
                       "distinct_targets": self._distinct.get(name)}
                for name in self.names
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a saved position; the mixture, seed and batch size must be those it was saved with."""
        if state.get("version") != _STATE_VERSION:
            raise ConfigError(f"sampler state version {state.get('version')} is not {_STATE_VERSION}")
        for key in ("seed", "global_batch_size", "epochs", "batching"):
            if state.get(key, "source" if key == "batching" else None) != getattr(self, key):
                raise ConfigError(f"sampler state has {key}={state.get(key)!r} but this sampler has "
                                  f"{getattr(self, key)!r}; resume with the same settings")
        saved = state["sources"]
        if sorted(saved) != sorted(self.names):
            raise ConfigError(f"sampler state lists sources {sorted(saved)}, the mixture has {sorted(self.names)}")
        for name in self.names:
            if saved[name]["size"] != len(self.sources[name]):
                raise ConfigError(f"source '{name}' had {saved[name]['size']} examples when saved, now "
                                  f"{len(self.sources[name])}; resume on the same data")
        self._step = int(state["step"])
        for name in self.names:
            entry = saved[name]
            self._pass[name] = int(entry["pass"])
            self._cursor[name] = int(entry["cursor"])
            self._deferred[name] = [int(i) for i in entry["deferred"]]
            self._done[name] = bool(entry["done"])
            if entry.get("distinct_targets"):
                self._distinct[name] = int(entry["distinct_targets"])

    # ------------------------------------------------------------------------------------- iteration

    def __iter__(self) -> Iterator[SampledBatch]:
        while True:
            batch = self.next_batch()
            if batch is None:
                return
            yield batch

    def next_batch(self) -> SampledBatch | None:
        """The next batch of this rank, or None when every source is exhausted (epoch mode)."""
        rng = np.random.default_rng([self.seed, _CHOICE, self._step])
        if self.batching == "mixed":
            return self._next_mixed_batch(rng)
        while True:
            active = [name for name in self.names if not self._done[name]]
            if not active:
                return None
            weights = np.array([self.weights[name] for name in active])
            name = active[int(np.searchsorted(np.cumsum(weights) / weights.sum(), rng.random(), side="right"))]
            indices = self._fill(name)
            if len(indices) < self._target_size(name):
                self._done[name] = True
                if self.drop_last or not indices:
                    continue
            step = self._step
            self._step += 1
            return self._slice(step, name, [(name, index) for index in indices])

    def estimated_steps(self) -> int | None:
        """Batches in an epoch-mode stream, ignoring deferrals (None for an infinite stream)."""
        if self.epochs is None:
            return None
        return sum(len(self.sources[name]) * self.epochs // self.global_batch_size for name in self.names)

    def _next_mixed_batch(self, rng: np.random.Generator) -> SampledBatch | None:
        """Each example's source drawn by weight; targets distinct across the whole batch."""
        picked: list[tuple[str, int]] = []
        keys: set[str] = set()
        short: set[str] = set()  # sources that gave fewer than asked for this batch
        while len(picked) < self.global_batch_size:
            active = [name for name in self.names if not self._done[name] and name not in short]
            if not active:
                break
            weights = np.array([self.weights[name] for name in active])
            counts = rng.multinomial(self.global_batch_size - len(picked), weights / weights.sum())
            for name, count in zip(active, counts):
                if count:
                    got = self._fill(name, int(count), keys)
                    picked += [(name, index) for index in got]
                    if len(got) < count:
                        short.add(name)
                        self._done[name] = self._exhausted(name)
        exhausted = all(self._done.values())
        if not picked or (exhausted and self.drop_last and len(picked) < self.global_batch_size):
            return None  # the end of the last epoch (a short batch is kept only without drop_last)
        order = rng.permutation(len(picked))
        step = self._step
        self._step += 1
        return self._slice(step, "mixed", [picked[k] for k in order])

    # ------------------------------------------------------------------------------------- internals

    def _slice(self, step: int, label: str, picked: list[tuple[str, int]]) -> SampledBatch:
        """This rank's share of the global batch `picked` ((source, index) pairs); `label` names the batch."""
        share = np.array_split(np.arange(len(picked)), self.world_size)[self.rank]
        mine = [picked[k] for k in share]
        return SampledBatch(step, label, [self.sources[name][index] for name, index in mine],
                            [index for _, index in mine], len(picked), [name for name, _ in mine])

    def _target_key(self, name: str, index: int) -> str:
        cache = self._keys[name]
        key = cache.get(index)
        if key is None:
            example = self.sources[name][index]
            if not example.positives:
                raise InputError(f"example {index} of source '{name}' has no positive")
            key = cache[index] = example.positives[0].content_key()
        return key

    def _order(self, name: str) -> np.ndarray:
        current = self._orders.get(name)
        if current is None or current[0] != self._pass[name]:
            source_id = self.names.index(name)
            rng = np.random.default_rng([self.seed, _ORDER, source_id, self._pass[name]])
            current = (self._pass[name], rng.permutation(len(self.sources[name])))
            self._orders[name] = current
        return current[1]

    def _next_new(self, name: str) -> int | None:
        size = len(self.sources[name])
        if self._cursor[name] >= size:
            if self.epochs is not None and self._pass[name] + 1 >= self.epochs:
                return None
            self._pass[name] += 1
            self._cursor[name] = 0
        index = int(self._order(name)[self._cursor[name]])
        self._cursor[name] += 1
        return index

    def _target_size(self, name: str) -> int:
        """The global batch size, or fewer for a source with fewer distinct targets (e.g. 20 class labels)."""
        return min(self.global_batch_size, self._distinct.get(name, self.global_batch_size))

    def _exhausted(self, name: str) -> bool:
        """No new example left in the last epoch and none deferred."""
        return (self.epochs is not None and self._pass[name] + 1 >= self.epochs
                and self._cursor[name] >= len(self.sources[name]) and not self._deferred[name])

    def _fill(self, name: str, target: int | None = None, keys: set[str] | None = None) -> list[int]:
        """Up to `target` (default: a global batch) indices whose targets are distinct and not in `keys`
        (updated): deferred examples first, then new ones."""
        target = self._target_size(name) if target is None else target
        chosen: list[int] = []
        keys = set() if keys is None else keys
        waiting = self._deferred[name]
        still_waiting: list[int] = []
        for position, index in enumerate(waiting):
            if len(chosen) == target:
                still_waiting.extend(waiting[position:])
                break
            key = self._target_key(name, index)
            if key in keys:
                still_waiting.append(index)
            else:
                chosen.append(index)
                keys.add(key)
        scanned, limit = 0, len(self.sources[name])
        while len(chosen) < target:
            index = self._next_new(name)
            if index is None:
                break
            scanned += 1
            key = self._target_key(name, index)
            if key in keys:
                still_waiting.append(index)
            else:
                chosen.append(index)
                keys.add(key)
            if scanned > limit and len(chosen) < target:
                # a whole pass holds fewer distinct targets than a batch (a classification source with few
                # labels): its batches shrink to that many, rather than repeating a target as a false negative
                if not chosen:
                    raise InputError(f"source '{name}' has no usable targets")
                logger.warning("source '%s' has only %d distinct targets: its batches hold %d examples, not %d",
                               name, len(chosen), len(chosen), self.global_batch_size)
                self._distinct[name] = len(chosen)
                break
        self._deferred[name] = still_waiting
        return chosen


def _unpack_sources(sources: Any) -> tuple[dict[str, Sequence[TrainingExample]], dict[str, float] | None]:
    """(name -> examples, name -> weight or None) from a Mixture, TrainingSources or plain lists."""
    if hasattr(sources, "sources") and isinstance(sources.sources, Mapping):
        sources = sources.sources
    if not isinstance(sources, Mapping) or not sources:
        raise ConfigError("the sampler needs a non-empty mapping of source name -> examples")
    examples: dict[str, Sequence[TrainingExample]] = {}
    weights: dict[str, float] = {}
    for name, value in sources.items():
        if hasattr(value, "examples"):
            weights[name] = float(value.weight)
            value = value.examples
        if len(value) == 0:
            raise ConfigError(f"source '{name}' has no examples")
        examples[str(name)] = value
    return examples, (weights if len(weights) == len(examples) else None)


def _weights(names: list[str], weights: Mapping[str, float] | None, sources: Mapping[str, Sequence]) -> dict[str, float]:
    if weights is None:
        return {name: float(len(sources[name])) for name in names}
    if set(weights) != set(names):
        raise ConfigError(f"weights name {sorted(weights)} but the sources are {sorted(names)}")
    for name, weight in weights.items():
        if not weight > 0:
            raise ConfigError(f"weight of source '{name}' must be positive, got {weight}")
    return {name: float(weights[name]) for name in names}
