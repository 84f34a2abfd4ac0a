"""Small helpers shared by CLI verbs."""
from __future__ import annotations

import argparse
from typing import Any


def add_model_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--model", required=required,
                        help="checkpoint directory, or 'tiny' / 'tiny:small' for a random tiny Qwen2-VL "
                             "('tiny:qwen3_vl', 'tiny:llava_onevision[:size[:seed]]' for the other families)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: the checkpoint's)")


def load_model(spec: str, device: str | None = None, dtype: str | None = None, **overrides: Any):
    """An Embedder from a directory or a `tiny[:size[:seed]]` spec; CUDA is used when present."""
    import torch

    from ..models.embedder import load_embedder

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_embedder(spec, device=device, dtype=dtype, **overrides)
