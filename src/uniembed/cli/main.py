"""Entry point of the `uniembed` console script.

Each verb lives in `uniembed/cli/<verb>.py` and exposes `register(subparsers)`, which adds its parser
and sets `func` (called with the parsed arguments; returns an exit code).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import ConfigError, InputError
from ..extras import MissingExtra
from ..launch import RankFailed
from ..version import __version__

VERBS = ("encode", "info", "profiles", "synth", "eval", "index", "search", "train", "demo", "serve", "mine", "rerank", "soup",
         "probe", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uniembed", description="Universal multimodal embeddings: train, evaluate, serve.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (and third-party import messages)")
    parser.add_argument("--version", action="version", version=f"uniembed {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        try:
            module = importlib.import_module(f"{__package__}.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{verb}":
                continue  # verb not shipped in this build
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given: `--processes` re-runs it in each rank
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        from ..quiet import quiet_third_party_logs

        quiet_third_party_logs()
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():  # log lines printed above a progress bar, not through it
            return int(args.func(args) or 0)
    except RankFailed as exc:  # `--processes N`: one rank failed, the others were stopped
        print(f"uniembed {args.verb}: error: {exc}", file=sys.stderr)
        return 1
    except (InputError, ConfigError, FileNotFoundError, MissingExtra) as exc:
        print(f"uniembed {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"uniembed {args.verb}: interrupted; finished work is kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
