"""Re-ranked evaluation: fuse the first stage's cosine with the re-ranker's P(yes) over each query's top K.

    fused(q, d) = cos(q, d) + w * P_yes(q, d)     for d in the top K of q by cosine

Below rank K the cosine order is kept (the fused head always ranks above the tail). The weight w is
chosen on a validation split (`choose_weight` over a grid, ties to the smaller weight), or given
explicitly; it is never chosen on the tasks being reported (U-MARVEL fuses over the top 50 with w = 1).

A re-ranker here is anything with `score_pairs(pairs, batch_size) -> P(yes) per pair` (uniembed.Reranker),
or only the serving protocol's `score(query, candidates)`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.examples import EvalTask
from ..errors import ConfigError
from ..index.faiss_index import exact_topk
from ..inputs import Item
from ..encoding import EmbeddingCache, EncodeStats, Encoder, encode_distinct
from .evaluate import Evaluation
from .metrics import rank_candidates, topk_metrics
from .reference import published_for
from .report import results_payload, write_reports
from .runner import TaskResult, local_scores, metric_ks, task_items
from .suites import SuiteOptions, get_suite

log = logging.getLogger(__name__)
DEFAULT_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class Shortlist:
    """One task's first stage: each query's ranked candidates (indices in what the query ranks: its local
    list or the pool; -1 = none), their cosines, and the re-ranker's P(yes) for the first `top_k`."""

    task: EvalTask
    candidates: np.ndarray  # Q x depth
    cosine: np.ndarray  # Q x depth (-inf where candidates is -1)
    top_k: int
    p_yes: np.ndarray | None = None  # Q x top_k (0 where candidates is -1)

    def candidate_item(self, query: int, column: int) -> Item:
        index = int(self.candidates[query, column])
        if self.task.is_local:
            index = self.task.candidate_lists[query][index]
        return self.task.candidates[index]


def shortlist(encoder: Encoder, tasks: Sequence[EvalTask], top_k: int = 50, batch_size: int = 32,
              cache: EmbeddingCache | None = None, progress: bool = True) -> tuple[list[Shortlist], EncodeStats]:
    """Encode every task's distinct items once and keep each query's cosine ranking to the needed depth."""
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}")
    items = [item for task in tasks for item in task_items(task)]
    table, stats = encode_distinct(encoder, items, batch_size=batch_size, cache=cache, progress=progress,
                                   desc="encoding (first stage)")
    lists = []
    for task in tasks:
        queries = table.lookup([q.content_key() for q in task.queries])
        pool = table.lookup([c.content_key() for c in task.candidates])
        depth = max(top_k, max(metric_ks(task)))
        if task.is_local:
            scores, _ = local_scores(queries, pool, task.candidate_lists)
            order = rank_candidates(scores, depth)
            cosine = np.take_along_axis(scores, order, axis=1)
            candidates = np.where(np.isfinite(cosine), order, -1)
        else:
            cosine, candidates = exact_topk(queries, pool, depth)
            cosine = np.where(candidates >= 0, cosine, -np.inf)
        lists.append(Shortlist(task, candidates.astype(np.int64), cosine.astype(np.float64), top_k))
    return lists, stats


def score_shortlists(reranker: Any, shortlists: Sequence[Shortlist], batch_size: int = 16) -> None:
    """Fill each shortlist's P(yes) for its top K (each distinct query-candidate pair scored once)."""
    pairs: dict[tuple[str, str], tuple[Item, Item]] = {}
    for sl in shortlists:
        for q, query in enumerate(sl.task.queries):
            for column in range(min(sl.top_k, sl.candidates.shape[1])):
                if sl.candidates[q, column] >= 0:
                    candidate = sl.candidate_item(q, column)
                    pairs.setdefault((query.content_key(), candidate.content_key()), (query, candidate))
    keys = list(pairs)
    scores = dict(zip(keys, _score_pairs(reranker, [pairs[k] for k in keys], batch_size)))
    for sl in shortlists:
        width = min(sl.top_k, sl.candidates.shape[1])
        sl.p_yes = np.zeros((len(sl.task.queries), width))
        for q, query in enumerate(sl.task.queries):
            for column in range(width):
                if sl.candidates[q, column] >= 0:
                    key = (query.content_key(), sl.candidate_item(q, column).content_key())
                    sl.p_yes[q, column] = scores[key]


def _score_pairs(reranker: Any, pairs: list[tuple[Item, Item]], batch_size: int) -> np.ndarray:
    if not pairs:
        return np.zeros(0)
    if hasattr(reranker, "score_pairs"):
        return np.asarray(reranker.score_pairs(pairs, batch_size=batch_size), dtype=np.float64)
    return np.asarray([float(reranker.score(query, [candidate])[0]) for query, candidate in pairs])


def fused_ranking(sl: Shortlist, weight: float) -> np.ndarray:
    """Q x depth candidate indices: the top K re-ordered by cos + weight * P_yes, then the cosine tail."""
    if sl.p_yes is None:
        raise ConfigError("score the shortlists with a re-ranker first (score_shortlists)")
    width = sl.p_yes.shape[1]
    fused = sl.cosine[:, :width] + weight * sl.p_yes
    head = np.take_along_axis(sl.candidates[:, :width], rank_candidates(fused), axis=1)
    return np.concatenate([head, sl.candidates[:, width:]], axis=1)


