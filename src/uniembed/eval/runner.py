"""Run evaluation tasks: encode every distinct item once, score each task locally or over its pool.

Local tasks (`EvalTask.candidate_lists` set) rank each query against its own list; global tasks rank
against the whole de-duplicated pool with FAISS exact inner product (`uniembed.index.exact_topk`, the
code mining and `uniembed search` use). Every score goes through `eval.metrics`.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..data.examples import EvalTask
from ..errors import ConfigError
from ..index.faiss_index import exact_topk
from ..parallel import World
from ..encoding import EmbeddingCache, EmbeddingTable, EncodeStats, Encoder, encode_distinct
from ..index.quantize import rescore as rescore_candidates
from .precision import PrecisionScoring, precision_scorings, rescored
from .metrics import first_relevant_ranks, rank_summary, ranking_metrics, topk_metrics

log = logging.getLogger(__name__)
DEFAULT_KS = (1, 5, 10)
RANK_METRICS = ("median_rank", "mean_rank")


@dataclass
class TaskResult:
    """One task's scores (percent, ranks as ranks) and a few ranked examples for the HTML report."""

    name: str
    metric: str
    score: float
    metrics: dict[str, float]
    meta_task: str = ""
    modality_group: str = ""
    in_distribution: bool | None = None
    chance: float | None = None
    num_queries: int = 0
    examples: list[dict] = field(default_factory=list)


@dataclass
class RunResult:
    tasks: list[TaskResult]
    stats: EncodeStats
    by_dimension: dict[int, list[TaskResult]] = field(default_factory=dict)  # Matryoshka widths (`dimensions`)
    # `precisions`: width (None = full) -> scoring name (`int8`, `binary+rescore4`) -> results
    by_precision: dict[int | None, dict[str, list[TaskResult]]] = field(default_factory=dict)


def metric_ks(task: EvalTask) -> tuple[int, ...]:
    """The cut-offs a task needs: 1, 5, 10 plus every k named by its metrics."""
    named = [int(m) for name in (task.metric, *task.extra_metrics) for m in re.findall(r"@(\d+)", name)]
    return tuple(sorted(set(DEFAULT_KS) | set(named)))


def task_items(task: EvalTask) -> list:
    return list(task.queries) + list(task.candidates)


def run_tasks(encoder: Encoder, tasks: Sequence[EvalTask], batch_size: int = 32, cache: EmbeddingCache | None = None,
              examples_per_task: int = 3, decode_workers: int = 2, progress: bool = True,
              use_gpu: bool | None = None, world: World | None = None,
              exchange_dir: str | os.PathLike | None = None, dimensions: Sequence[int] = (),
              precisions: Sequence[str] = (), rescore: int = 0) -> RunResult:
    """Encode all tasks' distinct items in one pass, then score every task, at full width and at each of
    `dimensions` (the vectors' first d coordinates, re-normalised: Matryoshka widths; no re-encoding), and at
    every width again at each of `precisions` (`eval.precision`; with `rescore` K also re-ranked K x k deep).

    Under torchrun (`world` distributed) every rank encodes its share; rank 0 scores, the others get no tasks.
    """
    items = [item for task in tasks for item in task_items(task)]
    task_keys = [([q.content_key() for q in task.queries], [c.content_key() for c in task.candidates]) for task in tasks]
    table, stats = encode_distinct(encoder, items, batch_size=batch_size, cache=cache, decode_workers=decode_workers,
                                   progress=progress, desc="encoding all tasks", world=world, exchange_dir=exchange_dir,
                                   keys=[key for queries, candidates in task_keys for key in (*queries, *candidates)],
                                   steal=True)  # a rank done early takes another's unstarted chunks: rank 0 scores sooner
    if table is None:
        return RunResult([], stats)
    log.info("encoded %d distinct of %d items (%d from cache) in %.1fs", stats.distinct, stats.requested,
             stats.from_cache, stats.seconds)
    results = [score_task(task, table, examples_per_task, use_gpu, keys) for task, keys in zip(tasks, task_keys)]
    width = table.vectors.shape[1]
    for dimension in dimensions:
        if not 1 <= dimension <= width:
            raise ConfigError(f"--dimensions {dimension} is outside the model's 1..{width} dimensions; "
                              f"pass widths of at most {width}")
    scorings = precision_scorings(precisions, rescore)
    by_dimension, by_precision = {}, {}
    for dimension in (None, *dimensions):  # None: the full width, already scored above
        cut = table if dimension is None else table.truncated(dimension)
        if dimension is not None:
            by_dimension[dimension] = [score_task(task, cut, 0, use_gpu, keys) for task, keys in zip(tasks, task_keys)]
        for scoring in scorings:
            by_precision.setdefault(dimension, {})[scoring.name] = [
                score_task(task, cut, 0, use_gpu, keys, scoring) for task, keys in zip(tasks, task_keys)]
    return RunResult(results, stats, by_dimension, by_precision)


