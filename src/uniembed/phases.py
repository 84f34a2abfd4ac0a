"""Wall and CPU time per phase of a long command (the demo's table), with the machine's load beside them.

CPU time is this process's user + system time plus that of its finished children (the synthetic data is drawn
in worker processes), so a phase that waits on a busy machine shows wall well above CPU: compare runs by CPU
time, or by wall time measured side by side at the same load.
"""
from __future__ import annotations

import contextlib
import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@dataclass
class PhaseRow:
    """One timed phase (or a part of one, named `phase: part`)."""

    name: str
    wall_s: float
    cpu_s: float
    load_start: float | None
    load_end: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"phase": self.name, "wall_s": round(self.wall_s, 1), "cpu_s": round(self.cpu_s, 1),
                "load_start": None if self.load_start is None else round(self.load_start, 2),
                "load_end": None if self.load_end is None else round(self.load_end, 2)}


@dataclass
class _Mark:
    wall: float = field(default_factory=time.perf_counter)
    cpu: float = field(default_factory=cpu_seconds)
    load: float | None = field(default_factory=load_average)


class Phase:
    """A running phase; `mark_by(key)` splits it into parts by a key of the records passed to its callback."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = _Mark()
        self.parts: list[tuple[str, _Mark]] = []  # (part name, the part's latest mark)

    def mark_by(self, key: str) -> Callable[[dict[str, Any]], None]:
        """A callback (e.g. the trainer's `on_step`): each record ends its part (`record[key]`) at that moment; a
        new value starts a new part where the previous one last ended."""
        def mark(record: dict[str, Any]) -> None:
            part = str(record[key])
            if self.parts and self.parts[-1][0] == part:
                self.parts[-1] = (part, _Mark())
            else:
                self.parts.append((part, _Mark()))
        return mark

    def rows(self, end: _Mark) -> list[PhaseRow]:
        """The phase's row, then one per part (the last part runs to the phase's end)."""
        rows = [PhaseRow(self.name, end.wall - self.start.wall, end.cpu - self.start.cpu, self.start.load, end.load)]
        begin = self.start
        for index, (part, mark) in enumerate(self.parts):
            stop = end if index == len(self.parts) - 1 else mark
            rows.append(PhaseRow(f"{self.name}: {part}", stop.wall - begin.wall, stop.cpu - begin.cpu, begin.load,
                                 stop.load))
            begin = stop
        return rows


class PhaseClock:
    """Times named phases in order; `markdown()` is the table the demo prints and writes."""

    def __init__(self, note: str = "") -> None:
        self.note = note
        self._rows: list[PhaseRow] = []
        self._start = _Mark()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Time the block as phase `name` (recorded even when the block raises)."""
        running = Phase(name)
        try:
            yield running
        finally:
            self._rows.extend(running.rows(_Mark()))

    def rows(self) -> list[dict[str, Any]]:
        """Every phase and part so far, then the total since the clock started."""
        total = self._total()
        return [row.as_dict() for row in self._rows] + ([total.as_dict()] if total else [])

    def wall(self, name: str) -> float | None:
        """Wall seconds of the finished phase `name` (None if it has not run)."""
        return next((round(row.wall_s, 1) for row in self._rows if row.name == name), None)

    def _total(self) -> PhaseRow | None:
        if not self._rows:
            return None
        end = _Mark()
        return PhaseRow("total", end.wall - self._start.wall, end.cpu - self._start.cpu, self._start.load, end.load)

    def markdown(self) -> str:
        """A markdown table: phase, wall, CPU, CPU/wall and the load average at its start and end."""
        lines = [f"phase times ({self.note})" if self.note else "phase times", "",
                 "| phase | wall s | CPU s | CPU/wall | load start | load end |", "|---|---:|---:|---:|---:|---:|"]
        for row in self.rows():
            ratio = row["cpu_s"] / row["wall_s"] if row["wall_s"] else 0.0
            loads = ["" if row[k] is None else f"{row[k]:.2f}" for k in ("load_start", "load_end")]
            lines.append(f"| {row['phase']} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} | {ratio:.2f} | "
                         f"{loads[0]} | {loads[1]} |")
        return "\n".join(lines)