def fused_results(shortlists: Sequence[Shortlist], weight: float) -> list[TaskResult]:
    return [ranking_result(sl.task, fused_ranking(sl, weight)) for sl in shortlists]


def ranking_result(task: EvalTask, ranked: np.ndarray, examples_per_task: int = 3) -> TaskResult:
    """A task's scores (percent) from each query's ranked candidate indices."""
    percent = {name: 100.0 * value for name, value in topk_metrics(ranked, task.qrels, metric_ks(task)).items()}
    if task.metric not in percent:
        raise ConfigError(f"task {task.name}: metric {task.metric!r} cannot be computed from a re-ranked top list")
    examples = [{"query": q, "top": [int(c) for c in ranked[q, :5] if c >= 0], "gold": sorted(task.qrels[q])}
                for q in range(min(examples_per_task, len(task.queries)))]
    return TaskResult(task.name, task.metric, percent[task.metric], percent, task.meta_task, task.modality_group,
                      task.in_distribution, None if task.chance is None else 100.0 * task.chance, len(task.queries),
                      examples)


def choose_weight(val_shortlists: Sequence[Shortlist], weights: Sequence[float] = DEFAULT_WEIGHTS,
                  overall=None) -> tuple[float, dict[float, float]]:
    """The weight with the best overall validation score (ties: the smaller weight), and every weight's score."""
    if not weights:
        raise ConfigError("give at least one candidate weight")
    overall = overall or (lambda results: float(np.mean([r.score for r in results])))
    table = {float(w): float(overall(fused_results(val_shortlists, float(w)))) for w in sorted(weights)}
    best = max(table, key=lambda w: (table[w], -w))
    return best, table


def evaluate_reranked(encoder: Encoder, reranker: Any, suite: str, data: str | os.PathLike,
                      out: str | os.PathLike | None = None, *, val_data: str | os.PathLike | None = None,
                      weight: float | None = None, weights: Sequence[float] = DEFAULT_WEIGHTS, top_k: int = 50,
                      datasets: Sequence[str] | None = None, pool: str = "local", batch_size: int = 32,
                      rerank_batch_size: int = 16, cache_dir: str | os.PathLike | None = None, seed: int = 0,
                      progress: bool = True, tasks: Sequence[EvalTask] | None = None,
                      val_tasks: Sequence[EvalTask] | None = None) -> Evaluation:
    """Evaluate `encoder` + `reranker` fused over the top `top_k` on `suite`; w from `val_data` unless given.

    results.json gets the fused scores, the first stage's scores (`first_stage`), the weight used and,
    when chosen, every candidate weight's validation score.
    """
    if weight is None and val_data is None and val_tasks is None:
        raise ConfigError("choose the fusion weight on a validation split (--val-data DIR) or give it (--weight W); "
                          "it is never tuned on the test data")
    definition = get_suite(suite)
    options = SuiteOptions(datasets=list(datasets) if datasets else None, pool=pool, seed=seed)
    tasks = list(tasks) if tasks is not None else definition.load_tasks(data, options)
    cache = EmbeddingCache(cache_dir, encoder.model_id) if cache_dir is not None else None
    try:
        choice: dict[str, Any] = {"weight_source": "given"}
        if weight is None:
            val_tasks = list(val_tasks) if val_tasks is not None else definition.load_tasks(val_data, options)
            val_lists, _ = shortlist(encoder, val_tasks, top_k, batch_size, cache, progress)
            score_shortlists(reranker, val_lists, rerank_batch_size)
            weight, table = choose_weight(val_lists, weights, definition.overall)
            choice = {"weight_source": "validation", "val_data": str(val_data) if val_data else None,
                      "val_overall_by_weight": {str(w): round(s, 4) for w, s in table.items()}}
            log.info("fusion weight %.3g chosen on validation (%s)", weight, choice["val_overall_by_weight"])
        test_lists, stats = shortlist(encoder, tasks, top_k, batch_size, cache, progress)
    finally:
        if cache is not None:
            cache.close()
    score_shortlists(reranker, test_lists, rerank_batch_size)
    results = fused_results(test_lists, weight)
    first = [ranking_result(sl.task, sl.candidates) for sl in test_lists]
    model = f"{encoder.model_id}+rerank:{getattr(reranker, 'model_id', type(reranker).__name__)}"
    run_options = {"pool": pool, "batch_size": batch_size, "seed": seed, "top_k": top_k, "weight": weight, **choice}
    payload = results_payload(suite, model, results, definition.summarize(results), definition.overall(results), stats,
                              run_options)
    payload["first_stage"] = {"scores": {r.name: round(r.score, 4) for r in first},
                              "overall": round(float(definition.overall(first)), 4)}
    evaluation = Evaluation(payload, results, tasks, stats)
    if out is not None:
        evaluation.paths = write_reports(Path(out), payload, results, tasks, published_for(suite, pool))
    return evaluation
