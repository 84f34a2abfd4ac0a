"""`uniembed serve --model DIR [--index DIR] [--host 127.0.0.1] [--port 8080]`: the embeddings server."""
from __future__ import annotations

import argparse
import gc
import logging
import os

from .common import add_dimensions_argument, add_model_argument, load_model

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve an OpenAI-compatible, batched, mixed-modality embeddings API",
        description="FastAPI/uvicorn server: POST /v1/embeddings, /v1/search, /v1/rerank; GET /v1/models, /health, "
                    "/metrics. Binds to 127.0.0.1 unless --host says otherwise.")
    add_model_argument(parser)
    parser.add_argument("--index", help="index directory (uniembed index build) served by POST /v1/search")
    parser.add_argument("--reranker", help="re-ranker directory (uniembed.Reranker) served by POST /v1/rerank")
    parser.add_argument("--metadata",
                        help="JSONL of {id, ...} returned with search hits (default: INDEX/metadata.jsonl)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--served-model-name", default="uniembed",
                        help="model name clients pass as `model` (default: uniembed, whatever the directory)")
    parser.add_argument("--api-key", default=os.environ.get("UNIEMBED_API_KEY"),
                        help="require 'Authorization: Bearer KEY' on /v1/* (default: $UNIEMBED_API_KEY)")
    parser.add_argument("--allow-local-files", metavar="DIR", help="accept media paths, only inside DIR")
    parser.add_argument("--allow-remote-media", action="store_true",
                        help="fetch http(s) media URLs from public addresses (size/time/redirect limits)")
    parser.add_argument("--remote-allow", action="append", default=[], metavar="CIDR_OR_HOST",
                        help="also fetch from this network or host name (e.g. 10.0.0.0/8, media.internal); "
                             "repeatable or comma-separated")
    parser.add_argument("--max-redirects", type=int, default=3, help="redirects followed per remote medium")
    parser.add_argument("--no-batching", action="store_true", help="never merge concurrent requests into one batch")
    parser.add_argument("--max-batch-tokens", type=int, default=16384,
                        help="padded tokens (rows x longest text+visual length) per model batch")
    parser.add_argument("--max-batch-items", type=int, default=64, help="rows per model batch")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more requests")
    parser.add_argument("--long-item-tokens", type=int, default=512,
                        help="items estimated at this many tokens or more are batched apart, in a second model "
                             "thread, so short requests never wait behind them (0: one lane for all items)")
    parser.add_argument("--max-items-per-request", type=int, default=256)
    parser.add_argument("--max-body-mb", type=float, default=64.0, help="request body limit (413 above)")
    parser.add_argument("--max-concurrency", type=int, default=64, help="requests in flight (429 above)")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds per request (504 after)")
    parser.add_argument("--body-timeout", type=float, default=10.0,
                        help="seconds a request body may take, plus 1 s per --min-body-rate bytes (408 after)")
    parser.add_argument("--min-body-rate", type=int, default=64 * 1024, help="bytes/s a body must keep up")
    parser.add_argument("--max-request-megapixels", type=float, default=200.0,
                        help="decoded pixels per request, images plus sampled video frames (400 above)")
    parser.add_argument("--max-text-chars", type=int,
                        help="characters kept per text, cut before tokenising (default: 32 x max_length, >= 65536)")
    parser.add_argument("--max-media-mb", type=float, default=32.0, help="largest image/video file accepted")
    parser.add_argument("--remote-timeout", type=float, default=10.0, help="seconds to fetch one remote medium")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    add_dimensions_argument(parser)  # requests without `dimensions`, and --index search queries
    parser.add_argument("--ranges", help="ranges.npy (from `uniembed encode --precision int8`) that the int8/uint8 "
                                         "encoding_format quantises on; without it those formats are refused")
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    from ..serving import ServerConfig

    return ServerConfig(
        served_model_name=args.served_model_name,
        api_key=args.api_key or None,
        batching=not args.no_batching,
        max_batch_tokens=args.max_batch_tokens,
        max_batch_items=args.max_batch_items,
        max_wait_ms=args.max_wait_ms,
        long_item_tokens=args.long_item_tokens or None,
        max_items_per_request=args.max_items_per_request,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_concurrency=args.max_concurrency,
        request_timeout_s=args.request_timeout,
        allow_local_files=args.allow_local_files,
        allow_remote_media=args.allow_remote_media,
        max_media_bytes=int(args.max_media_mb * 1024 * 1024),
        remote_timeout_s=args.remote_timeout,
        remote_allow=tuple(entry.strip() for value in args.remote_allow for entry in value.split(",")),
        max_redirects=args.max_redirects,
        body_timeout_s=args.body_timeout,
        min_body_rate=args.min_body_rate,
        max_request_pixels=int(args.max_request_megapixels * 1_000_000),
        max_text_chars=args.max_text_chars,
        dimensions=args.dimensions,
        ranges=args.ranges,
    )


def run(args: argparse.Namespace) -> int:
    from ..extras import SERVE, require

    require(SERVE, "uniembed serve")  # before the model loads: the server is the `serve` extra
    import uvicorn

    from ..serving import SearchService, create_app

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = build_config(args)
    model = load_model(args.model, args.device, args.dtype, profile=args.profile)
    search = None
    if args.index:
        search = SearchService.load(args.index, args.metadata, dimension=config.dimensions or model.dimension,
                                    model_id=model.model_id,
                                    multi_vector_dimension=getattr(model, "multi_vector_dimension", None))
    reranker = None
    if args.reranker:
        from ..models.reranker import Reranker

        reranker = Reranker.from_pretrained(args.reranker, device=args.device or "auto", dtype=args.dtype)
    app = create_app(model, config, search=search, reranker=reranker)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not config.api_key:
        log.warning("listening on %s without --api-key: anyone who can reach this port can use the model", args.host)
    print(f"serving {config.served_model_name} (dimension {model.dimension}) on http://{args.host}:{args.port}"
          + (f" with an index of {len(search)} vectors" if search else ""), flush=True)
    freeze_startup_heap()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_keep_alive=30)
    return 0


def freeze_startup_heap() -> None:
    """Collect the start-up garbage, then move every object alive (imports and the model: ~400,000 on the tiny
    model) out of the cyclic collector's sight (`gc.freeze`). A full collection walks them all, 300-460 ms on
    the 2-core machine with every thread stopped, and one (458 ms) came in an 8 s run beside 30 MB bodies
    (issue 26.6); frozen, a full collection walks only what serving allocated. They live as long as the
    server anyway."""
    gc.collect()
    gc.freeze()
