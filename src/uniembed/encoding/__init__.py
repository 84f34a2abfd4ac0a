"""Encode many distinct items once, cached, across ranks: the machinery `eval`, `mine` and `encode` share.

- `distinct`: one process encodes each distinct item once, in batches of similar length, media decoded ahead;
- `exchange`: the ranks of a torchrun job split that work and hand their vectors to rank 0 through files;
- `cache`: the on-disk embedding cache (one SQLite file per model) both of them read and fill.
`encode_distinct` picks the one-process or the across-ranks path; the two modules never import each other's
entry points (exchange builds on distinct, distinct knows nothing of ranks).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from ..inputs import Item
from .cache import EmbeddingCache
from .distinct import EmbeddingTable, EncodeStats, Encoder, encode_local
from .exchange import encode_across_ranks

if TYPE_CHECKING:
    from ..parallel import World

__all__ = ["EmbeddingCache", "EmbeddingTable", "EncodeStats", "Encoder", "encode_distinct"]


def encode_distinct(encoder: Encoder, items: Sequence[Item], batch_size: int = 32, cache: EmbeddingCache | None = None,
                    decode_workers: int = 2, chunk_batches: int = 4, by_length: bool = True,
                    progress: bool = True, desc: str = "encoding", world: "World | None" = None,
                    exchange_dir: "str | os.PathLike | None" = None,
                    share: bool = False, keys: Sequence[str] | None = None,
                    steal: bool = False) -> tuple[EmbeddingTable | None, EncodeStats]:
    """Embeddings of the distinct items among `items`, reading and filling `cache` when given.

    With a distributed `world` (every rank passing the same `items`) each rank encodes its share and rank 0
    returns the table; the other ranks return None, or the table too with `share=True` (see `exchange`).
    `keys`: the items' content keys when the caller already has them (hashing media paths is not free).
    `steal`: a rank done with its share goes on with other ranks' unstarted chunks (`exchange.ChunkClaims`).
    """
    options = dict(batch_size=batch_size, cache=cache, decode_workers=decode_workers, chunk_batches=chunk_batches,
                   by_length=by_length, progress=progress, desc=desc, keys=keys)
    if world is not None and world.distributed:
        return encode_across_ranks(encoder, items, world, exchange_dir=exchange_dir, share=share, steal=steal,
                                   **options)
    return encode_local(encoder, items, **options)
