"""Bounded read-ahead: build the next batches in background threads while the caller uses the current one.

`Embedder.iter_batches` (prepared items) and the encode loop (collated, device-ready batches) both read through it.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch

Group = TypeVar("Group")
Built = TypeVar("Built")


def read_ahead(groups: Sequence[Group], build: Callable[[Group], Built], workers: int = 2) -> Iterator[Built]:
    """`build(group)` for each group, in order, computed in `workers` threads at most `workers + 1` groups ahead.

    A result is released once yielded, so memory stays bounded whatever the number of groups; an error raised by
    `build` reaches the caller unchanged when its group's turn comes; groups still queued when the caller stops
    (an error, a break) are not built."""
    if not groups:
        return
    ahead = max(1, workers) + 1
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = deque(pool.submit(build, group) for group in groups[:ahead])
        try:
            for index in range(len(groups)):
                built = pending.popleft().result()
                if index + ahead < len(groups):
                    pending.append(pool.submit(build, groups[index + ahead]))
                yield built
                del built  # not kept by this frame while the caller holds the next one
        finally:
            for future in pending:
                future.cancel()


def pinned(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with its tensors in page-locked memory, so the copy to a CUDA device can run asynchronously."""
    return {key: value.pin_memory() if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
