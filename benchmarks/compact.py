"""Quantised vectors (issue 25, point 2): bytes per item, index build and query time, and the score kept.

Two parts, each per precision (float32, float16, int8, uint8, binary, ubinary) and index factory:
- speed: N random unit vectors (default 100k x 512), FAISS threads = --threads (default 2, the CPU box); index
  build time, the index's bytes per item (FAISS file / N; the rescoring vectors beside it counted apart), the
  query time of --queries queries at top 10, plain and with `--rescore 4`, and recall@10 against the exact float
  top 10 (random vectors are the hardest case for quantisation: no cluster structure to keep).
- score kept: scikit-learn's 8x8 handwritten digits (1,797 real scans; the pixels, centred and L2-normalised, are
  64-d vectors), each of 200 held-out digits querying the other 1,597; precision@10 = the share of the top 10 that
  show the same digit, per precision and with rescoring, as a share of float32's.
- trained models (`--train 60,40`, benchmarks/compact_models.py): the demo recipe trained with and without a
  Matryoshka loss, each scored at every width x precision on the synthetic suite and on the digits in an MMEB
  layout, as a share of its own full-width float32 score.
Writes benchmarks/results/compact.{json,md}.

    .venv/bin/python benchmarks/compact.py [--count 100000,1000000] [--dimension 512] [--queries 200] [--threads 2]
        [--train STAGE1,STAGE2 --runs runs/compact]
    .venv/bin/python benchmarks/compact.py --multi-vector        # token pooling: compact_multivector.{json,md}
    .venv/bin/python benchmarks/compact.py --token-precisions    # stored tokens: compact_multivector_precision.*
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import tempfile
import time
from pathlib import Path

import numpy as np

from uniembed.index import build_sharded_index, exact_topk

RESULTS = Path(__file__).parent / "results"
# IVF-PQ ("IVF256,PQ64") works (tests/test_index_faiss.py) but its k-means took ~2 min on 20k vectors on the
# shared 2-core box, so it is not in the default run
HNSW_MAX = 100_000  # HNSW graphs are built only up to this count (a 1M graph takes too long on the shared 2 cores)
CASES = [("float32", "Flat", None), ("float32", "HNSW32", None),
         ("float16", "SQfp16", "float32"), ("int8", "SQ8", "float32"), ("uint8", "SQ8", "float32"),
         ("binary", "BFlat", "float32"), ("binary", "BFlat", "int8"), ("ubinary", "BHNSW32", "float32")]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def build(pool: np.ndarray, directory: Path, precision: str, factory: str, rescore: str | None, train: int):
    ids = [str(i) for i in range(len(pool))]
    start = time.perf_counter()
    index = build_sharded_index([(ids, pool)], directory, factory=factory, precision=precision,
                                rescore_precision=rescore, train_size=train, shard_size=len(pool))
    return index, time.perf_counter() - start


def search(index, queries: np.ndarray, k: int, rescore: int) -> tuple[list[list[int]], float]:
    start = time.perf_counter()
    _, ids = index.search(queries, k=k, nprobe=16, rescore=rescore)
    return [[int(i) for i in row] for row in ids], time.perf_counter() - start


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth.tolist())]))


def speed(args: argparse.Namespace, root: Path, count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    pool = unit(rng.normal(size=(count, args.dimension)))
    queries = unit(rng.normal(size=(args.queries, args.dimension)))
    _, truth = exact_topk(queries, pool, 10, use_gpu=False)
    rows = []
    for precision, factory, rescore in CASES:
        if "HNSW" in factory and count > HNSW_MAX:
            continue
        directory = root / f"{count}-{precision}-{factory}-{rescore}".replace(",", "_")
        index, built = build(pool, directory, precision, factory, rescore, train=min(count, 50_000))
        found, took = search(index, queries, 10, 0)
        row = {"count": count, "precision": precision, "factory": factory, "rescore_vectors": rescore,
               "build_s": round(built, 2), "bytes_per_item": round((directory / "index-00000.faiss").stat().st_size / count, 1),
               "rescore_bytes_per_item": round((directory / "rescore-00000.npy").stat().st_size / count, 1)
               if rescore else 0, "query_ms": round(1000 * took / args.queries, 3), "recall@10": round(recall(found, truth), 4)}
        if rescore:
            found, took = search(index, queries, 10, 4)
            row.update({"query_rescore4_ms": round(1000 * took / args.queries, 3),
                        "recall@10_rescore4": round(recall(found, truth), 4)})
        print(json.dumps(row), flush=True)
        rows.append(row)
        del index
    return rows


def score_kept(root: Path) -> list[dict]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    vectors = unit(digits.data - digits.data.mean(axis=0))
    order = np.random.default_rng(0).permutation(len(vectors))
    held, rest = order[:200], order[200:]
    labels = digits.target
    rows = []
    for precision, factory, rescore in [("float32", "Flat", None)] + [c for c in CASES if c[0] != "float32"]:
        index, _ = build(vectors[rest], root / f"digits-{precision}-{factory}-{rescore}", precision, factory,
                         rescore, train=len(rest))
        for k_rescore in ([0, 4] if rescore else [0]):
            found, _ = search(index, vectors[held], 10, k_rescore)
            hits = np.mean([[labels[rest[i]] == labels[q] for i in row] for q, row in zip(held, found)])
            rows.append({"precision": precision, "factory": factory, "rescore_vectors": rescore if k_rescore else None,
                         "rescore": k_rescore, "precision@10": round(float(hits) * 100, 2)})
    base = rows[0]["precision@10"]
    for row in rows:
        row["kept_vs_float32"] = round(row["precision@10"] / base * 100, 1)
    return rows


def digit_tokens(image: np.ndarray, position_weight: float = 1.0) -> np.ndarray:
    """A digit scan as a multi-vector "page": its 25 overlapping 4x4 windows (stride 1) as tokens, each the
    window's centred pixels plus its (row, column) / 4 scaled by `position_weight`, L2-normalised (18-d)."""
    windows = []
    for row in range(5):
        for column in range(5):
            pixels = image[row:row + 4, column:column + 4].ravel() / 16.0
            windows.append(np.concatenate([pixels - pixels.mean(), position_weight * np.array([row, column]) / 4]))
    tokens = np.asarray(windows, np.float32)
    return tokens / np.maximum(np.linalg.norm(tokens, axis=1, keepdims=True), 1e-6)


