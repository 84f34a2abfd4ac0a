"""Pieces every reader shares: bad-row handling, table and JSONL loading, media paths, instruction splitting.

Row numbers in errors count from 1 everywhere: "row 3" is the third data row of a parquet table, and line 3
of a text file (JSONL, TSV), so a user can jump straight to the culprit (`df.iloc[2]`, `sed -n 3p`).
"""
from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from stat import S_ISDIR
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from ...errors import InputError, location
from ...extras import import_optional
from ...jsonl import iter_json_lines
from ...inputs import Item
from ...media import IMAGE_EXTENSIONS

logger = logging.getLogger("uniembed.data")

T = TypeVar("T")

MEDIA_PLACEHOLDER = re.compile(r"<\|(?:image|video)_\d+\|>")

# Verbs that open an instruction in MMEB, M-BEIR and the visual-document suites ("Represent the given image
# for classification", "Find me an everyday image that matches the given caption: ...").
_INSTRUCTION_VERBS = (
    "represent", "find", "retrieve", "select", "identify", "given", "match", "classify", "answer", "use",
    "locate", "search", "provide", "understand", "recognize", "recognise", "determine", "describe", "summarize", "summarise",
)


@dataclass
class BadRow:
    path: str
    row: int | None
    problem: str

    def __str__(self) -> str:
        return f"{location(path=self.path, row=self.row)}: {self.problem}"


@dataclass
class ReadReport:
    """What a read kept and what it skipped (filled by readers when `skip_bad_rows=True`).

    One report may be shared by several reads (a mixture passes one per source).
    """

    rows_read: int = 0
    rows_kept: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.bad_rows)

    def summary(self, limit: int = 5) -> str:
        text = f"{self.rows_kept} of {self.rows_read} rows kept, {self.skipped} skipped"
        if self.bad_rows:
            shown = "; ".join(str(bad) for bad in self.bad_rows[:limit])
            more = f"; ... {self.skipped - limit} more" if self.skipped > limit else ""
            text += f" ({shown}{more})"
        return text


class RowGuard:
    """Turns an `InputError` raised while building one row into either a failure or a counted skip.

    Errors from helpers carry no location; the guard names the file and row. When a helper's error names
    another file (a missing image), that file moves into the message so the table and row stay the location.
    """

    def __init__(self, path: str | os.PathLike, skip_bad_rows: bool, report: ReadReport | None) -> None:
        self.path = str(path)
        self.skip_bad_rows = skip_bad_rows
        self.report = report if report is not None else ReadReport()
        self._skipped_before = self.report.skipped

    def locate(self, exc: InputError, row: int | None) -> InputError:
        problem = exc.problem
        if exc.path is not None and exc.path != self.path:
            problem = f"{problem} ('{exc.path}')"
        return InputError(problem, path=self.path, row=exc.row if exc.row is not None else row, fix=exc.fix)

    def bad(self, exc: InputError, row: int | None) -> None:
        """Raise the located error, or record it when skipping bad rows."""
        located = self.locate(exc, row)
        if not self.skip_bad_rows:
            raise located from exc
        self.report.bad_rows.append(BadRow(self.path, located.row, located.problem))

    def build(self, row: int | None, make: Callable[[], T]) -> T | None:
        """`make()` for one row; None (and a counted skip) when it fails and bad rows are skipped."""
        self.report.rows_read += 1
        try:
            value = make()
        except InputError as exc:
            self.bad(exc, row)
            return None
        self.report.rows_kept += 1
        return value

    def finish(self) -> None:
        skipped = self.report.skipped - self._skipped_before
        if skipped:
            logger.warning("%s: skipped %d bad row(s); first: %s", self.path, skipped,
                           self.report.bad_rows[self._skipped_before])


# ----------------------------------------------------------------------------------------------- files


def require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found", path=path, fix="check the path; the data must be downloaded locally")
    return path


