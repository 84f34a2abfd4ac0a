"""One run's distinct items encoded across the ranks of a torchrun job, resumable after a kill.

Every rank passes the same items. The protocol:
1. Rank 0 moves the vectors an interrupted job left in the parts folder into the cache, looks up what is
   already done (in the cache, or without one in the parts folder), and broadcasts a run id and that mask.
2. The missing items are cut into the chunks one process would encode (`distinct.plan_chunks`) and the chunks
   are split among the ranks by estimated tokens (`parallel.balanced_owners`): the same batches, so the same
   embeddings bit for bit.
   With `steal`, a rank claims each chunk before encoding it (a claim file, created exclusively) and, its own
   share done, claims the other ranks' unstarted chunks from the end of their shares: a rank that started
   late, or whose chunks cost more per estimated token, is helped, and rank 0's scoring starts sooner.
3. Each rank encodes its share chunk by chunk and writes every chunk at once as a part file
   `<run>-r<rank>-<seq>-n<count>.npz` (written under a temporary name, then renamed), so a rank killed
   mid-run keeps every chunk it finished. A rank that is done writes `<run>-r<rank>.done`.
4. Rank 0 shows one bar over all ranks (it counts the part files), waits for every `.done`, stores the parts
   in the cache, builds the table and deletes the run's parts. The other ranks return None, or with
   `share=True` read the table too (mining: every rank needs the pool) before rank 0 deletes anything.
The parts folder is `EmbeddingCache.parts_dir` (beside the cache database) or, without a cache, the caller's
`exchange_dir`; with ranks on several machines it must be on a filesystem they all see.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..inputs import Item
from ..parallel import World, balanced_owners, wait_for
from .cache import EmbeddingCache
from .distinct import EmbeddingTable, EncodeStats, Encoder, distinct_items, encode_chunks, plan_chunks

PART = re.compile(r"^(?P<run>[0-9a-f]+)-r(?P<rank>\d+)-(?P<seq>\d+)-n(?P<count>\d+)\.npz$")


class PartFolder:
    """The files ranks leave their vectors in: one `.npz` of keys + vectors per encoded chunk."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def parts(self, run: str | None = None) -> list[Path]:
        found = []
        for path in sorted(self.directory.glob("*.npz")):
            match = PART.match(path.name)
            if match and (run is None or match["run"] == run):
                found.append(path)
        return found

    def count(self, run: str) -> int:
        return sum(int(PART.match(path.name)["count"]) for path in self.parts(run))

    def write(self, run: str, rank: int, seq: int, keys: Sequence[str], vectors: np.ndarray) -> None:
        name = f"{run}-r{rank}-{seq:06d}-n{len(keys)}.npz"
        tmp = self.directory / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            np.savez(handle, keys=np.asarray(list(keys), dtype=str), vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, self.directory / name)

    def done_marker(self, run: str, rank: int) -> Path:
        return self.directory / f"{run}-r{rank}.done"

    def read(self, paths: Iterable[Path], wanted: set[str] | None = None) -> dict[str, np.ndarray]:
        """key -> vector from the given part files (a file deleted meanwhile by another job's rank 0 is skipped)."""
        vectors: dict[str, np.ndarray] = {}
        for path in paths:
            try:
                with np.load(path) as data:
                    keys, block = data["keys"], data["vectors"]
            except FileNotFoundError:
                continue
            for key, vector in zip(keys.tolist(), block):
                if wanted is None or key in wanted:
                    vectors[key] = vector
        return vectors

    def keys(self) -> set[str]:
        keys: set[str] = set()
        for path in self.parts():
            try:
                with np.load(path) as data:
                    keys.update(data["keys"].tolist())
            except FileNotFoundError:
                continue
        return keys

    def move_into(self, cache: EmbeddingCache, paths: Sequence[Path]) -> None:
        """Store the parts' vectors in the cache, then delete the files (committed first: nothing is lost)."""
        for path in paths:
            vectors = self.read([path])
            if vectors:
                cache.put(list(vectors), np.stack(list(vectors.values())))
            path.unlink(missing_ok=True)

    def claim(self, run: str, chunk: int) -> bool:
        """Claim chunk `chunk` of `run` for this process: True for the one caller that creates its claim file."""
        try:
            os.close(os.open(self.directory / f"{run}-c{chunk:06d}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def remove(self, run: str | None) -> None:
        """Delete one run's parts, markers and claims (all of them with None)."""
        for path in self.parts(run):
            path.unlink(missing_ok=True)
        for pattern in (f"{run or '*'}-r*.done", f"{run or '*'}-c*.claim"):
            for path in self.directory.glob(pattern):
                path.unlink(missing_ok=True)


class ChunkClaims:
    """The chunks one rank encodes when ranks may steal: its own share in order, then the other ranks' from the
    end of their shares (the next rank's first), each only if this rank's claim on it succeeds. Lazy: a chunk is
    claimed when the encoder's read-ahead reaches it."""

    def __init__(self, folder: PartFolder, run: str, chunks: Sequence[list[int]], owners: Sequence[int], rank: int,
                 size: int) -> None:
        self.folder, self.run, self.chunks = folder, run, chunks
        shares = [[index for index, owner in enumerate(owners) if owner == part] for part in range(size)]
        self.order = shares[rank] + [index for part in (*range(rank + 1, size), *range(rank))
                                     for index in reversed(shares[part])]

    def __bool__(self) -> bool:
        return bool(self.order)

    def __iter__(self) -> Iterator[list[int]]:
        for index in self.order:
            if self.folder.claim(self.run, index):
                yield self.chunks[index]


def encode_across_ranks(encoder: Encoder, items: Sequence[Item], world: World, *, batch_size: int = 32,
                        cache: EmbeddingCache | None = None, exchange_dir: str | os.PathLike | None = None,
                        share: bool = False, decode_workers: int = 2, chunk_batches: int = 4, by_length: bool = True,
                        progress: bool = True, desc: str = "encoding",
                        keys: Sequence[str] | None = None,
                        steal: bool = False) -> tuple[EmbeddingTable | None, EncodeStats]:
    """`encode_distinct` on one rank of `world`: the table on rank 0 (on every rank with `share`), else None.

    `steal`: chunks are claimed, and a rank done with its share takes the others' unstarted chunks (see above)."""
    if cache is None and exchange_dir is None:
        raise ConfigError("encoding across ranks needs an embedding cache or an exchange folder every rank can read")
    start = time.perf_counter()
    folder = PartFolder(cache.parts_dir if cache is not None else exchange_dir)
    distinct = distinct_items(items, keys)
    keys = list(distinct)
    stats = EncodeStats(requested=len(items), distinct=len(keys), ranks=world.size)
    plan = None
    if world.is_main:
        if cache is not None:
            folder.move_into(cache, folder.parts())  # what an interrupted job finished
            done = cache.present(keys)
        else:
            done = folder.keys()
        plan = (uuid.uuid4().hex[:16], np.packbits([key in done for key in keys]).tobytes())
    run, packed = world.broadcast(plan)
    done_mask = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=len(keys)).astype(bool)
    missing = [i for i in range(len(keys)) if not done_mask[i]]
    stats.from_cache = len(keys) - len(missing)
    missing_keys = [keys[i] for i in missing]
    missing_items = [distinct[key] for key in missing_keys]
    chunks = plan_chunks(encoder, missing_items, batch_size, chunk_batches, by_length)
    estimate = (getattr(encoder, "estimate_tokens", None) if missing_items else None) or (lambda item: 1)
    owners = balanced_owners([sum(estimate(missing_items[i]) for i in chunk) for chunk in chunks], world.size)
    mine: Iterable[list[int]] = [chunk for chunk, owner in zip(chunks, owners) if owner == world.rank]
    if steal:
        mine = ChunkClaims(folder, run, chunks, owners, world.rank, world.size)

    bar = tqdm(total=len(missing), desc=desc, unit="item", disable=not (progress and world.is_main), leave=False)

    def show_global() -> None:
        if not bar.disable:
            bar.update(folder.count(run) - bar.n)

    for seq, (chunk_keys, embeddings) in enumerate(encode_chunks(encoder, missing_keys, missing_items, mine, batch_size,
                                                                 decode_workers)):
        folder.write(run, world.rank, seq, chunk_keys, embeddings)
        stats.encode_calls += 1
        show_global()
    folder.done_marker(run, world.rank).touch()
    stats.encoded = len(missing)
    if not (world.is_main or share):
        stats.seconds = time.perf_counter() - start
        return None, stats
    wait_for([folder.done_marker(run, rank) for rank in range(world.size)], show_global)
    bar.close()
    vectors = folder.read(folder.parts(run))
    rest = [key for key in keys if key not in vectors]
    if rest:  # done before this run (or parts a concurrent job's rank 0 already moved into the cache)
        vectors.update(cache.get(rest) if cache is not None else folder.read(folder.parts(), wanted=set(rest)))
    absent = [key for key in keys if key not in vectors]
    if absent:
        raise RuntimeError(f"{len(absent)} items were encoded by no rank (parts folder {folder.directory} "
                           "changed during the run?)")
    table = EmbeddingTable(keys, np.stack([vectors[key] for key in keys]) if keys else np.zeros((0, 0), np.float32))
    if share:
        world.barrier()  # every rank has read the parts before rank 0 removes them
    if world.is_main:
        if cache is not None:
            if missing_keys:
                cache.put(missing_keys, np.stack([vectors[key] for key in missing_keys]))
            folder.remove(run)
        else:
            folder.remove(None)  # the table holds everything, leftovers of an interrupted run included
    stats.seconds = time.perf_counter() - start
    return table, stats
