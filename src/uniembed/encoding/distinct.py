"""Encode many items fast: each distinct item once, batches formed by length, media decoded ahead.

The evaluation runner gathers every query and candidate of every task of a run and calls
`encode_distinct` once, so an item shared by queries, candidate lists and data sets costs one forward
pass. Items are keyed by `Item.content_key()` (content and instruction). Missing items are sorted by the
model's token estimate so each batch holds items of similar size (little padding), and while one batch
is encoded the next batches' images are decoded by a thread pool.

Encoder protocol: `encode(items, batch_size=...) -> float32 N x D` (L2-normalised) and `model_id: str`.
Optional hooks, duck-typed:
- `estimate_tokens(item) -> int`: the model's token estimate (`Backbone.estimate_tokens`); without it the
  items keep their order.
- `predecode(item) -> Item`: an equivalent item with its media decoded in memory (e.g. video frames
  sampled as the model samples them); run in the background threads.
- `decodes_in_background = True`: the encoder already decodes media in its own workers (`Embedder` does,
  in `iter_batches`), so nothing is decoded here: one decode stage, never a second pool over decoded images.
Without either of the last two, image files are pre-loaded into PIL images; videos are left to the encoder.
Items are handed to `encode` in chunks of `chunk_batches` batches (already sorted by length), and each
chunk is written to the cache as soon as it is done.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..inputs import Item
from .cache import EmbeddingCache

class Encoder(Protocol):
    model_id: str

    def encode(self, items: list[Item], batch_size: int = 32) -> np.ndarray: ...


@dataclass
class EncodeStats:
    """What one `encode_distinct` call did: items asked for, distinct, served from cache, encoded."""

    requested: int = 0
    distinct: int = 0
    from_cache: int = 0
    encoded: int = 0
    encode_calls: int = 0  # this process's own (a rank's: the chunks it encoded)
    seconds: float = 0.0
    ranks: int = 1  # the processes that shared the encoding

    def add(self, other: "EncodeStats") -> None:
        for name in ("requested", "distinct", "from_cache", "encoded", "encode_calls", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ranks = max(self.ranks, other.ranks)


class EmbeddingTable:
    """Embeddings of distinct items, looked up by content key."""

    def __init__(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        self.row_of = {key: row for row, key in enumerate(keys)}
        self.vectors = vectors

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        return self.vectors[[self.row_of[key] for key in keys]]

    def truncated(self, width: int) -> "EmbeddingTable":
        """The first `width` coordinates of every vector (a Matryoshka prefix), re-normalised when the full
        vectors are unit length, as `Embedder.encode(truncate_dim=)` cuts them."""
        cut = self.vectors[:, :width]
        norms = np.linalg.norm(self.vectors, axis=1)
        if len(norms) and np.allclose(norms, 1.0, atol=1e-3):
            cut = cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)
        table = EmbeddingTable([], np.ascontiguousarray(cut, dtype=self.vectors.dtype))
        table.row_of = self.row_of
        return table


def preload_images(item: Item) -> Item:
    """The default background decode: image files become PIL images; other fields are kept."""
    if not item.image_sources:
        return item
    try:
        images = item.load_images()
    except InputError as exc:
        raise InputError(f"{exc} (while decoding {item.describe()})", fix=exc.fix) from exc
    return Item(text=item.text, image=images[0], images=images[1:] or None, video=item.video, instruction=item.instruction)


def length_batches(items: Sequence[Item], batch_size: int, estimate: Callable[[Item], int]) -> list[list[int]]:
    """Indices of `items` cut into batches of similar length (longest first, so memory errors come early)."""
    order = sorted(range(len(items)), key=lambda i: (-estimate(items[i]), i))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def background_decoder(encoder: Encoder) -> Callable[[Item], Item] | None:
    """What to run in the decode threads for this encoder (None: the encoder decodes by itself)."""
    hook = getattr(encoder, "predecode", None)
    if hook is not None:
        return hook
    return None if getattr(encoder, "decodes_in_background", False) else preload_images


def encode_local(encoder: Encoder, items: Sequence[Item], batch_size: int = 32, cache: EmbeddingCache | None = None,
                 decode_workers: int = 2, chunk_batches: int = 4, by_length: bool = True, progress: bool = True,
                 desc: str = "encoding", keys: Sequence[str] | None = None) -> tuple[EmbeddingTable, EncodeStats]:
    """Embeddings of the distinct items among `items` in this process, reading and filling `cache` when given.

    `keys`: the items' content keys when the caller already has them (hashing media paths is not free).
    """
    start = time.perf_counter()
    stats = EncodeStats(requested=len(items))
    distinct = distinct_items(items, keys)
    keys = list(distinct)
    stats.distinct = len(keys)
    vectors: dict[str, np.ndarray] = cache.get(keys) if cache is not None else {}
    stats.from_cache = len(vectors)

    def chunks_of(missing: list[str], missing_items: list[Item]) -> Iterator[tuple[list[str], np.ndarray]]:
        chunks = plan_chunks(encoder, missing_items, batch_size, chunk_batches, by_length)
        return encode_chunks(encoder, missing, missing_items, chunks, batch_size, decode_workers)

    encode_missing(distinct, vectors, chunks_of, None if cache is None else cache.put, stats, progress, desc)
    table = EmbeddingTable(keys, np.stack([vectors[key] for key in keys]) if keys else np.zeros((0, 0), np.float32))
    stats.seconds = time.perf_counter() - start
    return table, stats


def encode_missing(distinct: dict[str, Item], found: dict[str, Any],
                   chunks_of: Callable[[list[str], list[Item]], Iterable[tuple[list[str], Sequence[Any]]]],
                   store: Callable[[list[str], Any], None] | None, stats: EncodeStats, progress: bool = True,
                   desc: str = "encoding") -> None:
    """Add to `found` (content key -> output, what a cache held) the outputs of the `distinct` items it lacks.

    `chunks_of(missing keys, their items)` yields (keys, outputs) chunk by chunk (vectors, or token matrices);
    each chunk goes to `store` (a cache's writer) as soon as it is done, so an interrupted run keeps it, and is
    counted in `stats`. Nothing is asked of the encoder when nothing is missing (a deferred model stays unbuilt).
    """
    missing = [key for key in distinct if key not in found]
    if not missing:
        return
    bar = tqdm(total=len(missing), desc=desc, unit="item", disable=not progress, leave=False)
    for chunk_keys, outputs in chunks_of(missing, [distinct[key] for key in missing]):
        found.update(zip(chunk_keys, outputs))
        if store is not None:
            store(chunk_keys, outputs)
        stats.encoded += len(chunk_keys)
        stats.encode_calls += 1
        bar.update(len(chunk_keys))
    bar.close()


def distinct_items(items: Sequence[Item], keys: Sequence[str] | None = None) -> dict[str, Item]:
    """Content key -> first item with that key, in first-seen order (`keys`: the items' keys, if known)."""
    distinct: dict[str, Item] = {}
    for item, key in zip(items, keys if keys is not None else (item.content_key() for item in items)):
        distinct.setdefault(key, item)
    return distinct


def plan_chunks(encoder: Encoder, items: Sequence[Item], batch_size: int, chunk_batches: int = 4,
                by_length: bool = True) -> list[list[int]]:
    """Indices of `items` in the chunks `encode` is called with: sorted by length, `chunk_batches` batches each.

    The plan depends only on the items, so the ranks of a job that each take some of these chunks encode
    exactly the batches one process would (and get bit-identical embeddings).
    """
    if not items:  # nothing to ask the encoder (a deferred model stays unbuilt)
        return []
    chunk = batch_size * max(1, chunk_batches)
    estimate = getattr(encoder, "estimate_tokens", None)
    if by_length and estimate is not None:
        return length_batches(items, chunk, estimate)
    return [list(range(s, min(s + chunk, len(items)))) for s in range(0, len(items), chunk)]


def encode_chunks(encoder: Encoder, keys: Sequence[str], items: Sequence[Item], chunks: Iterable[list[int]],
                  batch_size: int, decode_workers: int = 2) -> Iterator[tuple[list[str], np.ndarray]]:
    """Yield (keys, float32 embeddings) per planned chunk, the next chunk's media decoded meanwhile (`chunks` is
    iterated as the read-ahead reaches each one: `exchange.ChunkClaims` claims them then)."""
    if not chunks:  # nothing to ask the encoder (a deferred model stays unbuilt)
        return
    for batch, decoded in _prefetched(chunks, list(items), background_decoder(encoder), decode_workers, 1):
        embeddings = np.asarray(encoder.encode(decoded, batch_size=batch_size), dtype=np.float32)
        if embeddings.shape[0] != len(batch):
            raise InputError(f"encoder returned {embeddings.shape[0]} embeddings for {len(batch)} items")
        yield [keys[i] for i in batch], embeddings


def _prefetched(batches: Iterable[list[int]], items: list[Item], predecode: Callable[[Item], Item] | None, workers: int,
                lookahead: int):
    """Yield (batch indices, decoded items) while the next `lookahead` batches decode in background threads."""
    if predecode is None:
        for batch in batches:
            yield batch, [items[i] for i in batch]
        return
    if workers <= 0:
        for batch in batches:
            yield batch, [predecode(items[i]) for i in batch]
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="uniembed-decode") as pool:
        queue: deque[tuple[list[int], list[Future]]] = deque()
        pending = iter(batches)

        def submit_next() -> None:
            batch = next(pending, None)
            if batch is not None:
                queue.append((batch, [pool.submit(predecode, items[i]) for i in batch]))

        for _ in range(max(lookahead, 1)):
            submit_next()
        while queue:
            batch, futures = queue.popleft()
            submit_next()
            yield batch, [future.result() for future in futures]
