"""Prepare the next batch while the current one trains.

A loader thread draws batch t+1 from the sampler and decodes, tokenises and preprocesses its items while the
model runs batch t (torch, the tokenizer and PIL release the GIL), so a step costs its compute alone. The
sampler position saved in a checkpoint is the one right after the batch that trained, never the one ahead.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from ..data.sampler import MixtureSampler, SampledBatch


@dataclass
class PreparedBatch:
    batch: SampledBatch
    prepared: Any  # what `prepare(batch)` returned (e.g. the decoded, tokenised items)
    sampler_state: dict[str, Any]  # the sampler's position right after drawing `batch`


class BatchPrefetcher:
    """`next()` returns the next PreparedBatch (None at the end of the stream); one batch is made ahead."""

    def __init__(self, sampler: MixtureSampler, prepare: Callable[[SampledBatch], Any], ahead: bool = True) -> None:
        self.sampler = sampler
        self.prepare = prepare
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uniembed-loader") if ahead else None
        self._pending: Future | None = None

    def _make(self) -> PreparedBatch | None:
        batch = self.sampler.next_batch()
        if batch is None:
            return None
        state = self.sampler.state_dict()
        return PreparedBatch(batch, self.prepare(batch), state)

    def next(self) -> PreparedBatch | None:
        if self._pool is None:
            return self._make()
        current = self._pending.result() if self._pending is not None else self._make()
        self._pending = self._pool.submit(self._make) if current is not None else None
        return current

    def close(self) -> None:
        """Stop after the batch being prepared (its result is dropped: the sampler state in use is unaffected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pending = None
