"""`uniembed index build --embeddings DIR --factory Flat|IVF4096,PQ64|HNSW32 --out DIR`."""
from __future__ import annotations

import argparse

from .common import add_precision_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser("index", help="build a FAISS index over encoded embeddings")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="build a (sharded) index from an embeddings directory",
                               description="Build an inner-product FAISS index from the shards `uniembed encode` wrote "
                                           "(DIR/manifest.jsonl + DIR/shard-*.npy); DIR/info.json's model id goes "
                                           "into index.json and DIR/metadata.jsonl is copied beside the index.")
    build.add_argument("--embeddings", required=True, help="embeddings directory (manifest.jsonl + shard-*.npy)")
    build.add_argument("--factory", default=None,
                       help='FAISS factory string: "Flat", "IVF4096,PQ64", "HNSW32", ...; binary: "BFlat", "BHNSW32"; '
                            'int8/uint8: "SQ8", "HNSW32,SQ8" (default: Flat, SQfp16, SQ8 or BFlat by --precision)')
    build.add_argument("--out", required=True, help="output index directory")
    build.add_argument("--shard-size", type=int, default=1_000_000, help="vectors per index shard")
    build.add_argument("--train-size", type=int, default=200_000, help="vectors used to train IVF/PQ")
    build.add_argument("--model-id", help="model id recorded in index.json and checked by `uniembed search` "
                                          "(default: the one `encode` recorded in EMBEDDINGS/info.json)")
    add_precision_argument(build, "precision of the indexed vectors (default: the one `encode --precision` recorded "
                                  "in EMBEDDINGS/info.json, else float32); int8/uint8 use EMBEDDINGS/ranges.npy when "
                                  "present, else ranges calibrated on the training sample")
    build.add_argument("--rescore-vectors", choices=("float32", "float16", "int8", "none"), default=None,
                       help="vectors kept beside the index (rescore-*.npy, memory-mapped) for `search --rescore K` "
                            "(default: float32 when --precision is not float32, else none)")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    import shutil
    import sys
    from pathlib import Path

    from ..index.faiss_index import build_sharded_index
    from ..index.quantize import read_ranges, store_precision
    from ..index.store import INFO_FILE, METADATA_FILE, embeddings_model_id, iter_shards

    embeddings = Path(args.embeddings)
    model_id = args.model_id or embeddings_model_id(embeddings)
    precision = args.precision or store_precision(embeddings) or "float32"
    rescore = args.rescore_vectors or ("float32" if precision != "float32" else "none")
    index = build_sharded_index(iter_shards(embeddings), args.out, factory=args.factory,
                                shard_size=args.shard_size, train_size=args.train_size, model_id=model_id,
                                precision=precision, rescore_precision=None if rescore == "none" else rescore,
                                ranges=read_ranges(embeddings))
    if (embeddings / METADATA_FILE).exists():  # returned with search hits (uniembed search, POST /v1/search)
        shutil.copyfile(embeddings / METADATA_FILE, Path(args.out) / METADATA_FILE)
    if model_id is None:
        print(f"uniembed index: note: '{embeddings}' records no model id ({INFO_FILE}); `uniembed search` cannot "
              "check that queries use the same model (pass --model-id to record one)", file=sys.stderr)
    print(f"indexed {len(index)} vectors of dimension {index.dimension} ({precision}) with {index.factory} "
          f"in {len(index.shards)} shard(s) -> {args.out}")
    return 0
