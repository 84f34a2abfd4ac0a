"""Multi-vector (late-interaction) evaluation: every task scored by exact MaxSim over token embeddings.

The single-vector runner (`runner.run_tasks`) ranks one vector per item by inner product; here every distinct
item is encoded once with `encode_multi` (n_i x D tokens; with an `EmbeddingCache`, read from and written to its
token table chunk by chunk, so a re-run encodes nothing and an interrupted one keeps its finished chunks),
documents (candidates) are optionally token-pooled by `pool_factor` as a multi-vector index would store them
(`index.token_pooling`; queries are never pooled, as in colpali-engine), and each query ranks its candidates (its
own list, or the whole pool) by `losses.maxsim` scores.
Scores go through the same `eval.metrics` (ties in candidate order) and come back as `runner.TaskResult`s, so
suites, reports and results.json treat them like any run. The scoring is exact (no candidate generation): eval
measures the model and the pooling, `index.multivector` the retrieval shortcut.
"""
from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

import numpy as np

from ..data.examples import EvalTask
from ..encoding import EncodeStats
from ..encoding.cache import EmbeddingCache
from ..encoding.distinct import distinct_items, encode_missing, plan_chunks
from ..errors import ConfigError
from ..index.token_pooling import check_pool_factor, pool_tokens
from .metrics import first_relevant_ranks, rank_candidates, rank_summary, ranking_metrics
from .runner import RANK_METRICS, RunResult, TaskResult, _as_percent, metric_ks, task_items

CHUNK = 64  # items per side of one MaxSim call (bounds the Q x C x Lq x Ld similarity tensor)


def maxsim_matrix(queries: Sequence[np.ndarray], documents: Sequence[np.ndarray]) -> np.ndarray:
    """Q x C float64 MaxSim scores of ragged token matrices (`losses.maxsim`, in chunks)."""
    import torch

    from ..losses.maxsim import maxsim, pad_tokens

    scores = np.zeros((len(queries), len(documents)), dtype=np.float64)
    for q0 in range(0, len(queries), CHUNK):
        q, q_mask = pad_tokens(queries[q0:q0 + CHUNK])
        for d0 in range(0, len(documents), CHUNK):
            d, d_mask = pad_tokens(documents[d0:d0 + CHUNK])
            with torch.no_grad():
                scores[q0:q0 + CHUNK, d0:d0 + CHUNK] = maxsim(q, q_mask, d, d_mask).double().numpy()
    return scores


def run_tasks_multi(encoder: Any, tasks: Sequence[EvalTask], batch_size: int = 32, examples_per_task: int = 3,
                    progress: bool = True, pool_factor: int = 1, world: Any = None,
                    dimensions: Sequence[int] = (), cache: EmbeddingCache | None = None) -> RunResult:
    """Encode all tasks' distinct items once with `encoder.encode_multi` (reading and filling `cache`'s token
    table when given), pool the candidates, score every task. One process only, full token width (`world`
    distributed and Matryoshka `dimensions` are refused)."""
    pool_factor = check_pool_factor(pool_factor)
    if (world is not None and world.distributed) or dimensions:
        raise ConfigError("multi-vector evaluation runs in one process at the full token width: drop --dimensions "
                          "and run it without torchrun")
    if not getattr(encoder, "multi_vector_dimension", None):
        raise ConfigError("multi-vector evaluation needs a model with a late-interaction head "
                          "(multi_vector_dimension), but this one is single-vector: drop --multi-vector")
    items = [item for task in tasks for item in task_items(task)]
    tokens, stats = encode_tokens(encoder, distinct_items(items), batch_size, cache, progress)
    stats.requested = len(items)
    candidate_keys = {c.content_key() for task in tasks for c in task.candidates}
    pooled = {key: pool_tokens(tokens[key], pool_factor) for key in candidate_keys}
    return RunResult([score_task_multi(task, tokens, pooled, examples_per_task) for task in tasks], stats)


def encode_tokens(encoder: Any, distinct: dict[str, Any], batch_size: int, cache: EmbeddingCache | None = None,
                  progress: bool = True, chunk_batches: int = 4) -> tuple[dict[str, np.ndarray], EncodeStats]:
    """{content key: token matrix} of the `distinct` items: the cached ones read, the rest encoded in chunks of
    `chunk_batches` batches (by length, as single-vector encoding plans them), each chunk stored as it is done.
    The model is not touched when everything is cached (a deferred model stays unbuilt)."""
    start = time.perf_counter()
    keys = list(distinct)
    tokens = cache.get_tokens(keys) if cache is not None else {}
    stats = EncodeStats(distinct=len(keys), from_cache=len(tokens))

    def chunks_of(missing: list[str], items: list[Any]) -> Iterator[tuple[list[str], list[np.ndarray]]]:
        for chunk in plan_chunks(encoder, items, batch_size, chunk_batches):
            yield [missing[i] for i in chunk], encoder.encode_multi([items[i] for i in chunk], batch_size=batch_size,
                                                                    show_progress_bar=False)

    encode_missing(distinct, tokens, chunks_of, None if cache is None else cache.put_tokens, stats, progress,
                   "encoding tokens")
    stats.seconds = time.perf_counter() - start
    return tokens, stats


def score_task_multi(task: EvalTask, queries: dict[str, np.ndarray], documents: dict[str, np.ndarray],
                     examples_per_task: int = 3) -> TaskResult:
    """One task's scores from query token matrices and (pooled) document token matrices, keyed by content key."""
    query_tokens = [queries[q.content_key()] for q in task.queries]
    pool = [documents[c.content_key()] for c in task.candidates]
    shown = min(examples_per_task, len(task.queries))
    if task.is_local:
        width = max((len(c) for c in task.candidate_lists), default=0)
        scores = np.full((len(query_tokens), width), -np.inf)  # padding never ranks above a candidate
        for q, candidates in enumerate(task.candidate_lists):
            if len(candidates):
                scores[q, :len(candidates)] = maxsim_matrix([query_tokens[q]], [pool[c] for c in candidates])[0]
        tops = [[task.candidate_lists[q][j] for j in row if j < len(task.candidate_lists[q])]
                for q, row in enumerate(rank_candidates(scores[:shown], 5))]
        golds = [[task.candidate_lists[q][j] for j in task.qrels[q]] for q in range(shown)]
    else:
        scores = maxsim_matrix(query_tokens, pool)
        tops = [[int(c) for c in row] for row in rank_candidates(scores[:shown], 5)]
        golds = [sorted(task.qrels[q]) for q in range(shown)]
    percent = {name: 100.0 * value for name, value in ranking_metrics(scores, task.qrels, metric_ks(task)).items()}
    if any(name in RANK_METRICS for name in task.extra_metrics):
        percent.update(rank_summary(first_relevant_ranks(scores, task.qrels)))
    if task.metric not in percent:
        raise ValueError(f"task {task.name}: metric {task.metric!r} is not one of {sorted(percent)}")
    examples = [{"query": q, "top": tops[q], "gold": golds[q]} for q in range(shown)]
    return TaskResult(task.name, task.metric, percent[task.metric], percent, task.meta_task, task.modality_group,
                      task.in_distribution, None if task.chance is None else _as_percent(task.chance),
                      len(task.queries), examples)
