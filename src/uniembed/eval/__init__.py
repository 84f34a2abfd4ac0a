"""Evaluation: exact benchmark protocols (suites), ranking metrics, a fast de-duplicating runner with an
on-disk embedding cache, and reports (results.json, report.md, report.html)."""
from .metrics import first_relevant_ranks, ranking_metrics, topk_metrics

__all__ = ["ranking_metrics", "topk_metrics", "first_relevant_ranks", "evaluate"]


def __getattr__(name: str):
    if name == "evaluate":  # imported lazily: it pulls in every suite and the readers
        from .evaluate import evaluate

        return evaluate
    raise AttributeError(f"module 'uniembed.eval' has no attribute {name!r}")
