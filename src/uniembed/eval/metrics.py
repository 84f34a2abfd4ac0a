"""Ranking metrics exactly as benchmarks.md defines them, for binary and graded relevance.

Every suite scores through `ranking_metrics` (a dense Q x C score matrix) or `topk_metrics` (the top-k
candidate indices of each query, as FAISS returns them for a global pool). Both rank by descending score
with ties broken by candidate order (a stable sort), so results never depend on sort implementation.

Definitions, for a query with relevance rel(d) > 0 for its relevant candidates and ranks r = 1, 2, ...:
- hit@k: 1 if any relevant candidate is in the top k.
- recall@k: relevant found in the top k / all relevant.
- precision@k: relevant in the top k / k.
- mrr@k: 1 / rank of the first relevant candidate within k, else 0.
- ndcg@k (linear gain): sum_{r<=k} rel_r / log2(r+1), divided by the same sum for the ideal ordering.
- map@k: the sum, over relevant candidates within the top k, of precision at their rank, divided by
  min(k, number relevant) (the CIRCO convention; a perfect ranking scores 1).
All are means over queries, returned as fractions in [0, 1].
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..data.readers.pool import reference_graded_pairs  # noqa: F401  (the published nDCG pairing)
from ..errors import InputError

METRIC_NAMES = ("hit", "recall", "precision", "mrr", "ndcg", "map")
Qrels = Sequence[Mapping[int, float]]


def rank_candidates(scores: np.ndarray, depth: int | None = None) -> np.ndarray:
    """Candidate indices of each row by descending score, ties in candidate order; first `depth` columns."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), axis=1, kind="stable")
    return order if depth is None else order[:, :depth]


def ranking_metrics(scores: np.ndarray, qrels: Qrels, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """hit/recall/precision/mrr/ndcg/map at each k for a Q x C score matrix (means over queries).

    `qrels[q]` maps candidate index -> relevance (> 0; zero or negative entries are ignored).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise InputError(f"scores must be a Q x C matrix, got shape {scores.shape}")
    _check_qrels(qrels, scores.shape[0], scores.shape[1])
    ranked = rank_candidates(scores, depth=min(max(ks), scores.shape[1]))
    return topk_metrics(ranked, qrels, ks)


def topk_metrics(top_indices: np.ndarray, qrels: Qrels, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """The same metrics from each query's ranked top candidates (global-pool variant).

    `top_indices` is Q x depth (candidate indices best first, -1 for padding, as FAISS returns when the
    pool is smaller than depth). Metrics at k > depth are computed as if nothing relevant lay below depth,
    so pass depth >= max(ks).
    """
    top_indices = np.asarray(top_indices)
    if top_indices.ndim != 2 or top_indices.shape[0] != len(qrels):
        raise InputError(f"top_indices must be Q x depth with Q = {len(qrels)} queries, got shape {top_indices.shape}")
    ks = _check_ks(ks)
    totals = {f"{name}@{k}": 0.0 for k in ks for name in METRIC_NAMES}
    for row, rels in zip(top_indices, qrels):
        gains = np.array([_relevance(rels, int(c)) for c in row], dtype=np.float64)
        for name, value in _query_metrics(gains, rels, ks).items():
            totals[name] += value
    count = max(len(qrels), 1)
    return {name: total / count for name, total in totals.items()}


def first_relevant_ranks(scores: np.ndarray, qrels: Qrels) -> np.ndarray:
    """1-based rank of the first relevant candidate of each query (ties in candidate order); inf if none."""
    scores = np.asarray(scores)
    _check_qrels(qrels, scores.shape[0], scores.shape[1])
    ranked = rank_candidates(scores)
    ranks = np.full(len(qrels), np.inf)
    for q, rels in enumerate(qrels):
        hits = np.flatnonzero([_relevance(rels, int(c)) > 0 for c in ranked[q]])
        if hits.size:
            ranks[q] = hits[0] + 1
    return ranks


def rank_summary(ranks: np.ndarray) -> dict[str, float]:
    """median_rank and mean_rank of first-relevant ranks (the text-video convention)."""
    finite = np.asarray(ranks, dtype=np.float64)
    return {"median_rank": float(np.median(finite)), "mean_rank": float(np.mean(finite))}


def _query_metrics(gains: np.ndarray, rels: Mapping[int, float], ks: Sequence[int]) -> dict[str, float]:
    relevant = sorted((float(v) for v in rels.values() if v > 0), reverse=True)
    n_relevant = len(relevant)
    out: dict[str, float] = {}
    is_rel = gains > 0
    discounts = 1.0 / np.log2(np.arange(2, len(gains) + 2))
    cum_rel = np.cumsum(is_rel)
    precision_at_rank = cum_rel / np.arange(1, len(gains) + 1)
    for k in ks:
        top_rel = is_rel[:k]
        found = int(top_rel.sum())
        out[f"hit@{k}"] = float(found > 0)
        out[f"precision@{k}"] = found / k
        if n_relevant == 0:
            for name in ("recall", "mrr", "ndcg", "map"):
                out[f"{name}@{k}"] = 0.0
            continue
        out[f"recall@{k}"] = found / n_relevant
        first = np.flatnonzero(top_rel)
        out[f"mrr@{k}"] = 1.0 / (first[0] + 1) if first.size else 0.0
        dcg = float(np.sum(gains[:k] * discounts[:k]))
        ideal = np.asarray(relevant[:k])
        idcg = float(np.sum(ideal / np.log2(np.arange(2, len(ideal) + 2))))
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"map@{k}"] = float(np.sum(precision_at_rank[:k][top_rel])) / min(k, n_relevant)
    return out


def _relevance(rels: Mapping[int, float], candidate: int) -> float:
    if candidate < 0:
        return 0.0
    value = rels.get(candidate, 0.0)
    return float(value) if value > 0 else 0.0


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = list(ks)
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise InputError(f"ks must be positive integers, got {ks}")
    return [int(k) for k in ks]


def _check_qrels(qrels: Qrels, n_queries: int, n_candidates: int) -> None:
    if len(qrels) != n_queries:
        raise InputError(f"{len(qrels)} qrels for {n_queries} queries", fix="give one {candidate: relevance} dict per query")
    for q, rels in enumerate(qrels):
        for candidate in rels:
            if not 0 <= int(candidate) < n_candidates:
                raise InputError(f"qrels of query {q} name candidate {candidate}, but there are {n_candidates} candidates",
                                 row=q, fix="index candidates from 0 in the order of the score columns")

