"""Reading JSON Lines files with errors that name the file and line."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from .errors import InputError


def iter_json_lines(path: str | os.PathLike, allow_cut_last_line: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line.

    `allow_cut_last_line` skips a final line with no newline that does not parse: what a writer killed in the
    middle of an append leaves behind (the rows before it are intact).
    """
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            if allow_cut_last_line and number == len(lines) and not line.endswith("\n"):
                return
            raise InputError(f"invalid JSON ({exc.msg})", path=path, row=number) from exc
