"""Where a suite's downloaded repositories and media folders are under `--data ROOT`.

One folder per hub repository: `ROOT/<owner>/<name>` (what `huggingface-cli download <owner>/<name>
--repo-type dataset --local-dir ROOT/<owner>/<name>` leaves) or `ROOT/<name>`; a `--data-map` YAML maps a
task name or a repository id to any other folder. Media roots are tried in a documented order and an
error lists every path tried. `Check` rows are what `uniembed eval --check` prints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ...errors import ConfigError, InputError


@dataclass
class Layout:
    root: Path
    data_map: dict[str, Path] = field(default_factory=dict)
    image_root: Path | None = None
    video_root: Path | None = None

    def repo_candidates(self, repo: str, task: str | None = None) -> list[Path]:
        """Folders that may hold `repo`, in the order tried: the map (task, then repository), then
        ROOT/<owner>/<name>, ROOT/<name>."""
        tried = [self.data_map[key] for key in (task, repo) if key and key in self.data_map]
        return tried + [self.root / repo, self.root / repo.rsplit("/", 1)[-1]]

    def find_repo(self, repo: str, task: str | None = None) -> Path | None:
        return next((p for p in self.repo_candidates(repo, task) if p.is_dir()), None)

    def media_candidates(self, repo: str, flag: Path | None, inner: str) -> list[Path]:
        """Where media named relative to `inner` (e.g. `image-tasks`) may be: the flag first, then
        `<repo folder>/<inner>` for each folder the repository may be in, then ROOT/<inner>."""
        if flag is not None:
            return [flag]
        return [p / inner for p in self.repo_candidates(repo)] + [self.root / inner]

    def media_root(self, repo: str, flag: Path | None, inner: str, what: str, option: str) -> Path:
        tried = self.media_candidates(repo, flag, inner)
        found = next((p for p in tried if p.is_dir()), None)
        if found is None:
            raise InputError(f"{what} not found; tried " + ", ".join(f"'{p}'" for p in tried),
                             fix=f"download {repo} (see docs/evaluation.md) or pass {option}")
        return found


def read_data_map(path: str | os.PathLike | None) -> dict[str, Path]:
    """A YAML map from task name or repository id to a local folder (relative paths: to the YAML's folder)."""
    if not path:
        return {}
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise InputError(f"cannot read the data map ({exc.strerror})", path=path) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML ({exc})", path=path) from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"data map {path} must map names to folder paths (`MSR-VTT: /data/msrvtt`)")
    return {str(k): (path.parent / os.path.expanduser(v)).resolve() if not os.path.isabs(os.path.expanduser(v))
            else Path(os.path.expanduser(v)) for k, v in data.items()}


@dataclass
class Check:
    """One data set's expectations and what was found (`uniembed eval --check`)."""

    task: str
    repo: str
    folder: Path | None
    tried: list[Path]
    files: str = ""  # what data files it reads
    columns: tuple[str, ...] = ()
    media: list[tuple[str, Path, bool]] = field(default_factory=list)  # (what, path, found)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.folder is not None and not self.problems and all(found for _, _, found in self.media)

    def lines(self) -> list[str]:
        status = "ok" if self.ok else ("MISSING" if self.folder is None else "PROBLEM")
        out = [f"[{status}] {self.task}  <- {self.repo}"]
        if self.folder is None:
            out.append("    folder: not found; tried " + ", ".join(str(p) for p in self.tried))
        else:
            out.append(f"    folder: {self.folder}")
        if self.files:
            out.append(f"    files: {self.files}")
        if self.columns:
            out.append(f"    columns: {', '.join(self.columns)}")
        for what, path, found in self.media:
            out.append(f"    {what}: {path} ({'found' if found else 'NOT FOUND'})")
        out += [f"    problem: {p}" for p in self.problems]
        return out


def format_checks(checks: Iterable[Check]) -> tuple[str, bool]:
    checks = list(checks)
    lines = [line for check in checks for line in check.lines()]
    good = sum(c.ok for c in checks)
    lines.append(f"{good} of {len(checks)} data sets ready")
    return "\n".join(lines), good == len(checks)
