"""`eval`, `encode` and `mine` across processes: torchrun with 2 gloo ranks on CPU, and jobs sharing one cache.

One process's results are the reference: scores, cached embeddings and encode output must be equal (bit for bit),
a job whose rank was killed and that is started again must finish with the same result while encoding only
what no rank had finished, and two jobs writing one embedding cache must lose nothing.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ports import free_port

from uniembed.index.store import read_embeddings
from uniembed.parallel import balanced_owners

DIST = Path(__file__).resolve().parents[1] / "dist"


def torchrun(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS="1"))


def part_keys(cache_dir: Path) -> set[str]:
    keys: set[str] = set()
    for path in cache_dir.glob("*.parts/*.npz"):
        with np.load(path) as data:
            keys.update(data["keys"].tolist())
    return keys


def cache_rows(cache_dir: Path) -> dict[str, bytes]:
    [path] = cache_dir.glob("*.sqlite")
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, vector FROM embeddings"))


def rank_reports(out: Path, mode: str, phase: str = "") -> list[dict]:
    return [json.loads((out / f"rank-{r}-{mode}{phase}.json").read_text()) for r in range(2)]


@pytest.mark.distributed
def test_a_killed_rank_and_a_restarted_job_finish_like_one_process(tmp_path):
    sys.path.insert(0, str(DIST))
    import encode_worker

    from uniembed.corpus import Options, encode_corpus
    from uniembed.encoding import encode_distinct

    out = tmp_path / "job"
    out.mkdir()
    worker = str(DIST / "encode_worker.py")
    # 1. rank 1 dies after its first chunk of eval encoding: its chunk and rank 0's chunks survive as parts
    killed = torchrun(worker, str(out), "kill-eval")
    assert killed.returncode != 0
    finished = part_keys(out / "cache")
    distinct = {item.content_key() for item in encode_worker.eval_items()}
    assert 0 < len(finished) < len(distinct)
    # 2. restarted: encodes only what no rank finished; then rank 1 dies after its first shard of `encode`
    killed = torchrun(worker, str(out), "kill-encode")
    assert killed.returncode != 0
    assert sum(r["eval_encoded"] for r in rank_reports(out, "kill-encode", "-eval")) == len(distinct) - len(finished)
    assert set(cache_rows(out / "cache")) == distinct and not part_keys(out / "cache")
    records = [json.loads(p.read_text()) for p in (out / "corpus").glob("shard-*.json")]
    done_rows = sum(record["rows"] for record in records)
    assert 0 < done_rows < 53
    # 3. restarted again: eval is all cached, encode does only the shards no rank wrote
    full = torchrun(worker, str(out), "full")
    assert full.returncode == 0, full.stderr[-3000:]
    reports = rank_reports(out, "full")
    assert sum(r["eval_encoded"] for r in reports) == 0
    assert sum(r["corpus_encoded"] for r in reports) == 53 - done_rows

    # the same result as one process
    items = encode_worker.eval_items()
    reference, _ = encode_distinct(encode_worker.CountingEncoder(), items, batch_size=4, progress=False)
    table = np.load(out / "table-full.npz")
    assert table["keys"].tolist() == list(reference.row_of)
    assert np.array_equal(table["vectors"], reference.vectors)
    assert cache_rows(out / "cache") == {key: reference.vectors[row].tobytes() for key, row in reference.row_of.items()}
    encode_corpus(encode_worker.CountingEncoder(), out / "rows.jsonl", tmp_path / "one",
                  Options(batch_size=4, shard_size=6, progress=False))
    ids, vectors = read_embeddings(out / "corpus")
    reference_ids, reference_vectors = read_embeddings(tmp_path / "one")
    assert ids == reference_ids and np.array_equal(vectors, reference_vectors)
    assert (out / "corpus" / "manifest.jsonl").read_text() == (tmp_path / "one" / "manifest.jsonl").read_text()


def test_two_jobs_writing_one_cache_lose_nothing(tmp_path):
    """Job A holds a long write (a big batch) while job B stores its vectors: B waits instead of failing."""
    script = """