def score_task(task: EvalTask, table: EmbeddingTable, examples_per_task: int = 3, use_gpu: bool | None = None,
               keys: tuple[list[str], list[str]] | None = None,
               scoring: PrecisionScoring = PrecisionScoring()) -> TaskResult:
    """One task's scores; `keys`: its (query, candidate) content keys when already computed; `scoring`: the
    precision the vectors are scored at (default float32: as they are)."""
    query_keys, candidate_keys = keys or ([q.content_key() for q in task.queries], [c.content_key() for c in task.candidates])
    queries = table.lookup(query_keys)
    pool = table.lookup(candidate_keys)
    scored_queries, scored_pool = scoring.vectors(queries, pool)
    ks = metric_ks(task)
    depth = scoring.depth(max(ks))
    wants_ranks = any(name in RANK_METRICS for name in task.extra_metrics)
    if task.is_local:
        scores, positions = local_scores(scored_queries, scored_pool, task.candidate_lists)
        if scoring.rescore:
            scores = rescored(scores, local_scores(queries, pool, task.candidate_lists)[0], depth)
        metrics = ranking_metrics(scores, task.qrels, ks)
        ranked = np.argsort(-scores[:examples_per_task], axis=1, kind="stable")[:, :5]
        tops = [[positions[q][j] for j in row if j < len(task.candidate_lists[q])] for q, row in enumerate(ranked)]
        golds = [[task.candidate_lists[q][j] for j in task.qrels[q]] for q in range(min(examples_per_task, len(task.queries)))]
        ranks = first_relevant_ranks(scores, task.qrels) if wants_ranks else None
    else:
        _, top = exact_topk(scored_queries, scored_pool, depth, use_gpu=use_gpu)
        if scoring.rescore:
            _, top = rescore_candidates(queries, top, pool.__getitem__, max(ks))
        metrics = topk_metrics(top, task.qrels, ks)
        tops = [[int(c) for c in row[:5] if c >= 0] for row in top[:examples_per_task]]
        golds = [sorted(task.qrels[q]) for q in range(min(examples_per_task, len(task.queries)))]
        ranks = _global_ranks(scored_queries, scored_pool, task.qrels, exact=(queries, pool) if scoring.rescore
                              else None, depth=depth) if wants_ranks else None
    percent = {name: 100.0 * value for name, value in metrics.items()}
    if ranks is not None:
        percent.update(rank_summary(ranks))
    if task.metric not in percent:
        raise ValueError(f"task {task.name}: metric {task.metric!r} is not one of {sorted(percent)}")
    examples = [{"query": q, "top": tops[q], "gold": golds[q]} for q in range(len(tops))]
    return TaskResult(task.name, task.metric, percent[task.metric], percent, task.meta_task, task.modality_group,
                      task.in_distribution, None if task.chance is None else _as_percent(task.chance),
                      len(task.queries), examples)


def local_scores(queries: np.ndarray, pool: np.ndarray, lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, list]:
    """Q x Lmax similarities of each query with its own list (padding = -inf, never ranked above a candidate)."""
    width = max((len(candidates) for candidates in lists), default=0)
    scores = np.full((len(lists), width), -np.inf, dtype=np.float64)
    for q, candidates in enumerate(lists):
        if len(candidates):
            scores[q, :len(candidates)] = pool[list(candidates)] @ queries[q]
    return scores, [list(c) for c in lists]


def _global_ranks(queries: np.ndarray, pool: np.ndarray, qrels, chunk: int = 1024,
                  exact: tuple[np.ndarray, np.ndarray] | None = None, depth: int = 0) -> np.ndarray:
    """First relevant rank per query over the whole pool; `exact`: the float (queries, pool) that re-rank
    each query's top `depth` (rescoring)."""
    def scores(s: int) -> np.ndarray:
        block = queries[s:s + chunk] @ pool.T
        return block if exact is None else rescored(block, exact[0][s:s + chunk] @ exact[1].T, depth)

    return np.concatenate([first_relevant_ranks(scores(s), qrels[s:s + chunk])
                           for s in range(0, len(queries), chunk)]) if len(queries) else np.zeros(0)


def _as_percent(chance: float) -> float:
    """`EvalTask.chance` is a fraction (as the readers compute it); reports use percent."""
    return 100.0 * chance
