"""`uniembed mine --model DIR --queries FILE [--corpus FILE] --out DIR`: hard negatives for training data.

Sharded runs: `--shard-index i --num-shards n` (independent processes: each embeds the whole pool), or under
torchrun (RANK / WORLD_SIZE): the ranks encode the pool and the queries together, each its share
(`uniembed.parallel`), then each mines its queries. The last shard to finish merges (or run
`uniembed mine --merge --out DIR`). `--processes N` starts such ranks on this machine without torchrun
(`uniembed.launch`); it and the explicit shard flags exclude each other.
"""
from __future__ import annotations

import argparse
import json
import os


def register(subparsers) -> None:
    from ..mining.sources import FORMATS
    from .common import add_model_argument, add_processes_argument

    parser = subparsers.add_parser(
        "mine", help="mine hard negatives for training data with a trained model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Retrieve each training query's top N from the pool and keep hard negatives.\n\n"
                    "Filters, in order (a candidate is counted under the first that removes it): positive, "
                    "duplicate of a positive (same content), rank window, --max-score, --absolute-margin "
                    "(score > positive - X), --relative-margin (score > positive * (1 - Y)), duplicate of a kept "
                    "negative. A query short of --num-negatives keeps what it has; nothing is refilled.\n"
                    "Writes OUT/queries.jsonl (corpus-plus-ids: negative ids rewritten) or OUT/train.jsonl (items), "
                    "OUT/negatives.jsonl, OUT/mixture.yaml and OUT/report.json.")
    add_model_argument(parser, required=False)
    parser.add_argument("--queries", help="training data: corpus-plus-ids queries, uniembed JSONL, or MMEB-train parquet")
    parser.add_argument("--corpus", help="corpus JSONL/parquet (docid, text, image, ...): the pool; default: the "
                                         "de-duplicated positives and given negatives of the training data")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="format of --queries (default: detected)")
    parser.add_argument("--media-root", help="folder media paths of --queries are relative to (MMEB: the image root)")
    parser.add_argument("--video-root", help="MMEB-train video subsets: root of the frame folders")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--top", type=int, default=100, help="candidates retrieved per query (default 100)")
    parser.add_argument("--rank-range", help="START:END retrieval ranks (0-based, end exclusive) negatives may come "
                                             "from (default 0:TOP; FlagEmbedding uses 10:210)")
    parser.add_argument("--num-negatives", type=int, default=5, help="negatives kept per query (default 5)")
    parser.add_argument("--absolute-margin", type=float, help="drop candidates scoring above positive - X")
    parser.add_argument("--relative-margin", type=float, help="drop candidates scoring above positive * (1 - Y)")
    parser.add_argument("--max-score", type=float, help="drop candidates scoring above Z")
    parser.add_argument("--sampling", choices=("top", "random"), default="top",
                        help="keep the first eligible candidates (U-MARVEL) or a seeded random draw of them")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sampling random")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-index", type=int, help="this process's shard (default: $RANK or 0)")
    parser.add_argument("--num-shards", type=int, help="number of shards (default: $WORLD_SIZE or 1)")
    parser.add_argument("--merge", action="store_true", help="only merge finished shards in --out")
    parser.add_argument("--cache", help="embedding cache directory (reuses pool embeddings across runs of one model)")
    parser.add_argument("--save-ranking", action="store_true",
                        help="also write each query's full top-N ids and scores to negatives.jsonl")
    parser.add_argument("--skip-bad-rows", action="store_true", help="skip malformed rows instead of stopping")
    add_processes_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..mining import MiningOptions, format_report, load_source, merge_shards, mine_shard, parse_rank_range
    from ..parallel import SINGLE, join_world, rank_device, shard_from_environment
    from .common import launch_processes, load_model, model_name

    if args.merge:
        report = merge_shards(args.out)
        print(format_report(report))
        return 0
    if not args.model or not args.queries:
        raise ConfigError("uniembed mine needs --model and --queries (or --merge --out DIR)")
    options = MiningOptions(top=args.top, rank_range=parse_rank_range(args.rank_range),
                            num_negatives=args.num_negatives, absolute_margin=args.absolute_margin,
                            relative_margin=args.relative_margin, max_score=args.max_score,
                            sampling=args.sampling, seed=args.seed)
    explicit = args.shard_index is not None or args.num_shards is not None
    if args.processes > 1:  # `--processes N`: this command line again in N ranks; no torch in this process
        if explicit:
            raise ConfigError(f"--processes {args.processes} starts ranks that split the queries among themselves, "
                              "but --shard-index/--num-shards pick one shard of independent runs: pass one or the "
                              f"other (--processes {args.processes} alone, or --shard-index I --num-shards N in each "
                              "of N separate commands)")
        return launch_processes(args)
    world = join_world() if "MASTER_ADDR" in os.environ and not explicit else SINGLE  # a torchrun job
    shard_index, num_shards = shard_from_environment(args.shard_index, args.num_shards)
    source = load_source(args.queries, args.corpus, format=args.format, media_root=args.media_root,
                         video_root=args.video_root, skip_bad_rows=args.skip_bad_rows)
    model = load_model(args.model, rank_device(args.device), args.dtype, profile=args.profile)
    report = mine_shard(model, source, options, args.out, shard_index=shard_index, num_shards=num_shards,
                        batch_size=args.batch_size, cache_dir=args.cache, save_ranking=args.save_ranking,
                        model_name=model_name(args.model), progress=world.is_main, world=world)
    if report is None:
        print(json.dumps({"shard": shard_index, "of": num_shards, "status": "done, waiting for the other shards"}))
    else:
        print(format_report(report))
    return 0
