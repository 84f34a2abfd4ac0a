"""Small helpers shared by CLI verbs."""
from __future__ import annotations

import argparse
import os


def add_model_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--model", required=required,
                        help="checkpoint directory, or a random model built offline: 'tiny[:FAMILY][:SIZE[:SEED]]' "
                             "with FAMILY qwen2_vl (the default), qwen3_vl or llava_onevision and SIZE tiny "
                             "(0.5M parameters, the default), mini (1.1M) or small (2.3M), e.g. 'tiny:mini', "
                             "'tiny:qwen3_vl'")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: the checkpoint's)")
    parser.add_argument("--profile", default=None,
                        help="embed as a published family does (`uniembed profiles` lists them, e.g. vlm2vec-v1); "
                             "'none' = library defaults (default: the checkpoint's uniembed.json, or its family by name)")


def add_dimensions_argument(parser: argparse.ArgumentParser) -> None:
    """`--dimensions D`: keep the first D coordinates of every vector (Matryoshka), as `encode(truncate_dim=D)`."""
    parser.add_argument("--dimensions", type=int, default=None, metavar="D",
                        help="keep the first D coordinates of each vector, re-normalised when the model normalises "
                             "(Matryoshka; default: the model's full dimension)")


def add_precision_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """`--precision float32|float16|int8|uint8|binary|ubinary` (index/quantize.py); default None = the verb's own."""
    from ..index.quantize import PRECISIONS  # numpy only: the CLI stays fast

    parser.add_argument("--precision", choices=PRECISIONS, default=None, help=help)


def load_model(spec: str, device: str | None = None, dtype: str | None = None, profile: str | None = None):
    """`Embedder.from_pretrained` with the CLI's defaults: `--device` or CUDA when present."""
    from ..models.embedder import Embedder

    return Embedder.from_pretrained(spec, device=device or "auto", dtype=dtype, profile=profile)


def model_name(spec: str) -> str:
    """A checkpoint directory as an absolute path (so every rank and output names the model alike), else the spec."""
    return os.path.abspath(spec) if os.path.isdir(spec) else spec


RANK_ENTRY = ["-m", "uniembed.cli.main"]  # what each rank runs (benchmarks/eval_rank_phases.py puts itself here)


def add_processes_argument(parser: argparse.ArgumentParser) -> None:
    """`--processes N`: this command's ranks started on this machine by `uniembed.launch` (no torchrun)."""
    parser.add_argument("--processes", type=positive_int, default=1, metavar="N",
                        help="run as N local processes (ranks), each encoding a share, as `torchrun --nproc_per_node "
                             "N -m uniembed.cli.main ...` would; the launcher imports no torch (default 1)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"wants a whole number >= 1, got {text!r}")
    return value


def launch_processes(args: argparse.Namespace) -> int:
    """Run this same command line as `args.processes` ranks (`uniembed.launch`); the launcher's exit status.
    Raises `launch.RankFailed` when a rank fails."""
    import sys

    from ..launch import run_ranks

    refuse_nested_launch(args)
    return run_ranks([sys.executable, *RANK_ENTRY, *without_option(args.argv, "--processes")], args.processes)


def refuse_nested_launch(args: argparse.Namespace) -> None:
    """`--processes N` in a process that already is a rank (torchrun's, or a launched one): a ConfigError."""
    from ..errors import ConfigError

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(f"--processes {args.processes} starts its own ranks, but this process is already rank "
                          f"{os.environ.get('RANK')} of {os.environ['WORLD_SIZE']} (torchrun?): leave one of them out")


def without_option(argv: list[str], option: str) -> list[str]:
    """`argv` less `option VALUE` / `option=VALUE` (every occurrence)."""
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == option:
            skip = True
        elif not word.startswith(option + "="):
            kept.append(word)
    return kept
