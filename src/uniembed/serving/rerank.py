"""Re-ranking hook: any object with `score(query, candidates) -> scores` serves `POST /v1/rerank`.

`uniembed.Reranker` (P(yes) of the MLLM, `uniembed serve --reranker DIR`) is one; without a configured
re-ranker the endpoint answers 404 with an OpenAI-style error.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from ..inputs import Item


@runtime_checkable
class Reranker(Protocol):
    """Scores each candidate against the query (higher = more relevant); one float per candidate."""

    def score(self, query: Item, candidates: Sequence[Item]) -> Sequence[float]:
        ...


def ranked(scores: Sequence[float], top_n: int | None) -> list[tuple[int, float]]:
    """(candidate index, score) by descending score, ties by index, cut to `top_n`."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    if top_n is not None:
        order = order[:top_n]
    return [(i, float(scores[i])) for i in order]
