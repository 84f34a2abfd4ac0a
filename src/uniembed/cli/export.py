"""`uniembed export MODEL OUT [--overwrite] [--keep-adapter]`: a folder transformers, sentence-transformers and
vLLM load as they are (`uniembed.models.export`, files by `uniembed.models.interop`)."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write a model folder sentence-transformers and vLLM load (merged weights, chat template)",
        description="Write MODEL to OUT with any LoRA/DoRA adapter merged, the backbone's transformers config, "
                    "tokenizer and processor with the profile's pixel bounds, an embedding chat template, the "
                    "sentence-transformers modules and a model card. Serve it with "
                    "`vllm serve OUT --runner pooling --chat-template OUT/chat_template.jinja`.")
    parser.add_argument("model", help="checkpoint directory or tiny spec (tiny[:family][:size[:seed]])")
    parser.add_argument("out", help="output folder (must be empty or missing unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty OUT")
    parser.add_argument("--keep-adapter", action="store_true", help="also write the LoRA adapter to OUT/adapter/")
    parser.add_argument("--profile", default=None, help="embed under this profile (`uniembed profiles`)")
    parser.add_argument("--matryoshka-dims", type=int, nargs="+", default=None,
                        help="Matryoshka dimensions the model was trained with (written to config.json for vLLM)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models.export import export_model

    caveats = export_model(args.model, args.out, overwrite=args.overwrite, keep_adapter=args.keep_adapter,
                           profile=args.profile, matryoshka_dimensions=args.matryoshka_dims)
    for caveat in caveats:
        print(f"warning: sentence-transformers / vLLM will not embed as uniembed does: {caveat}")
    print(json.dumps({"exported": args.out, "faithful": not caveats}))
    return 0
