"""`evaluate`: load a suite's tasks, encode and score them, aggregate, and write the reports."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..data.examples import EvalTask
from ..errors import ConfigError
from ..parallel import World
from ..encoding import EmbeddingCache, EncodeStats, Encoder
from .aggregate import benchmark_results
from .profiles import profile_groups
from .reference import published_for
from .multivector import run_tasks_multi
from .report import add_variant_scores, results_payload, write_reports
from .runner import TaskResult, run_tasks
from .suites import SuiteOptions, get_suite

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    payload: dict
    results: list[TaskResult]
    tasks: list[EvalTask]
    stats: EncodeStats
    paths: dict[str, Path] | None = None


def evaluate(encoder: Encoder, suite: str, data: str | os.PathLike, out: str | os.PathLike | None = None, *,
             datasets: Sequence[str] | None = None, pool: str = "local", batch_size: int = 32,
             cache_dir: str | os.PathLike | None = None, seed: int = 0, examples_per_task: int = 3,
             decode_workers: int = 2, progress: bool = True, tasks: Sequence[EvalTask] | None = None,
             data_options: dict | None = None, model_path: str | None = None,
             world: World | None = None, dimensions: Sequence[int] = (), precisions: Sequence[str] = (),
             rescore: int = 0, multi_vector_pool: int | None = None) -> Evaluation | None:
    """Evaluate `encoder` on `suite` (tasks read from `data`, or given) and write reports to `out` when set.

    `data_options` are the suite's data-location options (`image_root`, `video_root`, `data_map`);
    `model_path` is how the user named the model (results.json keeps it beside the model's hash).
    `dimensions`: Matryoshka widths also scored, from the same vectors cut to their first d coordinates
    (results.json `by_dimension`). `precisions`: storage precisions also scored at every width, `rescore` K
    adds each one re-ranked K x k deep with the float vectors (`by_precision`; see `report.add_variant_scores`).
    Under torchrun (`world` distributed) every rank encodes its share; rank 0 scores, writes the reports and
    returns the evaluation, the other ranks return None.
    `multi_vector_pool` F (a pool factor): score token embeddings by MaxSim instead, documents pooled by F
    (`eval/multivector.py`; results.json gets `multi_vector: {"pool_factor": F}`).
    """
    if multi_vector_pool is not None and precisions:
        raise ConfigError("multi-vector evaluation scores float token embeddings: drop --precision "
                          f"({', '.join(precisions)}), or leave out --multi-vector to score quantised vectors")
    definition = get_suite(suite)
    options = SuiteOptions(datasets=list(datasets) if datasets else None, pool=pool, seed=seed,
                           extra=dict(data_options or {}))
    tasks = list(tasks) if tasks is not None else definition.load_tasks(data, options)
    runs = []
    groups = profile_groups(encoder, tasks)  # the model profile's per-task instructions and layout
    tasks = [task for _, group in groups for task in group]
    for number, (group_encoder, group) in enumerate(groups):
        cache = EmbeddingCache(cache_dir, group_encoder.model_id) if cache_dir is not None else None
        try:
            if multi_vector_pool is not None:  # late interaction: token matrices (their own cache table), one process
                runs.append(run_tasks_multi(group_encoder, group, batch_size=batch_size,
                                            examples_per_task=examples_per_task, progress=progress,
                                            pool_factor=multi_vector_pool, world=world, dimensions=dimensions,
                                            cache=cache))
            else:
                exchange = None if out is None else Path(out) / ".encode-parts"
                if exchange is not None and len(groups) > 1:
                    exchange = exchange / f"group-{number}"  # each layout's items are exchanged apart
                runs.append(run_tasks(group_encoder, group, batch_size=batch_size, cache=cache,
                                      examples_per_task=examples_per_task, decode_workers=decode_workers,
                                      progress=progress, world=world, exchange_dir=exchange, dimensions=dimensions,
                                      precisions=precisions, rescore=rescore))
        finally:
            if cache is not None:
                cache.close()
    if world is not None and not world.is_main:
        return None
    run = runs[0]
    for other in runs[1:]:
        run.tasks.extend(other.tasks)
        run.stats.add(other.stats)
        for dimension, results in other.by_dimension.items():
            run.by_dimension[dimension].extend(results)
        for dimension, entries in other.by_precision.items():
            for name, results in entries.items():
                run.by_precision[dimension][name].extend(results)
    groups = definition.summarize(run.tasks)
    overall = definition.overall(run.tasks)
    run_options = {"pool": pool, "batch_size": batch_size, "seed": seed}
    payload = results_payload(suite, encoder.model_id, run.tasks, groups, overall, run.stats, run_options)
    add_variant_scores(payload, definition, run.by_dimension, run.by_precision)
    payload["model_path"] = model_path if model_path is not None else getattr(encoder, "source", None)
    if multi_vector_pool is not None:
        payload["multi_vector"] = {"pool_factor": multi_vector_pool, "scoring": "maxsim"}
    evaluation = Evaluation(payload, run.tasks, tasks, run.stats)
    if out is not None:
        compared = [result.name for result in benchmark_results(run.tasks)]  # data sets of one's own: left out
        evaluation.paths = write_reports(out, payload, run.tasks, tasks, published_for(suite, pool, compared))
    return evaluation
