"""The `fashioniq` suite: FashionIQ composed image retrieval, R@10/50 per category and their mean
(layout: `data/readers/fashioniq.py`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ....data.examples import EvalTask
from ....data.readers.fashioniq import FASHIONIQ, read_fashioniq
from ....errors import InputError
from ...aggregate import mean
from ...runner import TaskResult
from ..base import Suite, SuiteOptions, register, select
from .common import checker, find_folder, with_media, with_prefix

_read = with_media(read_fashioniq)


def load_fashioniq(data: Path, options: SuiteOptions) -> list[EvalTask]:
    names = [r.name for r in FASHIONIQ.values()]
    present = [r.name for r in FASHIONIQ.values() if find_folder(r, data, options)]
    wanted = select(names, with_prefix(options.datasets, "FashionIQ-"), "fashioniq")
    tasks = []
    for release in FASHIONIQ.values():
        if release.name not in wanted or (options.datasets is None and release.name not in present):
            continue
        folder = find_folder(release, data, options)
        if folder is None:
            raise InputError(f"no {release.files[0]}", path=data, fix="point --data at the FashionIQ release")
        tasks += _read(release, folder, options)
    return tasks


def summarize_fashioniq(results: Sequence[TaskResult]) -> dict[str, float]:
    """R@10 and R@50 averaged over the categories, and their mean (the number FashionIQ papers report)."""
    r10 = mean([r.metrics["hit@10"] for r in results])
    r50 = mean([r.metrics["hit@50"] for r in results])
    return {"R@10 (mean of categories)": r10, "R@50 (mean of categories)": r50,
            "average of R@10 and R@50": (r10 + r50) / 2}


register(Suite("fashioniq", "FashionIQ composed image retrieval (R@10/50 per category)", load_fashioniq,
               layout="DIR/captions/cap.<category>.val.json, DIR/image_splits/split.<category>.val.json, "
                      "DIR/images/", summarize=summarize_fashioniq,
               overall=lambda results: summarize_fashioniq(results)["average of R@10 and R@50"],
               check=checker(list(FASHIONIQ.values()), _read, lambda o: with_prefix(o.datasets, "FashionIQ-"))))
