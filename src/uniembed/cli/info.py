"""`uniembed info --model DIR`: backbone, parameters, embedding config, modalities."""
from __future__ import annotations

import argparse
import json

from .common import add_model_argument, load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="describe a model: backbone, size, embedding config, modalities")
    add_model_argument(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = load_model(args.model, args.device, args.dtype, profile=args.profile).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"source       {info['source']}")
    print(f"backbone     {info['backbone']} ({info['model_type']})")
    print(f"parameters   {info['parameters']:,}")
    print(f"dimension    {info['dimension']}")
    print(f"dtype        {info['dtype']}")
    print(f"modalities   {', '.join(info['modalities'])}")
    print(f"profile      {info['profile'] or 'none (library defaults or a custom config)'}")
    print("embedding config:")
    for key, value in info["embedding_config"].items():
        print(f"  {key:24s} {value!r}")
    return 0
