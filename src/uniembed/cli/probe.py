"""`uniembed probe --model DIR --server URL [--profile P] [--api-key K]`: does a deployed embeddings server
(vLLM, uniembed serve, any OpenAI-compatible one) embed like uniembed's own model? Exit 0 when every probe row
matches, 1 when one differs, 2 when the server cannot be probed (unreachable, HTTP error, wrong dimension)."""
from __future__ import annotations

import argparse
import os

from .common import add_model_argument, load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe", help="compare a deployed embeddings server's vectors with uniembed's own (parity probe)",
        description="Send a fixed probe set (text, image, text+image, video; each with and without an instruction) "
                    "to POST URL/v1/embeddings (media as data URIs; vLLM's chat-style `messages`, plain text also as "
                    "OpenAI `input`), embed the same items with --model under --profile, and print each row's "
                    "cosine and verdict (match at cosine >= --threshold). Exit 0: all match; 1: some differ; "
                    "2: the server could not be probed.")
    add_model_argument(parser)
    parser.add_argument("--server", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000 (a "
                                                        "trailing /v1 is fine)")
    parser.add_argument("--api-key", default=os.environ.get("UNIEMBED_API_KEY"),
                        help="sent as 'Authorization: Bearer KEY' (default: $UNIEMBED_API_KEY)")
    parser.add_argument("--served-model-name", help="the `model` field to send (default: the first id of GET /v1/models)")
    parser.add_argument("--threshold", type=float, default=None, help="cosine at or above which a row matches "
                                                                      "(default 0.999)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..probe import MATCH_THRESHOLD, format_report, probe_server

    model = load_model(args.model, args.device, args.dtype, profile=args.profile)
    threshold = MATCH_THRESHOLD if args.threshold is None else args.threshold
    served, results = probe_server(model, args.server, api_key=args.api_key, served_model=args.served_model_name,
                                   threshold=threshold, timeout_s=args.timeout)
    print(format_report(args.server, served, results), flush=True)
    return 0 if all(result.matches for result in results) else 1