import sqlite3, sys, time, numpy as np
from uniembed.encoding import EmbeddingCache
name, hold = sys.argv[1], float(sys.argv[2])
cache = EmbeddingCache(sys.argv[3], "shared-model")
for start in range(0, 200, 20):
    keys = [f"{name}-{i}" for i in range(start, start + 20)]
    cache.put(keys, np.stack([np.full(4, i, np.float32) for i in range(start, start + 20)]))
    if start == 100 and hold:  # a long write (a big batch) holds the database's write lock
        writer = sqlite3.connect(cache.path, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        time.sleep(hold)
        writer.execute("COMMIT")
print(len(cache))
"""
    jobs = [subprocess.Popen([sys.executable, "-c", script, name, hold, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for name, hold in (("a", "6"), ("b", "0"))]
    results = [job.communicate(timeout=120) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [err[-2000:] for _, err in results]
    rows = cache_rows(tmp_path)
    assert len(rows) == 400
    assert all(np.frombuffer(rows[f"{name}-{i}"], np.float32)[0] == i for name in "ab" for i in range(200))


def test_balanced_owners_split_by_weight_and_agree_on_every_rank():
    weights = [100, 1, 1, 1, 50, 50, 1, 1]
    owners = balanced_owners(weights, 2)
    assert owners == balanced_owners(list(weights), 2)
    loads = [sum(w for w, o in zip(weights, owners) if o == part) for part in (0, 1)]
    assert sorted(loads) == [102, 103]
    assert balanced_owners(weights, 1) == [0] * len(weights)


@pytest.mark.distributed  # ~20 s on 2 quiet cores (60 s when other jobs load them): 3 processes, 3 verbs each
def test_cli_eval_encode_and_mine_on_two_ranks_equal_one_process(tmp_path):
    from PIL import Image

    from uniembed.data.synth.generate import generate

    data = tmp_path / "synth"
    generate(data, size="tiny", seed=0, progress=False)
    pages = [Image.new("RGB", (60, 80), colour) for colour in ("red", "green", "blue")]
    pages[0].save(data / "doc.pdf", save_all=True, append_images=pages[1:])
    rows = [{"id": f"t{i}", "text": "caption " * (1 + i % 4) + str(i)} for i in range(9)]
    rows.insert(4, {"id": "doc", "pdf": "doc.pdf", "metadata": {"title": "three pages"}})
    (data / "encode.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    worker = str(DIST / "cli_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, worker, str(data), str(tmp_path / "one")], capture_output=True, text=True,
                         timeout=240, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = torchrun(worker, str(data), str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count('"json":') == 1  # rank 0 alone reports

    one_results, two_results = (json.loads((tmp_path / run / "eval" / "results.json").read_text()) for run in ("one", "two"))
    assert two_results["scores"] == one_results["scores"] and two_results["metrics"] == one_results["metrics"]
    assert cache_rows(tmp_path / "two" / "eval" / "cache") == cache_rows(tmp_path / "one" / "eval" / "cache")
    for name in ("manifest.jsonl", "metadata.jsonl", "info.json"):
        assert (tmp_path / "two" / "encode" / name).read_text() == (tmp_path / "one" / "encode" / name).read_text()
    ids, vectors = read_embeddings(tmp_path / "two" / "encode")
    one_ids, one_vectors = read_embeddings(tmp_path / "one" / "encode")
    assert ids == one_ids and len(ids) == 12 and np.array_equal(vectors, one_vectors)
    assert (tmp_path / "two" / "mine" / "negatives.jsonl").read_text() == \
        (tmp_path / "one" / "mine" / "negatives.jsonl").read_text()


def test_ranks_that_read_different_corpora_stop_with_the_reason_instead_of_waiting(tmp_path):
    """Every rank plans the shards from the input it read; if the plans differ (the file changed between the
    ranks' reads), rank 0 would wait for ever for shards no rank plans. The ranks compare a digest of the plan."""
    out = tmp_path / "job"
    out.mkdir()
    done = torchrun(str(DIST / "encode_worker.py"), str(out), "differ", timeout=120)
    assert done.returncode != 0
    assert "rank 1 read 52 rows from" in done.stderr and "planned other shards than rank 0" in done.stderr
    assert "give every rank the same, unchanging input file" in done.stderr
