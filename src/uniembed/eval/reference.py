"""Published reference figures (docs/methods.md §7), keyed like our results: "overall" or a group key.

Each suite maps to a list of (model, {column: value}); a column is a group key of `aggregate.group_means`,
"overall", or a task name (its main score). Shown beside our numbers in report.md.
"""
from __future__ import annotations

from typing import Sequence

PUBLISHED: dict[str, list[tuple[str, dict[str, float]]]] = {
    "mmeb-v1": [
        ("VLM2Vec Qwen2-VL-7B", {"overall": 65.8, "meta-task/classification": 62.6, "meta-task/vqa": 57.8,
                                 "meta-task/retrieval": 69.9, "meta-task/grounding": 81.7}),
        ("UniME LLaVA-OneVision-7B", {"overall": 70.7, "meta-task/classification": 66.8, "meta-task/vqa": 66.6,
                                      "meta-task/retrieval": 70.5, "meta-task/grounding": 90.9}),
        ("UNITE 7B", {"overall": 70.3, "meta-task/classification": 68.3, "meta-task/vqa": 65.1,
                      "meta-task/retrieval": 71.6, "meta-task/grounding": 84.8}),
        ("RzenEmbed 2B", {"overall": 72.3, "meta-task/classification": 68.5, "meta-task/vqa": 66.3,
                          "meta-task/retrieval": 74.5, "meta-task/grounding": 90.3}),
        ("RzenEmbed 7B", {"overall": 75.9, "meta-task/classification": 70.6, "meta-task/vqa": 71.7,
                          "meta-task/retrieval": 78.5, "meta-task/grounding": 92.1}),
    ],
    "mmeb-v2": [
        ("RzenEmbed 7B", {"modality/image": 75.9, "modality/video": 55.7, "modality/visdoc": 77.1, "overall": 71.6}),
        ("RzenEmbed 2B", {"modality/image": 72.3, "modality/video": 47.3, "modality/visdoc": 74.5, "overall": 67.2}),
        ("VLM2Vec-V2 2B", {"modality/image": 64.9, "modality/video": 34.6, "modality/visdoc": 65.4, "overall": 58.0}),
    ],
    "mbeir": [
        ("U-MARVEL 7B, local pool", {"overall:local": 63.2}),
        ("U-MARVEL 7B + re-ranker, local pool", {"overall:local": 64.8}),
        ("U-MARVEL 7B, global pool", {"overall:global": 60.7}),
        ("U-MARVEL 7B + re-ranker, global pool", {"overall:global": 61.8}),
        ("LamRA, local pool", {"overall:local": 56.6}),
        ("LamRA + re-ranker, local pool", {"overall:local": 63.7}),
    ],
    "text-video": [("U-MARVEL 7B (zero-shot)", {"MSR-VTT t2v": 47.2})],
    "circo": [("U-MARVEL 7B (zero-shot)", {"CIRCO": 36.2})],
    "long-captions": [("U-MARVEL 7B (zero-shot)", {"ShareGPT4V-1K t2i": 96.4, "ShareGPT4V-1K i2t": 97.2})],
}


# How many tasks a complete run of each suite scores: published overalls and group means are only
# comparable with a run over all of them.
SUITE_TASKS = {"mmeb-v1": 36, "mmeb-v2": 78, "mbeir": 16}


def covers_suite(suite: str, task_names: Sequence[str]) -> bool:
    """Whether a run over `task_names` is the whole suite (suites of unknown size: never)."""
    wanted = SUITE_TASKS.get(suite)
    if suite == "mmeb-v2":
        from ..data.readers.catalog import MMEB_V2_SOURCES

        return set(MMEB_V2_SOURCES) <= set(task_names)
    if suite == "mmeb-v1":
        from ..data.readers.catalog import MMEB_V1_TASKS

        return set(MMEB_V1_TASKS) <= set(task_names)
    return wanted is not None and len(set(task_names)) >= wanted


def published_for(suite: str, pool: str = "local",
                  task_names: Sequence[str] | None = None) -> list[tuple[str, dict[str, float]]]:
    """Reference rows for a suite; M-BEIR rows are filtered to the pool evaluated ("overall:<pool>" -> "overall").

    With `task_names` (the tasks a run scored), nothing unless the run covered the whole suite: a one-task
    run is not set beside published overalls."""
    if task_names is not None and suite in SUITE_TASKS and not covers_suite(suite, task_names):
        return []
    rows = []
    for model, values in PUBLISHED.get(suite, []):
        renamed = {}
        for column, value in values.items():
            if ":" in column:
                column, row_pool = column.split(":")
                if row_pool != pool:
                    continue
            if task_names is not None and suite not in SUITE_TASKS and column not in task_names:
                continue  # per-task figures of suites without a fixed size: only the tasks this run scored
            renamed[column] = value
        if renamed:
            rows.append((model, renamed))
    return rows
