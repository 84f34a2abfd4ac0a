"""`uniembed index build --embeddings DIR --factory Flat|IVF4096,PQ64|HNSW32 --out DIR`."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("index", help="build a FAISS index over encoded embeddings")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="build a (sharded) index from an embeddings directory",
                               description="Build an inner-product FAISS index from the shards `uniembed encode` wrote "
                                           "(DIR/manifest.jsonl + DIR/shard-*.npy).")
    build.add_argument("--embeddings", required=True, help="embeddings directory (manifest.jsonl + shard-*.npy)")
    build.add_argument("--factory", default="Flat", help='FAISS factory string: "Flat", "IVF4096,PQ64", "HNSW32", ...')
    build.add_argument("--out", required=True, help="output index directory")
    build.add_argument("--shard-size", type=int, default=1_000_000, help="vectors per index shard")
    build.add_argument("--train-size", type=int, default=200_000, help="vectors used to train IVF/PQ")
    build.add_argument("--model-id", help="model id recorded in index.json (checked by `uniembed search`)")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..index.faiss_index import build_sharded_index
    from ..index.store import iter_shards

    model_id = args.model_id
    info = Path(args.embeddings) / "info.json"
    if model_id is None and info.exists():
        model_id = json.loads(info.read_text()).get("model_id")
    index = build_sharded_index(iter_shards(args.embeddings), args.out, factory=args.factory,
                                shard_size=args.shard_size, train_size=args.train_size, model_id=model_id)
    print(f"indexed {len(index)} vectors of dimension {index.dimension} with {index.factory} "
          f"in {len(index.shards)} shard(s) -> {args.out}")
    return 0
