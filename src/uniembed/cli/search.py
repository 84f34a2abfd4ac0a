"""`uniembed search --index DIR --model DIR --query TEXT [--image PATH] --top 10`."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    from .common import add_model_argument

    parser = subparsers.add_parser("search", help="search an index with a text and/or image query")
    parser.add_argument("--index", required=True, help="index directory (uniembed index build)")
    add_model_argument(parser)
    parser.add_argument("--query", help="query text")
    parser.add_argument("--image", help="query image path (with --query: one fused text+image query)")
    parser.add_argument("--video", help="query video path or frame folder")
    parser.add_argument("--instruction", help="instruction for the query (default: the model's query prompt)")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--nprobe", type=int, default=32, help="IVF lists probed")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..index.faiss_index import ShardedIndex
    from ..inputs import Item
    from .common import load_model

    if not (args.query or args.image or args.video):
        raise InputError("empty query", fix="give --query TEXT, --image PATH or --video PATH")
    index = ShardedIndex(args.index)
    model = load_model(args.model, args.device, args.dtype, profile=args.profile)
    if index.model_id and index.model_id != model.model_id:
        print(f"warning: index built for model {index.model_id}, searching with {model.model_id}")
    item = Item(text=args.query, image=args.image, video=args.video, instruction=args.instruction)
    prompt = "query" if args.instruction is None and "query" in getattr(model.config, "prompts", {}) else None
    vector = model.encode([item], prompt_name=prompt) if prompt else model.encode([item])
    scores, ids = index.search(vector, k=args.top, nprobe=args.nprobe)
    hits = [{"rank": r + 1, "id": i, "score": float(s)} for r, (i, s) in enumerate(zip(ids[0], scores[0]))]
    if args.json:
        print(json.dumps(hits))
    else:
        for hit in hits:
            print(f"{hit['rank']:3d}  {hit['score']:.4f}  {hit['id']}")
    return 0
