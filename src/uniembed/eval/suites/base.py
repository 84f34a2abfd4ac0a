"""The suite registry: a suite turns a local data directory into `EvalTask`s and knows how to summarise them."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ...data.examples import EvalTask
from ...errors import ConfigError, InputError
from ..aggregate import benchmark_overall, group_means
from ..runner import TaskResult


@dataclass
class SuiteOptions:
    """Options a suite may honour: a subset of data sets, the pool (M-BEIR), the instruction seed; `extra`
    holds the data-location options (`image_root`, `video_root`, `data_map`: name -> folder)."""

    datasets: list[str] | None = None
    pool: str = "local"
    seed: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class Suite:
    name: str
    description: str
    load: Callable[[Path, SuiteOptions], list[EvalTask]]
    layout: str = ""
    summarize: Callable[[Sequence[TaskResult]], dict[str, float]] = group_means
    overall: Callable[[Sequence[TaskResult]], float] = benchmark_overall
    pools: tuple[str, ...] = ("local",)
    check: Callable[[Path, SuiteOptions], list] | None = None  # what each data set needs, and whether found

    def check_data(self, data: str | os.PathLike, options: SuiteOptions | None = None) -> list:
        """`layout.Check` rows for `uniembed eval --check` (suites without a check: one row for the root)."""
        from .layout import Check

        options = options or SuiteOptions()
        data = Path(data)
        if self.check is not None:
            return self.check(data, options)
        row = Check(self.name, self.layout or "see docs", data if data.is_dir() else None, [data])
        if data.is_dir():
            try:
                self.load(data, options)
            except (InputError, ConfigError) as exc:
                row.problems.append(str(exc))
        return [row]

    def load_tasks(self, data: str | os.PathLike, options: SuiteOptions | None = None) -> list[EvalTask]:
        options = options or SuiteOptions()
        if options.pool not in self.pools:
            raise ConfigError(f"suite {self.name} supports --pool {'|'.join(self.pools)}, not {options.pool!r}")
        data = Path(data)
        if not data.is_dir():
            raise InputError("data directory does not exist", path=data,
                             fix=f"point --data at the local copy of the {self.name} data ({self.layout or 'see docs'})")
        tasks = self.load(data, options)
        if not tasks:
            raise InputError(f"no {self.name} tasks found", path=data, fix=self.layout or None)
        return tasks


SUITES: dict[str, Suite] = {}


def register(suite: Suite) -> Suite:
    SUITES[suite.name] = suite
    return suite


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; available: {', '.join(sorted(SUITES))}")
    return SUITES[name]


def select(available: Iterable[str], requested: Sequence[str] | None, suite: str) -> list[str]:
    """The requested data sets (all when None), in the suite's order; unknown names are an error."""
    available = list(available)
    if requested is None:
        return available
    unknown = [name for name in requested if name not in available]
    if unknown and not available:
        layout = SUITES[suite].layout if suite in SUITES else ""
        raise ConfigError(f"suite {suite} found no data set under --data, so not {unknown}; it looks for "
                          f"{layout or 'its documented layout'} (`uniembed eval --check` lists what each needs)")
    if unknown:
        raise ConfigError(f"suite {suite} has no data set(s) {unknown}; available: {', '.join(available)}")
    return [name for name in available if name in set(requested)]
