"""Group means of task scores: by meta-task, in/out of distribution, modality group, and overall.

Group keys read "meta-task/<name>", "distribution/ID" | "distribution/OOD" and "modality/<group>";
a grouping appears only when the tasks carry that information. Overall is the plain mean of task scores
(of the benchmark's own data sets when a run also scored data sets of one's own).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from ..data.readers.catalog import CUSTOM
from .runner import TaskResult


def group_means(results: Sequence[TaskResult]) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for result in results:
        if result.meta_task:
            groups[f"meta-task/{result.meta_task}"].append(result.score)
        if result.in_distribution is not None:
            groups["distribution/" + ("ID" if result.in_distribution else "OOD")].append(result.score)
        if result.modality_group:
            groups[f"modality/{result.modality_group}"].append(result.score)
    order = {"meta-task": 0, "distribution": 1, "modality": 2}
    names = sorted(groups, key=lambda name: (order[name.split("/")[0]], name))
    return {name: mean(groups[name]) for name in names}


def overall_mean(results: Sequence[TaskResult]) -> float:
    return mean([result.score for result in results])


def benchmark_results(results: Sequence[TaskResult]) -> list[TaskResult]:
    """The results of the benchmark's own data sets: data sets of one's own (meta-task "custom") are left out
    of a suite's overall and of the published comparison, unless the run scored nothing else."""
    own = [result for result in results if result.meta_task != CUSTOM]
    return own or list(results)


def benchmark_overall(results: Sequence[TaskResult]) -> float:
    """The plain mean of the benchmark data sets' scores (see `benchmark_results`)."""
    return overall_mean(benchmark_results(results))


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")
