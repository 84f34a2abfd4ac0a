"""Local copies of hub data set repositories, as `huggingface-cli download REPO --repo-type dataset
--local-dir DIR` leaves them: which data files of DIR make up one subset and split, and their columns.

A repository stores a table as parquet shards (`<subset>/<split>-00000-of-00001.parquet`,
`data/<split>-*.parquet`), JSON lines or JSON files. `data_files` picks the files of one subset and
split the way `datasets.load_dataset(REPO, subset, split=split)` does for those layouts; `read_table_rows`
reads them (parquet, JSONL, or a JSON array). Nothing is converted or written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from ...errors import InputError
from ...extras import import_optional
from .common import RowGuard, read_rows

DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".tsv")  # .tsv: BEIR qrels
_SKIP_DIRS = {".cache", ".git", ".huggingface"}


def all_data_files(folder: Path) -> list[Path]:
    """Every data file under a repository folder (hidden and cache folders skipped), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if f.endswith(DATA_SUFFIXES) and not f.startswith(".")]
    return sorted(found)


def _is_split(path: Path, folder: Path, split: str) -> bool:
    parts = path.relative_to(folder).parts
    stem = path.name.split(".", 1)[0]
    return stem == split or stem.startswith(f"{split}-") or stem.startswith(f"{split}_") or split in parts[:-1]


def _in_subset(path: Path, folder: Path, subset: str) -> bool:
    parts = path.relative_to(folder).parts[:-1]
    return subset in parts or any(p.startswith(f"{subset}-") for p in parts)


def data_files(folder: str | os.PathLike, subset: str | None, split: str | None) -> list[Path]:
    """The data files of `subset` / `split` in a local repository copy; an error lists what was there."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise InputError("repository folder not found", path=folder,
                         fix="download it (see `uniembed eval --check`) or map it with --data-map")
    files = all_data_files(folder)
    if not files:
        raise InputError(f"no {'/'.join(DATA_SUFFIXES)} file in the repository folder", path=folder,
                         fix="download the repository's data files (huggingface-cli download ... --repo-type dataset)")
    chosen = files
    if subset:
        chosen = [f for f in chosen if _in_subset(f, folder, subset)]
    if split:
        with_split = [f for f in chosen if _is_split(f, folder, split)]
        # a repository with a single unnamed table (e.g. `data.jsonl`) has no split in its names
        if with_split or any(_names_a_split(f, folder) for f in chosen):
            chosen = with_split
    if not chosen:
        shown = ", ".join(str(f.relative_to(folder)) for f in files[:8]) + (" ..." if len(files) > 8 else "")
        raise InputError(f"no data file for subset {subset!r}, split {split!r}; found {shown}", path=folder,
                         fix="download the whole repository (its subset folder and split files)")
    return chosen


_KNOWN_SPLITS = ("train", "test", "val", "validation", "dev")


def _names_a_split(path: Path, folder: Path) -> bool:
    return any(_is_split(path, folder, s) for s in _KNOWN_SPLITS)


def file_columns(path: Path) -> list[str]:
    """Column names of a data file without reading its rows (first record for JSON)."""
    if path.suffix == ".parquet":
        pq = import_optional("pyarrow.parquet", "reading parquet data")
        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise InputError(f"cannot read parquet ({exc.__class__.__name__})", path=path) from exc
    for _, row in read_table_rows(path, (), RowGuard(path, True, None)):
        return list(row)
    return []


def read_table_rows(path: Path, required: Sequence[str], guard: RowGuard) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) of a parquet, JSONL or JSON-array file; required columns checked."""
    if path.suffix == ".json":
        with open(path, encoding="utf-8") as handle:
            head = handle.read(1024).lstrip()
        if head.startswith("["):
            yield from _json_array_rows(path, required, guard)
            return
    yield from read_rows(path, required, guard)  # parquet, or JSON lines


def _json_array_rows(path: Path, required: Sequence[str], guard: RowGuard) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg})", path=path) from exc
    for number, row in enumerate(rows):
        missing = [c for c in required if not isinstance(row, dict) or c not in row]
        if missing:
            guard.report.rows_read += 1
            guard.bad(InputError(f"missing field(s) {missing}"), number)
            continue
        yield number, row
