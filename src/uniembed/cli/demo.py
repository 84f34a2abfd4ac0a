"""`uniembed demo`: synthetic benchmark -> two-stage training of a tiny model -> evaluation -> report."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="generate data, train a tiny model with a real recipe, evaluate, report")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "full"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", default=None, help="default: recipes/demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--oversample", action="append", default=None, metavar="SOURCE=FACTOR",
                        help="multiply a stage-2 training source's share of batches (replaces the default)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads for the run (default 1: fastest for the demo's tiny model on 2 cores; "
                             "0 = torch's default)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import DEMO_THREADS, run_demo
    from ..extras import require

    require(("faiss", "pyarrow", "matplotlib"), "uniembed demo")  # before training, not at the report

    oversample = None if args.oversample is None else dict(_factor(text) for text in args.oversample)
    payload = run_demo(args.out, size=args.size, seed=args.seed, recipe=args.recipe, overrides=args.overrides,
                       oversample=oversample, threads=DEMO_THREADS if args.threads is None else args.threads)
    print(f"\nwrote {args.out}/results.json and {args.out}/report.html (overall {payload['overall']:.1f})")
    return 0


def _factor(text: str) -> tuple[str, float]:
    from ..errors import ConfigError

    name, _, value = text.partition("=")
    try:
        factor = float(value)
    except ValueError:
        factor = 0.0
    if not name or factor <= 0:
        raise ConfigError(f"--oversample expects SOURCE=FACTOR with a positive factor, got {text!r}")
    return name, factor
