"""`uniembed soup --inputs A B C --out DIR [--greedy --val-data DIR]`: average fine-tuned checkpoints."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    from ..eval.suites import SUITES

    parser = subparsers.add_parser(
        "soup", help="average checkpoints of one base (uniform or greedy model soup)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Average the weights of checkpoints fine-tuned from the same base (LoRA adapters are merged "
                    "into their base first). --greedy adds ingredients best-first while the validation score "
                    "does not drop. Validate on held-out data, never on the test data you report.\n"
                    "Writes a normal checkpoint to --out plus soup.json (ingredients, weights, scores).")
    parser.add_argument("--inputs", nargs="+", required=True, help="checkpoint directories (at least two)")
    parser.add_argument("--out", required=True, help="output checkpoint directory")
    parser.add_argument("--weights", nargs="+", type=float, help="uniform soup: one weight per input (normalised)")
    parser.add_argument("--greedy", action="store_true", help="greedy soup (needs --val-data)")
    parser.add_argument("--val-data", help="held-out validation data for --val-suite (never the test split)")
    parser.add_argument("--val-suite", default="synthetic", choices=sorted(SUITES), help="suite of --val-data")
    parser.add_argument("--val-datasets", help="comma-separated subset of validation data sets")
    parser.add_argument("--batch-size", type=int, default=32, help="evaluation batch size")
    parser.add_argument("--device", default=None, help="device for validation (default: cuda when available)")
    parser.add_argument("--dtype", default=None, help="dtype to load ingredients in (default: the checkpoint's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import ConfigError
    from ..soup import greedy_soup, save_soup, uniform_soup, validation_scorer

    if args.greedy and not args.val_data:
        raise ConfigError("--greedy needs --val-data (a held-out validation copy, never the test data)")
    if args.greedy and args.weights:
        raise ConfigError("--weights applies to the uniform soup; greedy soups weight kept ingredients equally")
    device = args.device or ("cuda" if torch.cuda.is_available() else None)
    scorer, validation = None, None
    if args.val_data:
        datasets = [d.strip() for d in args.val_datasets.split(",") if d.strip()] if args.val_datasets else None
        scorer, validation = validation_scorer(args.val_suite, args.val_data, datasets, args.batch_size)
    if args.greedy:
        result = greedy_soup(args.inputs, scorer, dtype=args.dtype, device=device)
    else:
        result = uniform_soup(args.inputs, args.weights, dtype=args.dtype, scorer=scorer, device=device)
    out = save_soup(result, args.out, args.inputs, validation)
    for ingredient in result.record["ingredients"]:
        score = ingredient["validation_score"]
        print(f"{'kept' if ingredient['kept'] else 'left out':8s} weight {ingredient['weight']:.3f}  "
              f"{'' if score is None else f'val {score:6.2f}  '}{ingredient['path']}")
    if result.record["soup_validation_score"] is not None:
        print(f"soup validation score: {result.record['soup_validation_score']:.2f}")
    print(json.dumps({"soup": str(out), "method": result.record["method"]}))
    return 0
