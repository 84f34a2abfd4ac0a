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
    build.add_argument("--pool-factor", type=int, default=None,
                       help="multi-vector embeddings only: pool each item's token vectors by hierarchical clustering "
                            "to at most n // FACTOR (colpali-engine's token pooling; default 1: keep every token)")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    import shutil
    import sys
    from pathlib import Path

    from ..index.faiss_index import build_sharded_index
    from ..index.quantize import read_ranges, store_precision
    from ..errors import ConfigError
    from ..index.store import INFO_FILE, METADATA_FILE, MULTI_VECTOR, embeddings_model_id, iter_shards, store_kind

    embeddings = Path(args.embeddings)
    model_id = args.model_id or embeddings_model_id(embeddings)
    if store_kind(embeddings) == MULTI_VECTOR:
        return _build_multi(args, embeddings, model_id)
    if args.pool_factor is not None:
        raise ConfigError(f"--pool-factor pools the token vectors of multi-vector embeddings, but '{embeddings}' holds "
                          "single-vector embeddings: drop --pool-factor, or encode with a multi-vector model")
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


def _build_multi(args: argparse.Namespace, embeddings, model_id: str | None) -> int:
    """`index build` over multi-vector embeddings: pooled token vectors + exact MaxSim (`index/multivector.py`)."""
    import shutil
    from pathlib import Path

    from ..errors import ConfigError
    from ..index.multistore import iter_multi_shards
    from ..index.multivector import PRECISIONS, build_multivector_index
    from ..index.store import METADATA_FILE

    precision = args.precision or "float32"
    if precision not in PRECISIONS or args.rescore_vectors not in (None, "none"):
        raise ConfigError(f"'{embeddings}' holds multi-vector embeddings: their index stores {'/'.join(PRECISIONS)} "
                          "tokens and re-scores every candidate by MaxSim over them (use --precision "
                          f"{'|'.join(PRECISIONS)}, no --rescore-vectors)")
    index = build_multivector_index(iter_multi_shards(embeddings), args.out, factory=args.factory,
                                    pool_factor=1 if args.pool_factor is None else args.pool_factor,
                                    precision=precision, model_id=model_id, train_size=args.train_size)
    if (embeddings / METADATA_FILE).exists():
        shutil.copyfile(embeddings / METADATA_FILE, Path(args.out) / METADATA_FILE)
    print(f"indexed {len(index)} multi-vector items ({index.token_count} token vectors of dimension {index.dimension}, "
          f"pool factor {index.pool_factor}, {precision}) with {index.factory} in {len(index.shards)} shard(s) "
          f"-> {args.out}")
    return 0
