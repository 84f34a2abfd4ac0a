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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    payload = run_demo(args.out, size=args.size, seed=args.seed, recipe=args.recipe, overrides=args.overrides)
    print(f"\nwrote {args.out}/results.json and {args.out}/report.html (overall {payload['overall']:.1f})")
    return 0
