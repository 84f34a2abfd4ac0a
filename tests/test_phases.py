"""The phase clock behind the demo's timing table (uniembed.phases) and the demo's thread option."""
from __future__ import annotations

import time

import pytest
import torch

from uniembed.demo import run_demo
from uniembed.errors import ConfigError
from uniembed.phases import PhaseClock, cpu_seconds


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_phases_record_wall_cpu_and_parts_in_order():
    clock = PhaseClock("note")
    with clock.phase("first"):
        _spin(0.02)
    with clock.phase("second") as second:
        mark = second.mark_by("stage")
        for stage in ("a", "a", "b"):
            _spin(0.01)
            mark({"stage": stage})
        _spin(0.01)
    rows = clock.rows()
    assert [row["phase"] for row in rows] == ["first", "second", "second: a", "second: b", "total"]
    by_name = {row["phase"]: row for row in rows}
    assert by_name["first"]["cpu_s"] >= 0.0 and by_name["first"]["wall_s"] >= 0.0
    # the parts tile their phase: a ends at its last mark, b runs from there to the phase's end
    parts = clock._rows[2:4]
    assert parts[0].wall_s + parts[1].wall_s == pytest.approx(clock._rows[1].wall_s)
    assert min(part.cpu_s for part in parts) >= 0.015  # each spun 0.02 CPU-s: a twice, b before and after its mark
    assert clock.wall("first") == by_name["first"]["wall_s"] and clock.wall("missing") is None
    table = clock.markdown()
    assert table.startswith("phase times (note)")
    assert "| second: b |" in table and table.count("\n| ") == 6  # header + 5 rows


def test_a_phase_that_raises_is_still_recorded():
    clock = PhaseClock()
    with pytest.raises(RuntimeError), clock.phase("broken"):
        raise RuntimeError("boom")
    assert [row["phase"] for row in clock.rows()] == ["broken", "total"]


def test_cpu_seconds_grows_with_work():
    before = cpu_seconds()
    _spin(0.02)
    assert cpu_seconds() - before >= 0.015


def test_demo_rejects_negative_threads_and_leaves_torch_threads_alone(tmp_path):
    threads = torch.get_num_threads()
    with pytest.raises(ConfigError, match="threads must be 0"):
        run_demo(tmp_path / "demo", threads=-1)
    assert torch.get_num_threads() == threads and not (tmp_path / "demo").exists()


def test_demo_runs_on_its_threads_and_restores_torch_threads(tmp_path, monkeypatch):
    import uniembed.demo as demo

    threads, seen = torch.get_num_threads(), []

    def fail(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop here")

    monkeypatch.setattr(demo, "_run_demo", fail)
    with pytest.raises(RuntimeError, match="stop here"):
        run_demo(tmp_path / "demo", threads=threads + 1)
    with pytest.raises(RuntimeError, match="stop here"):
        run_demo(tmp_path / "demo", threads=0)  # torch's default: left as it is
    assert seen == [threads + 1, threads] and torch.get_num_threads() == threads
