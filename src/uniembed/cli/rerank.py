"""`uniembed rerank --model DIR --reranker DIR --suite NAME --data DIR --val-data DIR --out DIR`:
evaluate with the re-ranker fused over each query's top K (cos + w * P_yes, w chosen on --val-data)."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    from ..eval.rerank import DEFAULT_WEIGHTS
    from ..eval.suites import SUITES
    from .common import add_model_argument

    parser = subparsers.add_parser(
        "rerank", help="evaluate with a re-ranker fused over the first stage's top K",
        description="Rank with --model, re-rank each query's top K by cos + w * P_yes(--reranker), and write "
                    "results.json, report.md and report.html like `uniembed eval`. w is chosen on --val-data (the "
                    "same suite's layout, another split) or given with --weight; never tuned on --data.")
    add_model_argument(parser)
    parser.add_argument("--reranker", required=True, help="re-ranker directory (a `loss.kind: reranker` stage output, "
                                                          "or any checkpoint as a zero-shot re-ranker), or 'tiny'")
    parser.add_argument("--suite", required=True, choices=sorted(SUITES), metavar="NAME", help="suite name")
    parser.add_argument("--data", required=True, help="the split to report (test)")
    parser.add_argument("--val-data", help="a validation split in the same layout; the fusion weight is chosen on it")
    parser.add_argument("--weight", type=float, help="use this fusion weight instead of choosing one on --val-data")
    parser.add_argument("--weights", default=",".join(f"{w:g}" for w in DEFAULT_WEIGHTS),
                        help="candidate weights tried on --val-data (comma-separated)")
    parser.add_argument("--top-k", type=int, default=50, help="candidates re-ranked per query (U-MARVEL: 50)")
    parser.add_argument("--out", required=True, help="output directory for the reports")
    parser.add_argument("--datasets", help="comma-separated subset of data sets")
    parser.add_argument("--batch-size", type=int, default=32, help="first-stage encoding batch size")
    parser.add_argument("--rerank-batch-size", type=int, default=16, help="query-candidate prompts per re-ranker batch")
    parser.add_argument("--pool", choices=("local", "global"), default="local", help="candidate pool (M-BEIR)")
    parser.add_argument("--cache", help="first-stage embedding cache directory (default: OUT/cache); 'none' disables it")
    parser.add_argument("--seed", type=int, default=0, help="seed of M-BEIR's random instruction draw")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..eval.rerank import evaluate_reranked
    from ..models.reranker import Reranker
    from .common import load_model

    try:
        weights = [float(w) for w in args.weights.split(",") if w.strip()]
    except ValueError as exc:
        raise ConfigError(f"--weights must be comma-separated numbers, got {args.weights!r}") from exc
    model = load_model(args.model, args.device, args.dtype, profile=args.profile)
    reranker = Reranker.from_pretrained(args.reranker, device=args.device or "auto", dtype=args.dtype)
    cache = None if args.cache == "none" else (args.cache or str(Path(args.out) / "cache"))
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    evaluation = evaluate_reranked(model, reranker, args.suite, args.data, args.out, val_data=args.val_data,
                                   weight=args.weight, weights=weights, top_k=args.top_k, datasets=datasets,
                                   pool=args.pool, batch_size=args.batch_size, rerank_batch_size=args.rerank_batch_size,
                                   cache_dir=cache, seed=args.seed)
    payload = evaluation.payload
    first = payload["first_stage"]["scores"]
    width = max(len(name) for name in [*payload["scores"], "overall"])
    print(f"fusion weight {payload['options']['weight']:g} ({payload['options']['weight_source']}), top {args.top_k}")
    print(f"{'task':{width}s}  {'metric':>10s}  {'first':>6s}  {'fused':>6s}")
    for name, score in payload["scores"].items():
        print(f"{name:{width}s}  {payload['main_metric'][name]:>10s}  {first[name]:6.2f}  {score:6.2f}")
    print(f"{'overall':{width}s}  {'mean':>10s}  {payload['first_stage']['overall']:6.2f}  {payload['overall']:6.2f}")
    print(json.dumps({k: str(v) for k, v in (evaluation.paths or {}).items()}))
    return 0
