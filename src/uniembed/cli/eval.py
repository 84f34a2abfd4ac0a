"""`uniembed eval --model DIR --suite NAME --data DIR --out DIR`: score a model on a benchmark suite."""
from __future__ import annotations

import argparse
import json
import logging
from typing import Any


def register(subparsers) -> None:
    from ..eval.suites import SUITES
    from .common import add_model_argument, add_processes_argument

    suites = "\n".join(f"  {name:14s} {suite.description}" for name, suite in sorted(SUITES.items()))
    parser = subparsers.add_parser("eval", help="evaluate a model on a benchmark suite",
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   description="Evaluate a model; writes results.json, report.md and report.html.\n\n"
                                               f"suites:\n{suites}")
    add_model_argument(parser, required=False)
    parser.add_argument("--suite", required=True, choices=sorted(SUITES), metavar="NAME", help="suite name (see above)")
    parser.add_argument("--data", required=True, help="local copy of the suite's data")
    parser.add_argument("--out", help="output directory for the reports (required unless --check)")
    parser.add_argument("--datasets", help="comma-separated subset of data sets (beir: qrels splits, default test; "
                                           "mmeb-v1/v2: may also name an MMEB-layout folder of one's own)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pool", choices=("local", "global"), default="local", help="candidate pool (M-BEIR)")
    parser.add_argument("--cache", help="embedding cache directory: vectors, and token matrices with --multi-vector "
                             "(default: OUT/cache); 'none' disables it")
    parser.add_argument("--seed", type=int, default=0, help="seed of M-BEIR's random instruction draw")
    parser.add_argument("--dimensions", type=dimension_list, default=(), metavar="D,D,...",
                        help="also score these Matryoshka widths (e.g. 64,128,256) from the same vectors, cut to their "
                             "first D coordinates and re-normalised; results.json gets `by_dimension`")
    parser.add_argument("--multi-vector", action="store_true",
                        help="score the model's token embeddings (late interaction, encode_multi) by exact MaxSim "
                             "instead of one vector per item; results.json gets `multi_vector`")
    parser.add_argument("--pool-factor", type=int, default=1,
                        help="with --multi-vector: pool each candidate's tokens to at most n // FACTOR by hierarchical "
                             "clustering, as `index build --pool-factor` stores them (default 1: every token)")
    parser.add_argument("--precision", type=precision_argument, default=(), metavar="P,P,...",
                        help="also score these storage precisions (float32, float16, int8, uint8, binary, ubinary) "
                             "from the same vectors, as `uniembed search --precision` scores them (int8 ranges from "
                             "each task's candidates), at every --dimensions width; results.json gets `by_precision`")
    parser.add_argument("--rescore", type=int, default=0, metavar="K",
                        help="with --precision: also score each precision below float32 with its top K x k "
                             "re-ranked by the float vectors (entries named like `binary+rescore4`)")
    add_processes_argument(parser)
    parser.add_argument("--examples", type=int, default=3, help="ranked examples per task in report.html")
    parser.add_argument("--check", action="store_true",
                        help="print what each data set needs (repository, files, columns, media folders) and "
                             "whether it is under --data, then exit (status 1 when something is missing)")
    parser.add_argument("--image-root", help="folder the image paths of the tables are relative to (default: "
                                             "mmeb-v2: <data>/TIGER-Lab/MMEB-V2/image-tasks; mmeb-v1: "
                                             "<MMEB-eval>/eval_images, then images/)")
    parser.add_argument("--video-root", help="folder holding video-tasks/frames/... (default: the first of "
                                             "<data>/TIGER-Lab/MMEB-V2, <data>/MMEB-V2, <data> that has video-tasks/)")
    parser.add_argument("--data-map", help="YAML mapping a task name or repository id to its local folder "
                                           "(`MSR-VTT: /disk/msrvtt`); relative paths are relative to the YAML file")
    parser.set_defaults(func=run)


def dimension_list(text: str) -> tuple[int, ...]:
    """`--dimensions 64,128`: distinct positive widths, widest first."""
    try:
        widths = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dimensions wants comma-separated integers like 64,128, got {text!r}")
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"--dimensions wants positive integers like 64,128, got {text!r}")
    return tuple(sorted(widths, reverse=True))


