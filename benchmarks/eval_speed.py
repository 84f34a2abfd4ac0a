"""Evaluation wall time: uniembed's runner against two baselines, same process, same model, same tasks.

Strategies, each timed from loaded tasks to scores (model construction and task reading excluded):
- uniembed: every distinct item of the whole suite encoded once, batches formed by length, media
  decoded ahead, on-disk cache (cold on the first run; the second run with the cache warm must encode 0).
- reference: the reference code's strategy: de-duplication within each data set only, items in file
  order (queries, then candidates), fixed-size batches, no cache.
- naive: each query's candidate list encoded separately together with the query (no de-duplication);
  for global tasks the "list" is the whole pool.
All three score through the same metrics, so their scores must agree (the script reports the largest
difference). Writes benchmarks/results/eval_speed.{json,md}.

    .venv/bin/python benchmarks/eval_speed.py [--data DIR | --size tiny] [--model tiny] [--batch-size 16]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from uniembed.eval.cache import EmbeddingCache
from uniembed.eval.encoding import encode_distinct
from uniembed.eval.metrics import ranking_metrics
from uniembed.eval.runner import run_tasks, score_task
from uniembed.eval.suites import SuiteOptions, get_suite

RESULTS = Path(__file__).parent / "results"


def run_uniembed(model, tasks, batch_size: int, cache_dir: Path) -> tuple[float, dict, dict]:
    cache = EmbeddingCache(cache_dir, model.model_id)
    start = time.perf_counter()
    run = run_tasks(model, tasks, batch_size=batch_size, cache=cache, examples_per_task=0, progress=False)
    seconds = time.perf_counter() - start
    cache.close()
    return seconds, {r.name: r.score for r in run.tasks}, {"encoded": run.stats.encoded, "distinct": run.stats.distinct,
                                                            "requested": run.stats.requested}


def run_reference(model, tasks, batch_size: int) -> tuple[float, dict, dict]:
    start = time.perf_counter()
    scores, encoded = {}, 0
    for task in tasks:
        items = list(task.queries) + list(task.candidates)
        # file order, fixed batches, de-duplicated within this data set only, nothing kept between data sets
        table, stats = encode_distinct(model, items, batch_size=batch_size, by_length=False, chunk_batches=1,
                                       decode_workers=2, progress=False)
        encoded += stats.encoded
        scores[task.name] = score_task(task, table, examples_per_task=0).score
    return time.perf_counter() - start, scores, {"encoded": encoded}


def run_naive(model, tasks, batch_size: int) -> tuple[float, dict, dict]:
    start = time.perf_counter()
    scores, encoded = {}, 0
    for task in tasks:
        lists = task.candidate_lists or [list(range(len(task.candidates)))] * len(task.queries)
        rows = []
        for query, candidates in zip(task.queries, lists):
            items = [query] + [task.candidates[j] for j in candidates]
            vectors = np.asarray(model.encode(items, batch_size=batch_size), dtype=np.float32)
            encoded += len(items)
            rows.append(vectors[1:] @ vectors[0])
        width = max(len(r) for r in rows)
        matrix = np.full((len(rows), width), -np.inf)
        for q, row in enumerate(rows):
            matrix[q, :len(row)] = row
        metrics = ranking_metrics(matrix, task.qrels, ks=(1, 5, 10))
        scores[task.name] = 100.0 * metrics[task.metric]
    return time.perf_counter() - start, scores, {"encoded": encoded}


def largest_difference(a: dict, b: dict) -> float:
    return max(abs(a[name] - b[name]) for name in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="synthetic benchmark folder (default: generate one of --size)")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--model", default="tiny", help="model spec for uniembed.models.embedder.load_embedder")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of reference and uniembed (min kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()

    import torch

    from uniembed.models.embedder import load_embedder

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="uniembed-eval-speed-"))
    try:
        data = Path(args.data) if args.data else work / "synth"
        if not args.data:
            from uniembed.data.synth.generate import generate

            generate(data, size=args.size, seed=0, progress=False)
        model = load_embedder(args.model)
        tasks = get_suite("synthetic").load_tasks(data, SuiteOptions())
        model.encode(["warm up"], batch_size=1)

        # untimed warm-up of every strategy: PyTorch's CPU kernels pay a large one-off cost for each new
        # batch shape, which would otherwise be charged to whichever strategy meets a shape first
        run_reference(model, tasks, args.batch_size)
        run_uniembed(model, tasks, args.batch_size, work / "warmup-cache")
        if not args.skip_naive:
            run_naive(model, tasks, args.batch_size)
        results, runs = {}, {"reference": [], "uniembed_cold": []}
        load_before = os.getloadavg()[0]
        for repeat in range(args.repeats):  # alternate, so load from other processes hits both alike
            runs["reference"].append(run_reference(model, tasks, args.batch_size))
            runs["uniembed_cold"].append(run_uniembed(model, tasks, args.batch_size, work / f"cache{repeat}"))
        for name, measured in runs.items():
            results[name] = min(measured, key=lambda r: r[0])
        results["uniembed_warm"] = run_uniembed(model, tasks, args.batch_size, work / "cache0")
        if not args.skip_naive:
            results["naive"] = run_naive(model, tasks, args.batch_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ours = results["uniembed_cold"][0]
    report = {
        "date": "2026-11-22", "machine": "2-core CPU, no GPU", "python": platform.python_version(),
        "command": "python benchmarks/eval_speed.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                                  if v not in (None, False)),
        "model": args.model, "data": args.data or f"uniembed synth --size {args.size} --seed 0",
        "tasks": len(tasks), "queries": sum(len(t.queries) for t in tasks), "batch_size": args.batch_size,
        "seconds": {name: round(r[0], 2) for name, r in results.items()},
        "all_runs_seconds": {name: [round(r[0], 2) for r in measured] for name, measured in runs.items()},
        "load_average_at_start": round(load_before, 2),
        "items_encoded": {name: r[2]["encoded"] for name, r in results.items()},
        "speedup_vs_reference": round(results["reference"][0] / ours, 2),
        "speedup_warm_vs_reference": round(results["reference"][0] / results["uniembed_warm"][0], 2),
        "max_score_difference_vs_reference": round(largest_difference(results["uniembed_cold"][1], results["reference"][1]), 4),
        "scores": {name: round(v, 2) for name, v in results["uniembed_cold"][1].items()},
        "target": "speedup_vs_reference >= 2 (cold cache); warm run encodes 0 items",
    }
    if "naive" in results:
        report["speedup_vs_naive"] = round(results["naive"][0] / ours, 2)
        report["max_score_difference_vs_naive"] = round(largest_difference(results["uniembed_cold"][1], results["naive"][1]), 4)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Evaluation speed (synthetic suite)", "",
             f"Date {report['date']}, machine: {report['machine']}, model `{args.model}`, {report['tasks']} tasks, "
             f"{report['queries']} queries, batch size {args.batch_size}. After one untimed warm-up of each strategy "
             f"(first-time kernel costs per batch shape), best of {args.repeats} alternating runs "
             f"(load average {report['load_average_at_start']} at start: other jobs shared the machine).", "",
             f"Command: `{report['command']}`", "",
             "| strategy | seconds | items encoded | reference / strategy |", "|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r[0]:.1f} | {r[2]['encoded']} | {results['reference'][0] / r[0]:.2f}x |")
    lines += ["", f"Target: >= 2x faster than the reference strategy with a cold cache -> measured "
                  f"**{report['speedup_vs_reference']}x**; the warm-cache run encoded {results['uniembed_warm'][2]['encoded']} items.",
              f"Largest task-score difference between strategies: {report['max_score_difference_vs_reference']} points."]
    (RESULTS / "eval_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
