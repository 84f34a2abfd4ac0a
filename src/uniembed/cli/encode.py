"""`uniembed encode`: embed a JSONL of items into resumable, verified embedding shards (`uniembed.corpus`).

Under torchrun every rank encodes a share of the shards and rank 0 writes the manifest; the output equals a
one-process run's. `--processes N` starts those ranks on this machine without torchrun (`uniembed.launch`).
"""
from __future__ import annotations

import argparse

from .common import (add_dimensions_argument, add_model_argument, add_precision_argument, add_processes_argument,
                     load_model, model_name)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("encode", help="embed a JSONL of items into embedding shards + id manifest")
    add_model_argument(parser)
    parser.add_argument("--input", required=True,
                        help="JSONL rows {id, text, image, images, video, instruction, pdf, metadata}; relative "
                             "paths resolve against the JSONL's folder")
    parser.add_argument("--out", required=True,
                        help="output directory (shard-*.npy + records, manifest.jsonl, info.json, metadata.jsonl)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=4096, help="items per shard (the unit of resumption)")
    parser.add_argument("--instruction", default=None, help="instruction for rows that have none")
    parser.add_argument("--prompt-name", default=None, help="one of the model's named prompts (query, document...)")
    parser.add_argument("--pdf-dpi", type=float, default=144)
    parser.add_argument("--skip-bad", action="store_true", help="report bad rows to bad_rows.jsonl and continue")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dimensions_argument(parser)
    parser.add_argument("--vectors", choices=("auto", "single", "multi"), default="auto",
                        help="multi: one vector per token (late interaction, Embedder.encode_multi) in the ragged "
                             "multi-vector store; single: one vector per item; auto (default): multi when the model "
                             "has a late-interaction head (multi_vector_dimension)")
    add_precision_argument(parser, "also write OUT/PRECISION/shard-*.npy quantised copies (binary packed 8 dims per "
                                   "byte; int8/uint8 on ranges calibrated on a sample, saved as OUT/ranges.npy) and "
                                   "record the precision in info.json for `index build`; the float32 shards stay, "
                                   "for resuming and rescoring (default float32)")
    add_processes_argument(parser)
    parser.set_defaults(func=run)


def multi_vector_choice(vectors: str, model, dimensions: int | None, precision: str | None) -> bool:
    """Whether `--vectors` (auto|single|multi) encodes one vector per token; multi with a single-vector model, or
    with the single-vector options --dimensions / --precision, is refused."""
    from ..errors import ConfigError

    width = getattr(model, "multi_vector_dimension", None)
    if vectors == "multi" and not width:
        raise ConfigError("--vectors multi needs a multi-vector model, but this one is single-vector "
                          "(multi_vector_dimension is None): use --vectors single, or a model with a late-interaction head")
    multi = vectors == "multi" or (vectors == "auto" and bool(width))
    if multi and (dimensions or precision):
        raise ConfigError("--dimensions and --precision apply to single-vector encodes; a multi-vector encode stores "
                          "float32 tokens (pick the index precision and --pool-factor at `uniembed index build`), "
                          "or pass --vectors single")
    return multi


def run(args: argparse.Namespace) -> int:
    if args.processes > 1:  # `--processes N`: this command line again in N ranks; no torch in this process
        from .common import launch_processes

        return launch_processes(args)
    from ..corpus import Options, encode_corpus
    from ..models.pooling import check_truncate_dim
    from ..parallel import join_world, rank_device

    world = join_world()
    model = load_model(args.model, rank_device(args.device), args.dtype, profile=args.profile)
    check_truncate_dim(args.dimensions, model.dimension, name="--dimensions")
    multi = multi_vector_choice(args.vectors, model, args.dimensions, args.precision)
    options = Options(multi_vector=multi, batch_size=args.batch_size, shard_size=args.shard_size, instruction=args.instruction,
                      prompt_name=args.prompt_name, pdf_dpi=args.pdf_dpi, skip_bad=args.skip_bad,
                      progress=not args.no_progress, truncate_dim=args.dimensions)
    summary = encode_corpus(model, args.input, args.out, options, world=world, model_name=model_name(args.model))
    if summary is not None and args.precision:
        from ..index.quantize import quantize_store

        quantize_store(summary.out, args.precision)
    if summary is not None:
        bad = summary.out / "bad_rows.jsonl"
        print(f"encoded {summary.encoded} items, {summary.resumed} already done (resumed), {summary.bad_rows} bad rows"
              + (f" (see {bad})" if summary.bad_rows else "") + f" -> {summary.out}")
    return 0
