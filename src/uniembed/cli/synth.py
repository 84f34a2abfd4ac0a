"""`uniembed synth`: write the synthetic multimodal benchmark (all MMEB-V2 meta-tasks, real layouts)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("synth", help="generate the synthetic multimodal benchmark",
                                   description="Draw the synthetic benchmark (image, video, visual-document and text "
                                               "tasks plus training splits) in the MMEB / MMEB-V2 / BEIR layouts.")
    parser.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    # not `choices=SIZES`: that would import the generator (0.3 s) on every `uniembed --help`; generate() checks it
    parser.add_argument("--size", default="small", metavar="{full,small,tiny}",
                        help="tiny: tests (seconds); small: the demo default (< 1 min on 2 cores); full: 1000 queries per task")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--workers", type=int, default=None, help="drawing processes (default: CPU count)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier synthetic benchmark in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..extras import require

    require(("pyarrow",), "uniembed synth")  # the benchmark is written as parquet
    from ..data.synth import generate

    metadata = generate(args.out, size=args.size, seed=args.seed, workers=args.workers, overwrite=args.overwrite,
                        progress=not args.no_progress)
    print(f"wrote {len(metadata['tasks'])} test tasks ({metadata['num_test_queries']} queries) and "
          f"{len(metadata['train'])} training subsets ({metadata['num_train_rows']} rows) to {args.out} "
          f"in {metadata['generation_seconds']:.1f} s ({metadata['disk_bytes'] / 1e6:.1f} MB, {metadata['num_files']} files)")
    for task in metadata["tasks"]:
        print(f"  {task['name']:<14} {task['modality_group']:<7} {task['meta_task']:<16} {task['ranking']:<6} "
              f"{task['metric']:<7} queries={task['num_queries']:<5} chance={task['chance_percent']:.2f}%")
    return 0
