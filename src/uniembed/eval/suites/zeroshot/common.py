"""Where a zero-shot release is under `--data` (the data map, the folder names, ROOT itself), where its media are
(`--image-root` / `--video-root`), `--check` rows, and the `--datasets` name forms the suites accept."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from ....data.examples import EvalTask
from ....data.readers.release import Release, file_path
from ....errors import InputError
from ..base import Suite, SuiteOptions, register, select
from ..layout import Check

LoadOne = Callable[[Release, Path, SuiteOptions], list[EvalTask]]


def _path(value) -> Path | None:
    return Path(os.path.expanduser(str(value))) if value else None


def folder_candidates(release: Release, data: Path, options: SuiteOptions) -> list[Path]:
    """The data map's folder for the data set, then ROOT/<folder> for each name, then ROOT itself."""
    data_map = (options.extra or {}).get("data_map") or {}
    mapped = [Path(data_map[release.name])] if release.name in data_map else []
    return mapped + [data / name for name in release.folders] + [data]


def find_folder(release: Release, data: Path, options: SuiteOptions) -> Path | None:
    """The first candidate folder holding the release's first file."""
    return next((p for p in folder_candidates(release, data, options)
                 if any((p / sub / release.files[0]).is_file() for sub in release.subdirs)), None)


def media_candidates(release: Release, folder: Path, options: SuiteOptions) -> list[Path]:
    """The `--image-root` / `--video-root` flag's folder, else the release's media folders under `folder`."""
    flag = _path((options.extra or {}).get(f"{release.kind}_root"))
    return [flag] if flag is not None else [folder / m for m in release.media]


def media_folder(release: Release, folder: Path, options: SuiteOptions) -> Path:
    """The first existing media candidate, or an `InputError` listing those tried and the flag that sets it."""
    tried = media_candidates(release, folder, options)
    found = next((p for p in tried if p.is_dir()), None)
    if found is None:
        raise InputError(f"{release.name}: {release.kind} folder not found; tried "
                         + ", ".join(f"'{p}'" for p in tried),
                         fix=f"unpack the {release.kind}s there or pass --{release.kind}-root")
    return found


def with_media(read: Callable[[Release, Path, Path], list[EvalTask]]) -> LoadOne:
    """A reader of (release, folder, media folder) as a loader of (release, folder, options)."""
    def load_one(release: Release, folder: Path, options: SuiteOptions) -> list[EvalTask]:
        return read(release, folder, media_folder(release, folder, options))
    return load_one


def check_releases(releases: Sequence[Release], data: Path, options: SuiteOptions, load_one: LoadOne) -> list[Check]:
    """`--check` rows: per data set its files, keys and media folder, and what loading it reports."""
    checks = []
    for release in releases:
        folder = find_folder(release, data, options)
        check = Check(release.name, release.source, folder, folder_candidates(release, data, options),
                      files=", ".join(release.files), columns=release.keys)
        if folder is not None:
            for index in range(1, len(release.files)):
                if not file_path(release, folder, index).exists():
                    check.problems.append(f"{file_path(release, folder, index)} not found")
            tried = media_candidates(release, folder, options)
            found = next((p for p in tried if p.is_dir()), None)
            check.media.append((f"{release.kind}s", found or tried[0], found is not None))
            if not check.problems and found is not None:
                try:
                    load_one(release, folder, options)
                except InputError as exc:
                    check.problems.append(str(exc))
        checks.append(check)
    return checks


def load_paired(releases: dict[str, Release], load_one: LoadOne, suite: str) -> Callable:
    """A suite loader reading every present release (or the `--datasets` ones) with `load_one`."""
    def load(data: Path, options: SuiteOptions) -> list[EvalTask]:
        present = [name for name, r in releases.items() if find_folder(r, data, options)]
        tasks = []
        for name in select(present, base_names(options.datasets), suite):
            tasks += load_one(releases[name], find_folder(releases[name], data, options), options)
        return tasks
    return load


def with_prefix(names: list[str] | None, prefix: str) -> list[str] | None:
    """Accept "dress" or "FashionIQ-dress" in --datasets."""
    return None if names is None else [n if n.startswith(prefix) else prefix + n for n in names]


def base_names(names: list[str] | None) -> list[str] | None:
    """Accept "MSR-VTT" or "MSR-VTT t2v" in --datasets."""
    return None if names is None else sorted({n.rsplit(" ", 1)[0] if " " in n else n for n in names})


def checker(releases: Sequence[Release], load_one: LoadOne, names: Callable = lambda o: None) -> Callable:
    """A suite's `--check`: the releases `names(options)` picks (all when None)."""
    def check(data: Path, options: SuiteOptions) -> list[Check]:
        wanted = names(options)
        chosen = [r for r in releases if wanted is None or r.name in wanted]
        return check_releases(chosen, data, options, load_one)
    return check


def register_releases(name: str, description: str, releases: dict[str, Release],
                      read: Callable[[Release, Path, Path], list[EvalTask]], layout: str,
                      names: Callable[[SuiteOptions], list[str] | None] = lambda o: base_names(o.datasets),
                      **suite: Any) -> Suite:
    """Register a suite that reads every present release (or the `--datasets` ones) with `read`, each given its
    media folder; `names` picks the releases `--check` looks at."""
    load_one = with_media(read)
    return register(Suite(name, description, load_paired(releases, load_one, name), layout=layout,
                          check=checker(list(releases.values()), load_one, names), **suite))
