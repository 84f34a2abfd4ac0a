"""Writing rows in the real layouts (MMEB-V1 eval parquet, MMEB-train parquet, BEIR parquet, JSONL) and the
chance level of each task."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

MMEB_EVAL_FILE = "test-00000-of-00001.parquet"
MMEB_TRAIN_FILE = "original-00000-of-00001.parquet"
BEIR_FILE = "test-00000-of-00001.parquet"

STR_LIST = pa.list_(pa.string())
MMEB_EVAL_SCHEMA = pa.schema([("qry_text", pa.string()), ("qry_img_path", pa.string()),
                              ("tgt_text", STR_LIST), ("tgt_img_path", STR_LIST)])
MMEB_TRAIN_SCHEMA = pa.schema([(c, pa.string()) for c in
                               ("qry", "qry_image_path", "pos_text", "pos_image_path", "neg_text", "neg_image_path")])
VIDEO_TRAIN_SCHEMA = pa.schema([(c, pa.string()) for c in
                                ("qry", "qry_image_path", "qry_video_path", "pos_text", "pos_image_path", "pos_video_path",
                                 "neg_text", "neg_image_path", "neg_video_path")])
BEIR_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # the Hugging Face `Image` feature


def write_parquet(path: Path, rows: Sequence[dict], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [row[name] for row in rows] for name in schema.names}
    pq.write_table(pa.table(columns, schema=schema), path)


def write_beir(task_dir: Path, queries: Sequence[tuple[int, str]], corpus: Sequence[tuple[int, bytes, str]],
               qrels: Sequence[tuple[int, int, int]]) -> None:
    """`queries/`, `corpus/`, `qrels/` folders each holding one parquet file, as ViDoRe's BEIR data sets."""
    write_parquet(task_dir / "queries" / BEIR_FILE, [{"query-id": q, "query": t} for q, t in queries],
                  pa.schema([("query-id", pa.int64()), ("query", pa.string())]))
    write_parquet(task_dir / "corpus" / BEIR_FILE,
                  [{"corpus-id": c, "image": {"bytes": data, "path": name}} for c, data, name in corpus],
                  pa.schema([("corpus-id", pa.int64()), ("image", BEIR_IMAGE)]))
    write_parquet(task_dir / "qrels" / BEIR_FILE, [{"query-id": q, "corpus-id": c, "score": s} for q, c, s in qrels],
                  pa.schema([("query-id", pa.int64()), ("corpus-id", pa.int64()), ("score", pa.int64())]))


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


# ---------------------------------------------------------------- chance levels (percent)

def chance_local_hit1(list_lengths: Sequence[int]) -> float:
    """Random ranking of each query's own list with one relevant candidate: mean of 1/len."""
    return 100.0 * sum(1.0 / n for n in list_lengths) / len(list_lengths)


def chance_global_hit1(pool_size: int, relevant_per_query: Sequence[int]) -> float:
    """Random ranking of a pool of `pool_size`: the top item is relevant with probability r/N."""
    return 100.0 * sum(r / pool_size for r in relevant_per_query) / len(relevant_per_query)


def expected_random_ndcg(relevances: Sequence[float], pool_size: int, k: int) -> float:
    """Exact expected nDCG@k (linear gain) of a uniformly random ranking of `pool_size` items.

    Every rank holds each item with probability 1/N, so E[DCG@k] = (sum of gains / N) * sum_{r<=k} 1/log2(r+1);
    the ideal DCG is fixed, hence E[nDCG] = E[DCG] / IDCG.
    """
    gains = sorted((g for g in relevances if g > 0), reverse=True)
    ideal = sum(g / math.log2(r + 2) for r, g in enumerate(gains[:k]))
    discount = sum(1.0 / math.log2(r + 2) for r in range(min(k, pool_size)))
    return (sum(gains) / pool_size) * discount / ideal


def chance_ndcg(qrels: Sequence[Sequence[float]], pool_size: int, k: int = 5) -> float:
    return 100.0 * sum(expected_random_ndcg(q, pool_size, k) for q in qrels) / len(qrels)
