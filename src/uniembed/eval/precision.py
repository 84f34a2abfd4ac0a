"""Score evaluation vectors at a storage precision (`uniembed eval --precision`), as `uniembed search` scores them.

One `PrecisionScoring` per requested precision turns a task's float query and candidate vectors into the vectors
whose inner products an index of that precision returns (`uniembed.index.quantize`):
- float32: the vectors themselves (the plain scores, exactly);
- float16 / int8 / uint8: candidates stored at the precision (int8/uint8 on ranges calibrated from the task's
  candidate pool, as `uniembed index build` calibrates on the indexed vectors) and read back, queries kept float:
  the score of FAISS's SQfp16 / SQ8 index, `q . dequantised(c)`;
- binary / ubinary: both sides packed to sign bits and scored as +-1 vectors, i.e. D - 2 x Hamming distance, the
  order of FAISS's binary indexes. Equal distances are common (a weak model's vectors share most of their sign
  bits) and are broken by a fixed random order of the candidates (`TIE_SEED`), not by their position: MMEB-style
  candidate lists put the gold first, and position order would hand it every tie (a random tiny model scored
  44 with binary codes against 6 in float32 on the synthetic suite that way). A score is D - 2h + u, u in [0, 1)
  per candidate, below the step of 2 between distances.
With `rescore` K the top K x k candidates of each query (k = the task's deepest cut-off) are re-ranked by the
float inner product and stay above the rest, as `uniembed search --rescore K` re-ranks them with float32
vectors kept on disk.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..index.quantize import PRECISIONS, calibrate, check_precision, dequantize, is_binary, needs_ranges, quantize

TIE_SEED = 0  # the fixed random order that breaks equal Hamming distances


@dataclass(frozen=True)
class PrecisionScoring:
    """How one results.json `by_precision` entry scores: a precision and an optional rescoring depth factor."""

    precision: str = "float32"
    rescore: int = 0

    @property
    def name(self) -> str:
        """The entry's key: the precision, with `+rescoreK` when rescored (e.g. `binary+rescore4`)."""
        return self.precision + (f"+rescore{self.rescore}" if self.rescore else "")

    def depth(self, k: int) -> int:
        """How many candidates the quantised scores pick before rescoring (k without rescoring)."""
        return k * self.rescore if self.rescore else k

    def vectors(self, queries: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(queries, pool) as an index of this precision scores them (see the module docstring)."""
        if self.precision == "float32" or len(pool) == 0:
            return queries, pool
        ranges = calibrate(pool) if needs_ranges(self.precision) else None
        stored = dequantize(quantize(pool, self.precision, ranges), self.precision, ranges)
        if is_binary(self.precision):  # +-1 vectors, plus a column that adds each candidate's tie-break u
            queries = dequantize(quantize(queries, self.precision), self.precision)
            queries = np.hstack([queries, np.ones((len(queries), 1), np.float32)])
            stored = np.hstack([stored, tie_breaks(len(stored))[:, None]])
        return queries, stored


def tie_breaks(count: int) -> np.ndarray:
    """u in [0, 1) for each of `count` candidates: the fixed random order of equal Hamming distances."""
    return np.random.default_rng(TIE_SEED).random(count, dtype=np.float32)


def precision_scorings(precisions: Sequence[str], rescore: int = 0) -> list[PrecisionScoring]:
    """One scoring per precision, plus its rescored twin for every precision below float32 when `rescore` > 0."""
    if rescore < 0:
        raise ConfigError(f"--rescore {rescore} must be 0 (off) or a positive factor like 4")
    scorings = []
    for precision in dict.fromkeys(precisions):
        scorings.append(PrecisionScoring(check_precision(precision)))
        if rescore and precision != "float32":
            scorings.append(PrecisionScoring(precision, rescore))
    return scorings


def rescored(scores: np.ndarray, exact: np.ndarray, depth: int) -> np.ndarray:
    """A Q x C score matrix whose rows rank their top `depth` entries of `scores` by `exact` (ties kept in the
    quantised order), all above the other entries, which keep their quantised order; -inf padding stays."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0 or depth <= 0:
        return scores
    rows = np.arange(len(scores))[:, None]
    top = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
    picked = scores[rows, top]
    lifted = np.asarray(exact, dtype=np.float64)[rows, top]
    finite = np.isfinite(picked)
    if not finite.any():
        return scores
    lift = np.max(scores[np.isfinite(scores)]) - np.min(lifted[finite]) + 1.0  # every rescored entry above the rest
    out = scores.copy()
    out[rows, top] = np.where(finite, lifted + lift, -np.inf)
    return out


def precision_list(text: str) -> tuple[str, ...]:
    """`--precision float32,int8,binary`: distinct known precisions in the order given."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise ConfigError(f"--precision wants comma-separated precisions from {', '.join(PRECISIONS)}, got {text!r}")
    return tuple(check_precision(name) for name in names)
