"""`uniembed eval --model DIR --suite NAME --data DIR --out DIR`: score a model on a benchmark suite."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    from ..eval.suites import SUITES
    from .common import add_model_argument

    suites = "\n".join(f"  {name:14s} {suite.description}" for name, suite in sorted(SUITES.items()))
    parser = subparsers.add_parser("eval", help="evaluate a model on a benchmark suite",
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   description="Evaluate a model; writes results.json, report.md and report.html.\n\n"
                                               f"suites:\n{suites}")
    add_model_argument(parser)
    parser.add_argument("--suite", required=True, choices=sorted(SUITES), metavar="NAME", help="suite name (see above)")
    parser.add_argument("--data", required=True, help="local copy of the suite's data")
    parser.add_argument("--out", required=True, help="output directory for the reports")
    parser.add_argument("--datasets", help="comma-separated subset of data sets")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pool", choices=("local", "global"), default="local", help="candidate pool (M-BEIR)")
    parser.add_argument("--cache", help="embedding cache directory (default: OUT/cache); 'none' disables it")
    parser.add_argument("--seed", type=int, default=0, help="seed of M-BEIR's random instruction draw")
    parser.add_argument("--examples", type=int, default=3, help="ranked examples per task in report.html")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..eval.evaluate import evaluate
    from ..parallel import join_world, rank_device
    from .common import load_model

    world = join_world()  # under torchrun: every rank encodes a share, rank 0 scores and reports
    model = load_model(args.model, rank_device(args.device), args.dtype)
    cache = None if args.cache == "none" else (args.cache or str(Path(args.out) / "cache"))
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    evaluation = evaluate(model, args.suite, args.data, args.out, datasets=datasets, pool=args.pool,
                          batch_size=args.batch_size, cache_dir=cache, seed=args.seed, examples_per_task=args.examples,
                          world=world)
    if evaluation is None:
        return 0
    payload = evaluation.payload
    width = max(len(name) for name in [*payload["scores"], *payload["groups"], "overall"])
    chance = payload.get("chance", {})
    for name, score in payload["scores"].items():
        extra = f"  (chance {chance[name]:.1f})" if name in chance else ""
        print(f"{name:{width}s}  {payload['main_metric'][name]:>10s}  {score:6.2f}{extra}")
    for group, value in payload["groups"].items():
        print(f"{group:{width}s}  {'mean':>10s}  {value:6.2f}")
    print(f"{'overall':{width}s}  {'mean':>10s}  {payload['overall']:6.2f}")
    print(json.dumps({k: str(v) for k, v in (evaluation.paths or {}).items()}))
    return 0