def table_files(path: str | os.PathLike) -> list[Path]:
    """Files making up a table: the file itself, `<path>.parquet|.jsonl|.tsv`, or the data files in a folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        for suffix in (".parquet", ".jsonl", ".tsv"):
            candidate = path.with_name(path.name + suffix)
            if candidate.is_file():
                return [candidate]
    require_file(path, "table")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".parquet", ".jsonl", ".tsv"))
    if not files:
        raise InputError("folder holds no .parquet, .jsonl or .tsv file", path=path)
    return files


def read_parquet(path: Path, columns: Sequence[str] | None = None, purpose: str = "reading parquet data") -> Any:
    """One parquet file as a pyarrow Table (`ParquetFile.read`: the same table as `pq.read_table` of one file,
    without importing pyarrow.dataset and pandas, ~0.2 CPU s of every evaluation's start-up)."""
    pq = import_optional("pyarrow.parquet", purpose)
    return pq.ParquetFile(path).read(columns=list(columns) if columns is not None else None)


def read_parquet_rows(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """All rows of a parquet file as dicts, after checking the required columns are there."""
    import_optional("pyarrow.parquet", "reading parquet data")  # a missing extra says so (not "cannot read")
    try:
        table = read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"cannot read parquet ({exc.__class__.__name__}: {exc})", path=path,
                         fix="re-download the file") from exc
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise InputError(f"missing column(s) {missing}; found {table.column_names}", path=path,
                         fix="point the reader at a file in the documented layout")
    return table.to_pylist()


def iter_jsonl(path: Path, guard: RowGuard) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-empty line (`jsonl.iter_json_lines`); a bad line goes through the guard."""
    def bad(error: InputError, number: int) -> None:
        guard.report.rows_read += 1
        guard.bad(error, number)

    yield from iter_json_lines(path, objects=True, on_bad_line=bad)


def read_rows(path: Path, required: Sequence[str], guard: RowGuard) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a parquet or JSONL table with the required fields (a missing parquet column fails the file;
    a JSONL line missing a field fails that line)."""
    if path.suffix == ".parquet":
        yield from enumerate(read_parquet_rows(path, required), start=1)  # 1-based, as text files' lines
        return
    for number, row in iter_jsonl(path, guard):
        missing = [name for name in required if name not in row]
        if missing:
            guard.report.rows_read += 1
            guard.bad(InputError(f"missing field(s) {missing}"), number)
            continue
        yield number, row


# ----------------------------------------------------------------------------------------------- media


def resolve_media(value: Any, root: str | os.PathLike | None, what: str = "image", folder: bool = False) -> Any:
    """A media reference from a row, checked cheaply (stat, no decoding) and made absolute.

    Strings are paths relative to `root` (absolute paths and data URIs pass through); HF image structs
    (`{"bytes": ..., "path": ...}`) give their bytes. Empty values give None.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
        if not value:
            return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) if value else None
    if not isinstance(value, (str, os.PathLike)):
        raise InputError(f"{what} must be a path, got {type(value).__name__}")
    text = os.fspath(value).strip()
    if not text:
        return None
    if text.startswith(("data:", "http://", "https://")):
        return text
    # os.path rather than pathlib: this runs once per media cell, hundreds of thousands of times
    path = text if os.path.isabs(text) or root is None else os.path.join(os.fspath(root), text)
    try:
        stat = os.stat(path)
    except OSError:
        raise InputError(f"{what} '{text}' not found at '{path}'",
                         fix="check the image root (paths in the file are relative to it)") from None
    is_dir = S_ISDIR(stat.st_mode)
    if folder:
        if not is_dir:
            raise InputError(f"{what} '{text}' is not a folder of frames ('{path}')")
        if not any(os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS for name in os.listdir(path)):
            raise InputError(f"{what} folder '{path}' holds no frame images")
    elif is_dir:
        raise InputError(f"{what} '{text}' is a folder, expected a file ('{path}')")
    elif stat.st_size == 0:
        raise InputError(f"{what} '{text}' is an empty file ('{path}')")
    return path


def resolve_video(value: Any, root: str | os.PathLike | None) -> Any:
    """A video reference: a frame folder or a video file, relative to `root`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    path = Path(os.fspath(value))
    full = path if path.is_absolute() or root is None else Path(root) / path
    return resolve_media(value, root, "video", folder=full.is_dir())


# ----------------------------------------------------------------------------------------- instructions


def strip_placeholders(text: str | None) -> tuple[str, bool]:
    """Text without `<|image_N|>` / `<|video_N|>` placeholders (the backbone template inserts its own tokens)."""
    if not text:
        return "", False
    found = bool(MEDIA_PLACEHOLDER.search(text))
    return MEDIA_PLACEHOLDER.sub("", text).strip(), found


# Where a reference instruction ends and the item's own content begins, inside one line: MMEB's
# "... with the following question: What is it?" and RefCOCO's "... isolates the object labeled as "dog"".
_CONTENT_MARKERS = (": ", " labeled as ")


def _looks_like_instruction(text: str) -> bool:
    first = text.strip().split(" ", 1)[0].lower().strip(",.:")
    return first in _INSTRUCTION_VERBS


def _split_line(line: str) -> tuple[str, str | None]:
    """(instruction, content) of an instruction line: split after the first content marker, if any."""
    for marker in _CONTENT_MARKERS:
        head, sep, tail = line.partition(marker)
        if sep and tail.strip() and head.strip():
            return head + sep.rstrip(), tail.strip()
    return line, None


@lru_cache(maxsize=1 << 16)  # MMEB repeats the same few instruction texts on every row
def split_instruction(text: str | None, split: bool = True) -> tuple[str | None, str | None]:
    """(instruction, content) from MMEB-style text, placeholders removed, decided by the text's structure.

    MMEB puts an item's media placeholder first and the task instruction on the line after it:
    "<|image_1|>\nRepresent the given image for classification\n" -> ("Represent ... classification", None);
    "<|image_1|>\nRepresent the given image with the following question: What is it?" -> (".. question:", "What is it?").
    Text without a placeholder is content unless it reads "<instruction verb> ...: <content>" (MMEB's text-to-image
    queries, "Find me an everyday image that matches the given caption: A dog.") or puts an instruction on a line
    of its own above the content: a one-line label such as "use a knife" or a caption stays content.
    """
    body, had_placeholder = strip_placeholders(text)
    if not body:
        return None, None
    if not split:
        return None, body
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if had_placeholder:
        instruction, content = _split_line(lines[0])
        rest = "\n".join(part for part in [content or "", *lines[1:]] if part)
        return instruction, rest or None
    if len(lines) > 1 and (lines[0].endswith(":") or _looks_like_instruction(lines[0])):
        return lines[0], "\n".join(lines[1:])  # an instruction on its own line, the content below it
    if len(lines) == 1 and _looks_like_instruction(body):
        head, sep, tail = body.partition(": ")
        if sep and tail.strip():
            return head + ":", tail.strip()
    return None, body


def as_text_list(value: Any, what: str) -> list[str]:
    """A list-of-strings cell (arrow list, JSON list, or a single string)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return ["" if v is None else str(v) for v in value]
    if hasattr(value, "tolist"):
        return as_text_list(value.tolist(), what)
    raise InputError(f"{what} must be a list of strings, got {type(value).__name__}")


def text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def mmeb_item(text: Any, image_path: Any, root: str | os.PathLike | None, *, split: bool = True,
              instruction: Any = None, video_path: Any = None) -> Item | None:
    """An Item from MMEB text / image-path (/ video-path) cells; None when all are empty.

    A separate `instruction` (the newer `qry_inst`/`tgt_inst` columns) wins over splitting the text.
    """
    text = text if isinstance(text, str) else None
    if text_or_none(instruction) is not None:
        content, _ = strip_placeholders(text)
        found_instruction, content = text_or_none(strip_placeholders(str(instruction))[0]), (content or None)
    else:
        found_instruction, content = split_instruction(text, split)
    item = Item(text=content, image=resolve_media(image_path, root), video=resolve_video(video_path, root),
                instruction=found_instruction)
    return None if item.modality == 0 else item


_ITEM_FIELDS = ("text", "image", "images", "video", "instruction")


def item_from_value(value: Any, root: str | os.PathLike | None, what: str, *, extra_keys: Sequence[str] = ()) -> Item:
    """An Item from a JSON value: a string is text; a dict has Item fields with media paths relative to `root`."""
    if isinstance(value, str):
        value = {"text": value}
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a string or an object with {list(_ITEM_FIELDS)}, got {type(value).__name__}")
    unknown = set(value) - set(_ITEM_FIELDS) - set(extra_keys)
    if unknown:
        raise InputError(f"{what} has unknown field(s) {sorted(unknown)}", fix=f"use only {list(_ITEM_FIELDS)}")
    images = value.get("images")
    if images is not None and not isinstance(images, list):
        raise InputError(f"{what}.images must be a list of paths")
    item = Item(
        text=text_or_none(value.get("text")),
        image=resolve_media(value.get("image"), root, f"{what} image"),
        images=[resolve_media(v, root, f"{what} image") for v in images] if images else None,
        video=resolve_video(value.get("video"), root),
        instruction=text_or_none(value.get("instruction")),
    )
    if item.modality == 0:
        raise InputError(f"{what} is empty (no text, image or video)")
    return item


def iter_fields(path: Path, delimiter: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) per non-empty line of a TSV / whitespace-separated file."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, [field.strip() for field in line.rstrip("\n").split(delimiter)]
