"""The `/v1/embeddings` `encoding_format`s: float and base64 as the OpenAI API sends them, plus quantised forms.

OpenAI and vLLM accept `float` and `base64` only (openai/openai-python@753c0639
src/openai/types/embedding_create_params.py: `encoding_format: Literal["float", "base64"]`; vLLM
vllm-project/vllm@07dfb38e vllm/utils/serial_utils.py: `EncodingFormat = Literal["float", "base64", "bytes"]`,
its `embed_dtype` only float32/float16/bfloat16/fp8). The quantised forms follow sentence-transformers'
`quantize_embeddings` precisions (int8, uint8, binary, ubinary), computed by `uniembed.index.quantize` exactly as
`uniembed encode --precision` stores them, and sent as JSON integer lists:
- `int8` / `uint8`: one integer per dimension (-128..127 / 0..255) on per-dimension ranges calibrated on the
  operator's own vectors: `uniembed serve --ranges DIR/ranges.npy` (the file `uniembed encode --precision int8`
  writes). Without it an int8/uint8 request is refused (400) naming the option: a code means nothing without
  the ranges the stored vectors were quantised on, and ranges of one request's few vectors would not be theirs.
- `binary` / `ubinary`: the sign bits packed 8 per byte, dimension/8 integers (int8 = uint8 - 128 / uint8);
  no ranges needed; the width (after `dimensions`) must be a multiple of 8.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..index.quantize import needs_ranges, quantize

FORMATS = ("float", "base64", "int8", "uint8", "binary", "ubinary")


def load_ranges(path: str | os.PathLike) -> np.ndarray:
    """The 2 x D float32 ranges file `--ranges` names, checked (ConfigError naming the file and the fix)."""
    path = Path(path)
    try:
        ranges = np.load(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--ranges '{path}' cannot be read as a .npy array ({exc}); pass the ranges.npy that "
                          "`uniembed encode --precision int8` wrote") from None
    if ranges.ndim != 2 or ranges.shape[0] != 2 or ranges.dtype.kind != "f" or (ranges[0] > ranges[1]).any():
        raise ConfigError(f"--ranges '{path}' holds a {ranges.dtype} array of shape {ranges.shape}, not 2 x D "
                          "per-dimension [min, max] floats; pass the ranges.npy that `uniembed encode --precision "
                          "int8` wrote")
    return ranges.astype(np.float32)


def check_format(encoding_format: str, width: int, ranges: np.ndarray | None = None) -> None:
    """Raise ConfigError when `encoding_format` cannot be given for `width`-d vectors (int8/uint8 without ranges
    or with ranges of another width, binary at a width that is not a multiple of 8); the message names the fix."""
    if encoding_format not in FORMATS:
        raise ConfigError(f"encoding_format {encoding_format!r} is not one of {', '.join(FORMATS)}")
    if encoding_format in ("binary", "ubinary") and width % 8:
        raise ConfigError(f"encoding_format '{encoding_format}' packs 8 dimensions per byte, but the vectors are "
                          f"{width}-d: ask for dimensions that are a multiple of 8")
    if needs_ranges(encoding_format):
        if ranges is None:
            raise ConfigError(f"encoding_format '{encoding_format}' needs calibration ranges, and this server has "
                              "none: start it with `uniembed serve --ranges DIR/ranges.npy` (written by `uniembed "
                              "encode --precision int8`), or ask for float, base64, binary or ubinary")
        if ranges.shape[1] != width:
            raise ConfigError(f"encoding_format '{encoding_format}': the server's ranges are {ranges.shape[1]}-d but "
                              f"the vectors are {width}-d; ask for dimensions={ranges.shape[1]} or start "
                              "the server with ranges calibrated at this width")


def format_vectors(vectors: np.ndarray, encoding_format: str, ranges: np.ndarray | None = None) -> list:
    """One response `embedding` per row: float list, base64 of little-endian float32 (as the OpenAI API sends
    them), or quantised integers (`check_format` says when a format cannot be given)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    check_format(encoding_format, vectors.shape[1], ranges)
    if encoding_format == "float":
        return vectors.tolist()
    if encoding_format == "base64":
        return [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors]
    return quantize(vectors, encoding_format, ranges).astype(np.int64).tolist()
