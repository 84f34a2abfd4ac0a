"""Errors users see. Every bad input becomes an `InputError` naming the item and the fix."""
from __future__ import annotations

import dataclasses
from os import PathLike
from typing import Iterable


class InputError(ValueError):
    """A bad input: missing or corrupt file, empty item, unsupported type, or over a safety limit.

    The message always says which item (its position in the batch, or file and row) and what to do.
    `row` counts from 1 (see `location`).
    """

    def __init__(
        self,
        problem: str,
        *,
        position: int | None = None,
        path: str | PathLike | None = None,
        row: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.position = position
        self.path = None if path is None else str(path)
        self.row = row
        self.fix = fix
        super().__init__(self._format())

    def _format(self) -> str:
        head = location(self.position, self.path, self.row)
        text = f"{head}: {self.problem}" if head else self.problem
        if self.fix:
            text += f" (fix: {self.fix})"
        return text

    def at(self, position: int | None = None, *, row: int | None = None, path: str | None = None) -> "InputError":
        """Return a copy that also names the batch position, row or file (the first one set wins)."""
        return InputError(
            self.problem,
            position=self.position if self.position is not None else position,
            path=self.path if self.path is not None else path,
            row=self.row if self.row is not None else row,
            fix=self.fix,
        )


def location(position: int | None = None, path: str | PathLike | None = None, row: int | None = None) -> str:
    """Where a bad input is: "item 2, file 'x.parquet', row 3".

    `position` is the 0-based index in a batch (as the caller's list); `row` counts from 1 in every file:
    the third data row of a table, line 3 of a text file.
    """
    where = []
    if position is not None:
        where.append(f"item {position}")
    if path is not None:
        where.append(f"file '{path}'")
    if row is not None:
        where.append(f"row {row}")
    return ", ".join(where)


class ConfigError(ValueError):
    """An invalid option in an embedding config, recipe or command line."""


def reject_unknown_fields(cls: type, names: Iterable[str], what: str, where: str = "") -> None:
    """Raise `ConfigError` listing the known fields of dataclass `cls` when `names` has others.

    Configs keep every option explicit: a misspelt key is an error, never silently dropped.
    """
    known = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}{f' in {where}' if where else ''}; known: {known}")