def precision_argument(text: str) -> tuple[str, ...]:
    """`--precision float32,int8,binary`, checked at parse time."""
    from ..errors import ConfigError
    from ..eval.precision import precision_list

    try:
        return precision_list(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..eval.suites import SuiteOptions, get_suite
    from ..eval.suites.layout import format_checks, read_data_map
    from .common import launch_processes, refuse_nested_launch

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    data_options = {"image_root": args.image_root, "video_root": args.video_root,
                    "data_map": read_data_map(args.data_map)}
    if args.check:
        options = SuiteOptions(datasets=datasets, pool=args.pool, seed=args.seed, extra=data_options)
        text, ready = format_checks(get_suite(args.suite).check_data(args.data, options))
        print(text)
        return 0 if ready else 1
    if not args.out or not args.model:
        raise ConfigError("eval needs --model and --out (or --check, which needs neither)")
    if args.rescore and not args.precision:
        raise ConfigError("--rescore re-ranks quantised scores: pass --precision too (e.g. --precision binary "
                          f"--rescore {args.rescore})")
    cache = None if args.cache == "none" else (args.cache or str(Path(args.out) / "cache"))
    if args.multi_vector and args.processes > 1:
        raise ConfigError(f"--multi-vector scores in one process (exact MaxSim over every item's tokens): drop "
                          f"--processes {args.processes}")
    if args.processes > 1:  # `--processes N`: this command line again in N ranks; no torch in this process
        refuse_nested_launch(args)
        evaluation = scored_from_cache(args, cache, datasets, data_options) if cache else None
        if evaluation is None:
            return launch_processes(args)
    else:
        evaluation = evaluate_here(args, cache, datasets, data_options)
    if evaluation is None:  # a rank other than 0: rank 0 scores and reports
        return 0
    print_scores(evaluation)
    return 0


class NotCached(Exception):
    """A warm check found an item that is not in the embedding cache: the ranks must encode."""


def scored_from_cache(args: argparse.Namespace, cache: str, datasets: list[str] | None, data_options: dict) -> Any:
    """The evaluation, run in this process, when every vector is in the cache (and the model's id recorded
    there): a warm run needs no ranks, hence no torch. None as soon as an item must be encoded."""
    from ..models.deferred import deferred_model

    def not_cached() -> Any:
        raise NotCached

    deferred_log = logging.getLogger("uniembed.models.deferred")
    level = deferred_log.level
    deferred_log.setLevel(logging.WARNING)  # no "building model" line: this process builds none
    try:
        model = deferred_model(args.model, cache, not_cached, dtype=args.dtype, profile=args.profile)
        from ..eval.evaluate import evaluate  # (after the cheap check above: a first run starts its ranks sooner)

        return evaluate(model, args.suite, args.data, args.out, progress=False,
                        **evaluate_options(args, cache, datasets, data_options))
    except NotCached:
        logging.getLogger(__name__).info("not every vector is cached: starting %d ranks", args.processes)
        return None
    finally:
        deferred_log.setLevel(level)


def evaluate_here(args: argparse.Namespace, cache: str | None, datasets: list[str] | None, data_options: dict) -> Any:
    """This process's part: the whole evaluation alone, or one rank's under torchrun / `--processes` (every rank
    encodes a share, rank 0 scores and reports; the others get None)."""
    from ..eval.evaluate import evaluate
    from ..parallel import join_world, rank_device
    from .common import load_model

    world = join_world()
    device = rank_device(args.device)
    if cache is None:
        model = load_model(args.model, device, args.dtype, profile=args.profile)
    else:  # a warm run (every vector or token matrix cached) builds no model: its id is recorded in the cache
        from ..models.deferred import deferred_model

        model = deferred_model(args.model, cache, lambda: load_model(args.model, device, args.dtype, args.profile),
                               dtype=args.dtype, profile=args.profile)
    return evaluate(model, args.suite, args.data, args.out, world=world,
                    **evaluate_options(args, cache, datasets, data_options))


def evaluate_options(args: argparse.Namespace, cache: str | None, datasets: list[str] | None,
                     data_options: dict) -> dict[str, Any]:
    return dict(datasets=datasets, pool=args.pool, batch_size=args.batch_size, cache_dir=cache, seed=args.seed,
                examples_per_task=args.examples, data_options=data_options, model_path=args.model,
                dimensions=args.dimensions, multi_vector_pool=args.pool_factor if args.multi_vector else None,
                precisions=args.precision, rescore=args.rescore)


def print_scores(evaluation: Any) -> None:
    from ..eval.report import precision_rows

    payload = evaluation.payload
    width = max(len(name) for name in [*payload["scores"], *payload["groups"], "overall"])
    chance = payload.get("chance", {})
    for name, score in payload["scores"].items():
        extra = f"  (chance {chance[name]:.1f})" if name in chance else ""
        print(f"{name:{width}s}  {payload['main_metric'][name]:>10s}  {score:6.2f}{extra}")
    for group, value in payload["groups"].items():
        print(f"{group:{width}s}  {'mean':>10s}  {value:6.2f}")
    print(f"{'overall':{width}s}  {'mean':>10s}  {payload['overall']:6.2f}")
    for dimension, entry in payload.get("by_dimension", {}).items():
        print(f"{'overall@' + dimension:{width}s}  {'mean':>10s}  {entry['overall']:6.2f}")
    for dimension, name, overall, _ in precision_rows(payload):
        print(f"{'overall@' + dimension + '/' + name:{width}s}  {'mean':>10s}  {overall:6.2f}")
    print(json.dumps({k: str(v) for k, v in (evaluation.paths or {}).items()}))
