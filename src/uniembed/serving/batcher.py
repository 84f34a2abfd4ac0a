"""Dynamic batching: concurrent requests are merged into model batches under a token budget.

Requests enqueue their items; one asyncio task forms batches and runs each in the single model
thread. Batches are filled round-robin over the waiting requests (oldest first, one item each per
round), so a request of many items shares every batch with those behind it instead of holding the
model for all its batches. An item's cost is capped by the model's `max_length` (text beyond it is
truncated), so no single item exceeds what one batch holds. A batch closes when the next item would
break the budget (rows x longest estimated length > `max_batch_tokens`, or more than `max_batch_items`
rows) or `max_wait_s` after its first item arrived; it waits only while other requests are still being parsed (`expecting`),
so a lone request is not delayed. A request larger than a batch spans several batches. When a batch fails,
its requests are retried one by one so a bad request fails alone and everyone else is served.
With `merge_requests=False` a batch never mixes requests (the "no batching" baseline).

With `prepare`, items carrying media, and texts of `PREPARE_TEXT_CHARS` characters or more (tokenising a
65,536-character text takes ~30 ms of CPU, time every request behind it in the model thread used to wait),
are decoded (and preprocessed or tokenised) one at a time in a decode thread beside the model thread,
round-robin over the requests, and become batchable once prepared; short texts go straight to the model thread. So a request of huge images or long videos never holds up the
model for others, at most one item is at full size at a time, decoding runs at most two batch budgets
ahead of the model, and requests that time out or disconnect are skipped: abandoned work costs at most
the item being decoded.

With `long_item_tokens`, items estimated at that many tokens or more (a text cut at `max_length`, a large image,
a video) run in a lane of their own: their batches never hold a short item and run in a second model thread
(`uniembed-model-long`, at most one long batch at a time), so a short request never waits behind a long item's
forward pass nor pays its padding (issue 26.6). Long items are always prepared in the decode thread.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..inputs import Item
from .runner import BatchOutput

log = logging.getLogger(__name__)

PREPARE_TEXT_CHARS = 8192  # texts (with their instruction) at least this long are tokenised in the decode thread


@dataclass
class _Job:
    items: list[Item]
    future: asyncio.Future
    dimension: int
    vectors: np.ndarray = field(init=False)
    text_tokens: np.ndarray = field(init=False)
    visual_tokens: np.ndarray = field(init=False)
    remaining: int = field(init=False)
    pending: collections.deque = field(init=False)
    decode_turns: int = 0

    def __post_init__(self) -> None:
        self.pending = collections.deque()
        self.vectors = np.zeros((len(self.items), self.dimension), dtype=np.float32)
        self.text_tokens = np.zeros(len(self.items), dtype=np.int64)
        self.visual_tokens = np.zeros(len(self.items), dtype=np.int64)
        self.remaining = len(self.items)

    @property
    def abandoned(self) -> bool:
        return self.future.done()


@dataclass
class _Entry:
    job: _Job
    index: int
    cost: int
    prepared: Any = None  # the item decoded and preprocessed (by the decode thread)
    ready: bool = True  # batchable: no media, or decoded
    decoding: bool = False
    long: bool = False  # runs in the long lane (batches of long items only, in their own model thread)


BatchObserver = Callable[[int, int, float], None]  # (items, padded tokens, seconds)


class DynamicBatcher:
    """Merges items of concurrent `submit` calls into model batches run by `encode_batch` in one thread."""

    def __init__(self, encode_batch: Callable[[Sequence[Item]], BatchOutput], cost: Callable[[Item], int],
                 dimension: int, max_batch_tokens: int = 16384, max_batch_items: int = 64, max_wait_s: float = 0.005,
                 merge_requests: bool = True, observer: BatchObserver | None = None,
                 prepare: Callable[[Item, int], Any] | None = None, long_item_tokens: int | None = None) -> None:
        self.encode_batch = encode_batch
        self.prepare = prepare
        self.cost = cost
        self.dimension = dimension
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_items = max_batch_items
        self.max_wait_s = max_wait_s if merge_requests else 0.0
        self.merge_requests = merge_requests
        self.observer = observer
        self.long_item_tokens = long_item_tokens  # None: one lane for every item
        self._jobs: collections.deque[_Job] = collections.deque()
        self._wakeups: dict[bool, asyncio.Event] = {}  # per lane (False: short items, True: long items)
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executors, self._decoder = self._threads()
        self._closed = False
        self._decode_task: asyncio.Task | None = None
        self._decode_wakeup: asyncio.Event | None = None
        self._expected = 0

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """Mark a request whose items are being prepared: open batches wait (up to max_wait) for it."""
        self._expected += 1
        try:
            yield
        finally:
            self._expected -= 1
            self._wake()

    def _wake(self) -> None:
        for event in self._wakeups.values():
            event.set()

    @staticmethod
    def _threads() -> tuple[dict[bool, ThreadPoolExecutor], ThreadPoolExecutor]:
        return ({False: ThreadPoolExecutor(max_workers=1, thread_name_prefix="uniembed-model"),
                 True: ThreadPoolExecutor(max_workers=1, thread_name_prefix="uniembed-model-long")},
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="uniembed-decode"))

    async def run_on_model(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` on the model thread, between batches (e.g. `encode_multi` for token embeddings)."""
        self._ensure_started()
        return await asyncio.get_running_loop().run_in_executor(self._executors[False], function, *args)

    def is_long(self, cost: int) -> bool:
        """Whether an item of estimated `cost` tokens runs in the long lane."""
        return self.long_item_tokens is not None and cost >= self.long_item_tokens

    @property
    def queued_items(self) -> int:
        return sum(len(job.pending) for job in self._jobs)

    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._tasks or any(task.done() for task in self._tasks) or self._loop is not loop:
            if self._closed:  # the app was shut down and started again (a new lifespan): new threads
                self._executors, self._decoder = self._threads()
                self._closed = False
            self._loop = loop
            self._wakeups = {False: asyncio.Event(), True: asyncio.Event()}
            self._decode_wakeup = asyncio.Event()
            self._jobs.clear()
            self._tasks = [loop.create_task(self._run(False), name="uniembed-batcher"),
                           loop.create_task(self._run(True), name="uniembed-batcher-long")]
            self._decode_task = loop.create_task(self._decode_loop(), name="uniembed-decoder")

    async def stop(self) -> None:
        for task in (*self._tasks, self._decode_task):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._tasks, self._decode_task = [], None

    def close(self) -> None:
        for executor in (*self._executors.values(), self._decoder):
            executor.shutdown(wait=False, cancel_futures=True)
        self._closed = True

    async def submit(self, items: Sequence[Item]) -> BatchOutput:
        """Embed `items` (in order) as part of whatever batches form; cancellation drops queued items."""
        self._ensure_started()
        job = _Job(list(items), asyncio.get_running_loop().create_future(), self.dimension)
        if not job.items:
            return BatchOutput(job.vectors, job.text_tokens, job.visual_tokens)
        for index, item in enumerate(job.items):
            cost = max(1, int(self.cost(item)))
            long = self.is_long(cost)
            ahead = self.prepare is not None and (long or prepared_ahead(item))
            job.pending.append(_Entry(job, index, cost, ready=not ahead, long=long))
        self._jobs.append(job)
        assert self._decode_wakeup is not None
        self._wake()
        self._decode_wakeup.set()
        try:
            return await job.future
        finally:
            if not job.future.done():
                job.future.cancel()

    # ---- the batching loop -----------------------------------------------------------------------
    async def _run(self, long: bool) -> None:
        """Form and run the batches of one lane (`long`: items of `long_item_tokens` or more) in its model thread."""
        wakeup = self._wakeups[long]
        while True:
            self._drop_abandoned()
            if not self._jobs:
                wakeup.clear()
                await wakeup.wait()
                continue
            batch = await self._form_batch(long)
            if not batch:
                continue
            try:
                await self._execute(batch)
            except Exception as exc:  # a server fault: fail this batch's requests, keep serving
                log.exception("batch of %d items failed", len(batch))
                for entry in batch:
                    self._fail(entry.job, exc, [])
            assert self._decode_wakeup is not None
            self._decode_wakeup.set()  # room to decode ahead again

    # ---- the decode loop -------------------------------------------------------------------------
    async def _decode_loop(self) -> None:
        assert self._decode_wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            entry = self._next_to_decode()
            if entry is None:
                self._decode_wakeup.clear()
                await self._decode_wakeup.wait()
                continue
            entry.decoding = True
            entry.job.decode_turns += 1
            try:
                entry.prepared = await loop.run_in_executor(self._decoder, self.prepare,
                                                            entry.job.items[entry.index], entry.index)
            except Exception as exc:  # the error names the item's position within its own request
                self._fail(entry.job, exc, [])
            entry.decoding, entry.ready = False, True
            self._wake()

    def _next_to_decode(self) -> _Entry | None:
        """The next media item (or long text) to prepare: from the request decoded least so far (oldest first), while
        decoded items waiting for a batch cost less than two batch budgets."""
        ahead = sum(e.cost for job in self._jobs for e in job.pending if e.prepared is not None)
        if ahead >= 2 * self.max_batch_tokens:
            return None
        best: _Entry | None = None
        for job in self._jobs:
            if job.abandoned or (best is not None and job.decode_turns >= best.job.decode_turns):
                continue
            best = next((e for e in job.pending if not e.ready and not e.decoding), best)
        return best

    def _drop_abandoned(self) -> None:
        """Forget requests that timed out, were cancelled or are fully batched: their items never run."""
        if any(job.abandoned or not job.pending for job in self._jobs):
            self._jobs = collections.deque(job for job in self._jobs if job.pending and not job.abandoned)

    def _fits(self, batch: list[_Entry], entry: _Entry) -> bool:
        if not batch:
            return True
        if len(batch) >= self.max_batch_items:
            return False
        if not self.merge_requests and entry.job is not batch[0].job:
            return False
        longest = max(entry.cost, max(e.cost for e in batch))
        return longest * (len(batch) + 1) <= self.max_batch_tokens

    async def _form_batch(self, long: bool) -> list[_Entry]:
        wakeup = self._wakeups[long]
        batch: list[_Entry] = []
        deadline: float | None = None
        while True:
            self._drop_abandoned()
            self._fill(batch, long)
            if not batch:  # nothing ready in this lane (media still decoding): wait for a decode or a request
                if not self._jobs:
                    return batch
                wakeup.clear()
                await wakeup.wait()
                continue
            deadline = deadline or time.monotonic() + self.max_wait_s
            ready_left = any(e.ready and e.long == long for job in self._jobs for e in job.pending)
            full = ready_left or len(batch) >= self.max_batch_items
            remaining = deadline - time.monotonic()
            if full or remaining <= 0 or self._expected == 0:
                return batch
            wakeup.clear()
            try:
                await asyncio.wait_for(wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def _fill(self, batch: list[_Entry], long: bool) -> None:
        """Add ready items of one lane round-robin over the waiting requests (oldest first) while they fit."""
        progress = True
        while progress:
            progress = False
            for job in self._jobs:
                entry = next((e for e in job.pending if e.ready and e.long == long), None)
                if entry is not None and self._fits(batch, entry):
                    job.pending.remove(entry)
                    batch.append(entry)
                    progress = True
            self._drop_abandoned()

    @staticmethod
    def _inputs(entries: list[_Entry]) -> list[Any]:
        return [entry.job.items[entry.index] if entry.prepared is None else entry.prepared for entry in entries]

    async def _execute(self, batch: list[_Entry]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        items = self._inputs(batch)
        executor = self._executors[batch[0].long]
        try:
            output = await loop.run_in_executor(executor, self.encode_batch, items)
        except Exception as exc:  # one bad request must not fail the others: retry per request
            await self._retry_separately(batch, exc)
            return
        if self.observer is not None:
            self.observer(len(batch), max(e.cost for e in batch) * len(batch), time.perf_counter() - started)
        self._deliver(batch, output)

    async def _retry_separately(self, batch: list[_Entry], error: Exception) -> None:
        jobs: dict[int, list[_Entry]] = {}
        for entry in batch:
            jobs.setdefault(id(entry.job), []).append(entry)
        if len(jobs) == 1:
            self._fail(batch[0].job, error, batch)
            return
        loop = asyncio.get_running_loop()
        executor = self._executors[batch[0].long]
        for entries in jobs.values():
            items = self._inputs(entries)
            try:
                output = await loop.run_in_executor(executor, self.encode_batch, items)
            except Exception as exc:
                self._fail(entries[0].job, exc, entries)
                continue
            self._deliver(entries, output)

    @staticmethod
    def _fail(job: _Job, error: Exception, entries: list[_Entry]) -> None:
        position = getattr(error, "position", None)
        if isinstance(error, InputError) and position is not None and position < len(entries):
            # the model saw a batch position; the client needs the position within its own request
            error = type(error)(error.problem, position=entries[position].index, path=error.path, row=error.row,
                                fix=error.fix)
        if not job.future.done():
            job.future.set_exception(error)

    @staticmethod
    def _deliver(batch: list[_Entry], output: BatchOutput) -> None:
        for row, entry in enumerate(batch):
            job = entry.job
            if job.abandoned:
                continue
            job.vectors[entry.index] = output.vectors[row]
            job.text_tokens[entry.index] = output.text_tokens[row]
            job.visual_tokens[entry.index] = output.visual_tokens[row]
            job.remaining -= 1
            if job.remaining == 0:
                job.future.set_result(BatchOutput(job.vectors, job.text_tokens, job.visual_tokens))


def prepared_ahead(item: Item) -> bool:
    """Whether `item` is prepared in the decode thread (media, or a text of `PREPARE_TEXT_CHARS` or more)
    rather than in the model thread while every other request waits."""
    if item.image_sources or item.video is not None:
        return True
    return len(item.text or "") + len(item.instruction or "") >= PREPARE_TEXT_CHARS