def digit_pages(directory: Path, pad: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The 1,797 digit scans as multi-vector pages (`digit_tokens`, plus `pad` zero coordinates), split into 200
    held-out queries and the rest (seed 0), the rest written to `directory` as multi-vector embeddings:
    (tokens of every scan, labels, held-out indices, pool indices)."""
    from sklearn.datasets import load_digits

    from uniembed.index.multistore import write_multi_embeddings

    digits = load_digits()
    tokens = [np.pad(digit_tokens(image), ((0, 0), (0, pad))) for image in digits.images]
    order = np.random.default_rng(0).permutation(len(tokens))
    held, rest = order[:200], order[200:]
    write_multi_embeddings(directory, [str(i) for i in rest], [tokens[i] for i in rest])
    return tokens, digits.target, held, rest


def multi_vector(root: Path, factors: tuple[int, ...] = (1, 2, 3), token_k: int = 32) -> list[dict]:
    """Multi-vector score and vectors per page at each token pool factor (issue 25, point 4), on the digits.

    No trained late-interaction model is at hand (a tiny random one ranks at chance), so the "pages" are real
    scans cut into tokens (`digit_tokens`): 200 held-out digits query the other 1,597 by exact MaxSim over the
    pooled pages (`eval.multivector.maxsim_matrix`, queries never pooled); precision@10 = the share of the top
    10 showing the same digit, kept as a share of pool factor 1's. It shows what pooling the stored tokens by
    hierarchical clustering costs in score and saves in vectors; the same pages are also put in a
    `MultiVectorIndex` (FAISS Flat over the tokens, `token_k` nearest tokens per query token, exact MaxSim of
    the candidates) for its build and query time and its top-10 agreement with the exact ranking."""
    from uniembed.eval.multivector import maxsim_matrix
    from uniembed.index.multistore import iter_multi_shards
    from uniembed.index.multivector import build_multivector_index
    from uniembed.index.token_pooling import pool_items

    tokens, labels, held, rest = digit_pages(root / "digits-multi")
    queries = [tokens[i] for i in held]
    rows = []
    for factor in factors:
        start = time.perf_counter()
        pages = pool_items([tokens[i] for i in rest], factor)
        pooled_s = time.perf_counter() - start
        start = time.perf_counter()
        exact = np.argsort(-maxsim_matrix(queries, pages), axis=1, kind="stable")[:, :10]
        exact_s = time.perf_counter() - start
        hits = float(np.mean(labels[rest][exact] == labels[held][:, None]))
        start = time.perf_counter()
        index = build_multivector_index(iter_multi_shards(root / "digits-multi"), root / f"digits-index-{factor}",
                                        pool_factor=factor)
        built_s = time.perf_counter() - start
        start = time.perf_counter()
        _, found = index.search(queries, k=10, token_k=token_k)
        query_s = time.perf_counter() - start
        agree = np.mean([len({int(i) for i in ids} & {int(rest[j]) for j in row}) / 10
                         for ids, row in zip(found, exact)])
        rows.append({"pool_factor": factor, "vectors_per_page": round(sum(len(p) for p in pages) / len(pages), 2),
                     "precision@10": round(hits * 100, 2), "pooling_s": round(pooled_s, 2),
                     "exact_maxsim_s": round(exact_s, 2), "index_build_s": round(built_s, 2),
                     "index_query_ms": round(1000 * query_s / len(queries), 2), "index_top10_agreement": round(float(agree), 4),
                     "token_k": token_k})
        print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        row["kept_vs_factor1"] = round(row["precision@10"] / rows[0]["precision@10"] * 100, 1)
    return rows


def token_precisions(root: Path, token_k: int = 32) -> list[dict]:
    """The multi-vector index at each stored-token precision (pool factor 1), on the digit pages above.

    The 18-d digit tokens get 6 zero coordinates (24-d: binary packs 8 per byte; zeros change no inner product,
    and every token shares their bits, so no Hamming distance either). Per precision: bytes per stored token,
    build and query time (`token_k` nearest tokens per query token, then MaxSim over the stored tokens),
    precision@10, and the top-10 overlap with exact float32 MaxSim over the same pages."""
    from uniembed.eval.multivector import maxsim_matrix
    from uniembed.index.multistore import iter_multi_shards
    from uniembed.index.multivector import PRECISIONS, build_multivector_index

    tokens, labels, held, rest = digit_pages(root / "digits-24", pad=6)
    queries = [tokens[i] for i in held]
    exact = np.argsort(-maxsim_matrix(queries, [tokens[i] for i in rest]), axis=1, kind="stable")[:, :10]
    rows = []
    for precision in PRECISIONS:
        start = time.perf_counter()
        index = build_multivector_index(iter_multi_shards(root / "digits-24"), root / f"digits-{precision}",
                                        precision=precision)
        built_s = time.perf_counter() - start
        stored = np.load(root / f"digits-{precision}" / "tokens-00000.npy", mmap_mode="r")
        start = time.perf_counter()
        _, found = index.search(queries, k=10, token_k=token_k)
        query_s = time.perf_counter() - start
        top = np.array([[int(i) for i in ids] for ids in found])
        agree = np.mean([len(set(row) & {int(rest[j]) for j in truth}) / 10 for row, truth in zip(top, exact)])
        rows.append({"precision": precision, "factory": index.factory,
                     "bytes_per_token": int(stored.dtype.itemsize * stored.shape[1]),
                     "precision@10": round(float(np.mean(labels[top] == labels[held][:, None])) * 100, 2),
                     "top10_vs_float32_exact": round(float(agree), 4), "index_build_s": round(built_s, 2),
                     "index_query_ms": round(1000 * query_s / len(queries), 2), "token_k": token_k})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def token_precision_markdown(meta: dict, rows: list[dict]) -> str:
    lines = [f"# Multi-vector index: stored-token precisions ({meta['date']} {meta['time']}, {meta['machine']})", "",
             f"Command: `{meta['command']}` (load average at start {meta['load_average']}, FAISS threads "
             f"{meta['threads']})", "",
             "The digit pages of `compact_multivector.md` (25 tokens each, padded to 24-d so binary packs them), 200 "
             f"queries over 1,597 pages, pool factor 1, {rows[0]['token_k']} nearest stored tokens per query token "
             "(float, SQfp16, SQ8 on the calibrated grid, or Hamming for binary), then MaxSim of the float query "
             "tokens over the stored tokens (int8 at their step's value, binary as signs of unit length).", "",
             "| precision | FAISS | bytes/token | precision@10 | top-10 = exact float32 MaxSim | build s | query ms |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['factory']} | {r['bytes_per_token']} | {r['precision@10']} | "
                     f"{r['top10_vs_float32_exact']:.3f} | {r['index_build_s']} | {r['index_query_ms']} |")
    return "\n".join(lines) + "\n"


def multi_vector_markdown(meta: dict, rows: list[dict]) -> str:
    lines = [f"# Multi-vector token pooling ({meta['date']}, {meta['machine']})", "", f"Command: `{meta['command']}`",
             f"(load average at start {meta['load_average']}, FAISS threads {meta['threads']})", "",
             "scikit-learn digits as multi-vector pages (25 tokens each: 4x4 windows + position, 18-d); 200 queries "
             "over 1,597 pages; exact MaxSim over pooled pages; the index: FAISS Flat over the tokens, "
             f"{rows[0]['token_k']} nearest tokens per query token, exact MaxSim of the candidates.", "",
             "| pool factor | vectors/page | precision@10 | kept vs factor 1 (%) | pooling s | exact MaxSim s | "
             "index build s | index query ms | index top-10 = exact |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['pool_factor']} | {r['vectors_per_page']} | {r['precision@10']} | {r['kept_vs_factor1']} | "
                     f"{r['pooling_s']} | {r['exact_maxsim_s']} | {r['index_build_s']} | {r['index_query_ms']} | "
                     f"{r['index_top10_agreement']:.3f} |")
    return "\n".join(lines) + "\n"


def section_main(meta: dict, option: str, measure, markdown_of, stem: str, key: str) -> None:
    """`compact.py --OPTION`: that section alone, measured in a temporary folder, to results/STEM.{json,md}."""
    meta = {**meta, "command": f"benchmarks/compact.py --{option}"}
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(Path(tmp))
    text = markdown_of(meta, rows)
    out = RESULTS / stem
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, key: rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text(text)
    print(text)


def markdown(meta: dict, speed_rows: list[dict], kept_rows: list[dict], grid_lines: list[str] = ()) -> str:
    lines = [f"# Quantised vectors ({meta['date']}, {meta['machine']})", "", f"Command: `{meta['command']}`", "",
             f"## Speed: random {meta['dimension']}-d unit vectors, {meta['queries']} queries, "
             f"top 10, {meta['threads']} FAISS threads (load average at start {meta['load_average']}, at the end "
             f"{meta.get('load_average_end', '-')}; HNSW only up to {HNSW_MAX:,} vectors)"
             + (f"; measured by `{meta['speed_measured']['command']}` at {meta['speed_measured']['time']}, load "
                f"{meta['speed_measured']['load_average']} -> {meta['speed_measured']['load_average_end']}"
                if "speed_measured" in meta else ""), "",
             "| vectors | precision | factory | bytes/item | rescore vectors (bytes/item) | build s | query ms | recall@10 | "
             "query ms, rescore 4 | recall@10, rescore 4 |", "|---:|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in speed_rows:
        rescore = f"{r['rescore_vectors']} ({r['rescore_bytes_per_item']:.0f})" if r["rescore_vectors"] else "-"
        lines.append(f"| {r['count']:,} | {r['precision']} | {r['factory']} | {r['bytes_per_item']:.0f} | {rescore} | {r['build_s']} | "
                     f"{r['query_ms']} | {r['recall@10']:.3f} | {r.get('query_rescore4_ms', '-')} | "
                     f"{r.get('recall@10_rescore4', '-')} |")
    lines += ["", "## Score kept: scikit-learn digits (64-d pixel vectors), 200 queries over 1,597 scans", "",
              "| precision | factory | rescore | precision@10 | kept vs float32 (%) |", "|---|---|---|---:|---:|"]
    for r in kept_rows:
        rescore = f"4 x k with {r['rescore_vectors']}" if r["rescore"] else "-"
        lines.append(f"| {r['precision']} | {r['factory']} | {rescore} | {r['precision@10']} | {r['kept_vs_float32']} |")
    return "\n".join([*lines, *grid_lines]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", default="100000", help="comma-separated vector counts for the speed part")
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train", help="STAGE1,STAGE2 steps: also train the demo model with and without Matryoshka "
                                        "and score each at every width x precision (see compact_models.py)")
    parser.add_argument("--speed-from", help="take the speed rows (and their meta) from an earlier run's .json "
                                             "instead of measuring them again")
    parser.add_argument("--runs", default="runs/compact", help="where --train keeps its data, models and evals")
    parser.add_argument("--synthetic-datasets", help="comma-separated synthetic tasks the models score (default all)")
    parser.add_argument("--training", help="how the models were trained, for the table's title")
    parser.add_argument("--note", default="", help="a paragraph under the trained-model table's title")
    parser.add_argument("--digits", type=int, default=500, help="digits in the MMEB-layout set the models score")
    parser.add_argument("--out", default=str(RESULTS / "compact"), help="results path without extension")
    parser.add_argument("--multi-vector", action="store_true", help="run only the multi-vector token-pooling section")
    parser.add_argument("--token-precisions", action="store_true",
                        help="run only the multi-vector index's stored-token precisions (compact_multivector_precision)")
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    counts = [int(part) for part in args.count.split(",")]
    meta = {"date": datetime.date.today().isoformat(), "time": datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M UTC"), "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
            "command": "benchmarks/compact.py " + " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}"
                                                      for k, v in vars(args).items() if k != "out" and v),
            "counts": counts, "dimension": args.dimension, "queries": args.queries, "threads": args.threads,
            "load_average": round(os.getloadavg()[0], 1), "faiss": faiss.__version__}
    if args.multi_vector:
        return section_main(meta, "multi-vector", multi_vector, multi_vector_markdown, "compact_multivector",
                            "multi_vector")
    if args.token_precisions:
        return section_main(meta, "token-precisions", token_precisions, token_precision_markdown,
                            "compact_multivector_precision", "token_precisions")
    grids, grid_lines = {}, []
    if args.train:
        from compact_models import grid_markdown, trained_grids

        steps = tuple(int(part) for part in args.train.split(","))
        grids = trained_grids(Path(args.runs), steps, digits=args.digits,
                              datasets=args.synthetic_datasets.split(",") if args.synthetic_datasets else None)
        grid_lines = grid_markdown(grids, args.training or f"demo recipe, {steps[0]} + {steps[1]} steps", args.note)
    with tempfile.TemporaryDirectory() as tmp:
        kept_rows = score_kept(Path(tmp))
        if args.speed_from:
            earlier = json.loads(Path(args.speed_from).read_text())
            speed_rows = earlier["speed"]
            meta.update({k: earlier["meta"][k] for k in ("counts", "dimension", "queries", "threads")},
                        speed_measured=earlier["meta"])
        else:
            speed_rows = [row for count in counts for row in speed(args, Path(tmp), count)]
    meta["load_average_end"] = round(os.getloadavg()[0], 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "speed": speed_rows, "score_kept": kept_rows,
                                                    "trained": grids}, indent=2) + "\n")
    Path(args.out + ".md").write_text(markdown(meta, speed_rows, kept_rows, grid_lines))
    print(markdown(meta, speed_rows, kept_rows, grid_lines))


if __name__ == "__main__":
    main()
