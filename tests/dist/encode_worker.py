"""Worker for tests/test_distributed_eval.py: `torchrun --nproc_per_node 2 encode_worker.py OUT MODE`.

Every rank runs the two multi-rank encoders on the same inputs with a deterministic fake encoder:
`encoding.encode_distinct` (what `uniembed eval` and `mine` run) into OUT/cache, then
`corpus.encode_corpus` (what `uniembed encode` runs) into OUT/corpus. Each rank writes
OUT/rank-<r>-<MODE>-eval.json and OUT/rank-<r>-<MODE>.json with what it encoded; rank 0 also writes the table to OUT/table-<MODE>.npz.
MODE "kill-eval" makes rank 1 die after its first chunk of the first run, "kill-encode" after its first shard of
the second; "full" runs both to the end; "differ" gives rank 1 a corpus one row shorter (only `encode_corpus`).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_fakes import FakeEncoder  # noqa: E402

from uniembed.corpus import Options, encode_corpus  # noqa: E402
from uniembed.encoding import EmbeddingCache, encode_distinct  # noqa: E402
from uniembed.inputs import Item  # noqa: E402
from uniembed.parallel import join_world  # noqa: E402


def eval_items() -> list[Item]:
    """Texts of different lengths with repeats (as queries and candidates of several tasks share items)."""
    return [Item(text=" ".join(["word"] * (1 + i % 4) + [f"t{i % 90}"])) for i in range(240)]  # 180 distinct


def corpus_rows(path: Path, rank: int = 0) -> None:
    """The corpus every rank reads, written by each rank whole under its own name and renamed into place: a rank
    never reads a file another rank is truncating (plain rewrites in place once made the ranks plan different
    shards, and the job waited for ever)."""
    temporary = path.with_name(f"{path.name}.{rank}.tmp")
    temporary.write_text("".join(json.dumps({"id": f"r{i}", "text": f"row {i} " + "x " * (i % 5)}) + "\n"
                                 for i in range(53)))
    os.replace(temporary, path)


class CountingEncoder(FakeEncoder):
    """The fake encoder with the Embedder's encode keywords; dies on rank 1 at call `die_at` when set."""

    dimension = 64

    def __init__(self, die_at: int | None = None) -> None:
        super().__init__()
        self.die_at = die_at

    def encode(self, items, batch_size: int = 32, **_ignored) -> np.ndarray:
        if self.die_at is not None and self.calls == self.die_at:
            os._exit(3)  # killed: no clean-up, whatever was not written is lost
        return super().encode(items, batch_size=batch_size)


def main() -> None:
    out, mode = Path(sys.argv[1]), sys.argv[2]
    world = join_world()
    if mode == "differ":  # rank 1 reads a corpus with one row less: the ranks must stop, not wait for each other
        rows = out / f"rows-{world.rank}.jsonl"
        corpus_rows(rows, world.rank)
        if world.rank == 1:
            rows.write_text("".join(rows.read_text().splitlines(keepends=True)[:-1]))
        encode_corpus(CountingEncoder(), rows, out / "corpus", Options(batch_size=4, shard_size=6, progress=False),
                      world=world)
        return
    killer = world.rank == 1
    encoder = CountingEncoder(die_at=1 if killer and mode == "kill-eval" else None)
    cache = EmbeddingCache(out / "cache", encoder.model_id)
    table, stats = encode_distinct(encoder, eval_items(), batch_size=4, chunk_batches=2, cache=cache, world=world,
                                   progress=False)
    cache.close()
    eval_encoded = len(encoder.encoded)
    (out / f"rank-{world.rank}-{mode}-eval.json").write_text(json.dumps({"eval_encoded": eval_encoded}))
    corpus_rows(out / "rows.jsonl", world.rank)  # every rank writes the same bytes, atomically
    encoder = CountingEncoder(die_at=1 if killer and mode == "kill-encode" else None)
    encode_corpus(encoder, out / "rows.jsonl", out / "corpus", Options(batch_size=4, shard_size=6, progress=False),
                  world=world)
    report = {"eval_encoded": eval_encoded, "corpus_encoded": len(encoder.encoded)}
    (out / f"rank-{world.rank}-{mode}.json").write_text(json.dumps(report))
    if world.is_main:
        np.savez(out / f"table-{mode}.npz", keys=np.asarray(list(table.row_of)), vectors=table.vectors,
                 from_cache=stats.from_cache)


if __name__ == "__main__":
    main()
