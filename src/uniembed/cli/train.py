"""`uniembed train RECIPE.yaml --out DIR [--set key=value ...] [--resume]`."""
from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model with a recipe (one device, or torchrun/accelerate)")
    parser.add_argument("recipe", help="recipe YAML (see recipes/)")
    parser.add_argument("--out", required=True, help="run directory: checkpoints, logs, one model per stage")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe key, e.g. --set model=tiny --set stages.0.max_steps=100; what trains: "
                             "trainable.mode=lora|dora|full, trainable.freeze_vision=true|false (the vision tower; "
                             "frozen by default, also in full mode), stages.N.trainable... where a stage has its own")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    parser.add_argument("--skip-bad-rows", action="store_true", help="count, report and skip malformed data rows")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.recipe import load_recipe
    from ..training.trainer import Trainer, TrainingError

    overrides = list(args.overrides)
    if args.skip_bad_rows:
        overrides.append("stages.*.skip_bad_rows=true")
    recipe = load_recipe(args.recipe, overrides)
    try:
        final = Trainer(recipe, args.out, resume=args.resume, show_progress=not args.no_progress).run()
    except TrainingError as exc:
        print(f"uniembed train: error: {exc}", file=sys.stderr)
        return 3
    print(f"trained {recipe.name}: final model {final}")
    return 0
