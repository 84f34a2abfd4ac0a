"""Reading JSON Lines files with errors that name the file and line: the one JSONL reader (the data readers, the
corpus ids, the embedding manifest and search metadata all read through `iter_json_lines`)."""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterator

from .errors import InputError

OnBadLine = Callable[[InputError, int], None]


def iter_json_lines(path: str | os.PathLike, allow_cut_last_line: bool = False, *, objects: bool = False,
                    on_bad_line: OnBadLine | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line, streamed.

    `allow_cut_last_line` skips a final line with no newline that does not parse: what a writer killed in the
    middle of an append leaves behind (the rows before it are intact). `objects` requires each value to be a
    JSON object. A bad line raises `InputError` naming the file and line, or, with `on_bad_line`, is handed to
    it (the error and the line number) and skipped.
    """
    with open(path, encoding="utf-8") as handle:
        previous: tuple[int, str] | None = None
        for number, line in enumerate(handle, 1):
            if previous is not None:
                yield from _parsed(path, *previous, objects, on_bad_line)
            previous = (number, line)
        if previous is not None:
            number, line = previous
            if allow_cut_last_line and not line.endswith("\n") and _unparsable(line):
                return
            yield from _parsed(path, number, line, objects, on_bad_line)


def _unparsable(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return True
    return False


def _parsed(path: str | os.PathLike, number: int, line: str, objects: bool,
            on_bad_line: OnBadLine | None) -> Iterator[tuple[int, Any]]:
    if not line.strip():
        return
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        error = InputError(f"invalid JSON ({exc.msg} at column {exc.colno})", path=path, row=number,
                           fix="fix or drop the line")
    else:
        if not objects or isinstance(value, dict):
            yield number, value
            return
        error = InputError(f"expected a JSON object, got {type(value).__name__}", path=path, row=number)
    if on_bad_line is None:
        raise error
    on_bad_line(error, number)
