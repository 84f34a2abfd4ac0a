"""`uniembed search --index DIR --model DIR --query TEXT [--image PATH] --top 10`.

Hits carry the index's `metadata.jsonl` row for their id; a query model other than the index's is warned
about on stderr, so `--json` output stays one JSON document.
"""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    from .common import add_dimensions_argument, add_model_argument, add_precision_argument

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
    add_dimensions_argument(parser)  # the --dimensions the index's vectors were encoded with
    add_precision_argument(parser, "the precision the index holds; another one is refused, naming both (default: "
                                   "the index's; float queries are quantised to it)")
    parser.add_argument("--rescore", type=int, default=0, metavar="K",
                        help="fetch K x --top candidates and re-rank them with the float (or int8) vectors the "
                             "index keeps on disk (default 0: no rescoring)")
    parser.add_argument("--token-k", type=int, default=64, metavar="K",
                        help="multi-vector indexes: nearest stored tokens fetched per query token; their items are "
                             "re-scored exactly with MaxSim (default 64)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..errors import InputError
    from ..index.faiss_index import ShardedIndex, index_kind
    from ..index.store import METADATA_FILE, MULTI_VECTOR
    from ..serving.search import SearchService, read_metadata
    from .common import load_model

    if not (args.query or args.image or args.video):
        raise InputError("empty query", fix="give --query TEXT, --image PATH or --video PATH")
    if index_kind(args.index) == MULTI_VECTOR:
        return _run_multi(args)
    index = ShardedIndex(args.index)
    if args.precision:  # before loading the model: a mismatch is refused at once
        from ..index.quantize import check_same_precision

        check_same_precision(index.precision, args.precision, args.index)
    model = load_model(args.model, args.device, args.dtype, profile=args.profile)
    mismatch = index.model_mismatch(model.model_id)
    if mismatch:  # stderr: stdout stays the result (valid JSON with --json)
        print(f"uniembed search: warning: {mismatch}", file=sys.stderr)
    metadata_path = Path(args.index) / METADATA_FILE
    service = SearchService(index, read_metadata(metadata_path) if metadata_path.exists() else {}, nprobe=args.nprobe,
                            rescore=args.rescore)
    item, prompt = _query(args, model)
    vector = model.encode([item], prompt_name=prompt, truncate_dim=args.dimensions)
    _print_hits(service.search(vector, args.top), args.json)
    return 0


def _query(args: argparse.Namespace, model):
    """The query item and the prompt name it is encoded with (the model's query prompt when it has one)."""
    from ..inputs import Item

    item = Item(text=args.query, image=args.image, video=args.video, instruction=args.instruction)
    return item, "query" if args.instruction is None and "query" in getattr(model.config, "prompts", {}) else None


def _print_hits(hits: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(hits))
    else:
        for hit in hits:
            extra = f"  {json.dumps(hit['metadata'], ensure_ascii=False)}" if hit["metadata"] else ""
            print(f"{hit['rank']:3d}  {hit['score']:.4f}  {hit['id']}{extra}")


def _run_multi(args: argparse.Namespace) -> int:
    """Search a multi-vector index: the query's token embeddings (`encode_multi`), candidates, exact MaxSim."""
    import sys
    from pathlib import Path

    from ..errors import ConfigError, InputError
    from ..index.multivector import MultiVectorIndex
    from ..index.store import METADATA_FILE
    from ..serving.search import SearchService, read_metadata
    from .common import load_model

    index = MultiVectorIndex(args.index)
    if args.dimensions or args.precision or args.rescore:
        raise ConfigError(f"'{args.index}' is a multi-vector index: --dimensions, --precision and --rescore apply to "
                          "single-vector indexes (its candidates are always re-scored exactly with MaxSim)")
    model = load_model(args.model, args.device, args.dtype, profile=args.profile)
    if not model.multi_vector_dimension:
        raise InputError(f"'{args.index}' is a multi-vector index, but the query model is single-vector "
                         "(multi_vector_dimension is None): its one vector per query cannot be scored by MaxSim",
                         fix="search with the multi-vector model that encoded the index, or build a single-vector "
                             "index from single-vector embeddings")
    mismatch = index.model_mismatch(model.model_id)
    if mismatch:
        print(f"uniembed search: warning: {mismatch}", file=sys.stderr)
    metadata_path = Path(args.index) / METADATA_FILE
    service = SearchService(index, read_metadata(metadata_path) if metadata_path.exists() else {}, nprobe=args.nprobe,
                            token_k=args.token_k)
    item, prompt = _query(args, model)
    tokens = model.encode_multi([item], prompt_name=prompt, show_progress_bar=False)
    _print_hits(service.search(tokens[0], args.top), args.json)
    return 0
