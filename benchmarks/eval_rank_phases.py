"""One rank of `uniembed eval`, timed phase by phase: wall and CPU seconds per phase, written as JSON.

`benchmarks/eval_speed.py --phases` runs this instead of `-m uniembed.cli.main` (under torchrun, or with
`--processes 2`, whose ranks then run this script too, for the x2 rows; the launcher writes `launcher.json`). It wraps a few library functions with timers (nothing in the library changes) and, at exit, writes
`$UNIEMBED_PHASES_DIR/rank<RANK>.json`: for each phase the calls, wall seconds and this process's CPU seconds
(every thread: decode workers included), plus the process's start-up (interpreter + imports) and totals.
CPU time is the figure to compare on a shared machine: wall time there includes waiting for a core.

    python benchmarks/eval_rank_phases.py eval --model tiny --suite synthetic --data DIR --out DIR
"""
from __future__ import annotations

import atexit
import functools
import importlib
import inspect
import json
import os
import sys
import time
from pathlib import Path

import psutil

_PROCESS = psutil.Process()
_STARTED = _PROCESS.create_time()
PHASES: dict[str, dict[str, float]] = {}


def _add(name: str, wall: float, cpu: float) -> None:
    entry = PHASES.setdefault(name, {"calls": 0, "wall": 0.0, "cpu": 0.0})
    entry["calls"] += 1
    entry["wall"] += wall
    entry["cpu"] += cpu


def timed(module_name: str, attribute: str, phase: str) -> None:
    """Replace `module.attribute` by a timer around it (generators: timed over their whole iteration)."""
    module = importlib.import_module(module_name)
    original = getattr(module, attribute)
    if inspect.isgeneratorfunction(original):
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            iterator = original(*args, **kwargs)
            while True:
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    value = next(iterator)
                except StopIteration:
                    _add(phase, time.perf_counter() - wall, time.process_time() - cpu)
                    return
                _add(phase, time.perf_counter() - wall, time.process_time() - cpu)
                yield value
    else:
        wrapper = timed_call(original, phase)
    setattr(module, attribute, wrapper)


def timed_call(original, phase: str):
    """`original` with each call's wall and CPU seconds added to `phase`."""
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            _add(phase, time.perf_counter() - wall, time.process_time() - cpu)
    return wrapper


def write(started_wall: float, started_cpu: float, launcher: bool = False) -> None:
    rank = int(os.environ.get("RANK", 0))
    threads = None
    if "torch" in sys.modules:
        threads = {"intra_op": sys.modules["torch"].get_num_threads(),
                   "inter_op": sys.modules["torch"].get_num_interop_threads()}
    times = _PROCESS.cpu_times()
    payload = {"rank": rank, "launcher": launcher, "world_size": int(os.environ.get("WORLD_SIZE", 1)),
               "start_up": {"wall": started_wall, "cpu": started_cpu},
               "phases": PHASES, "total": {"wall": time.time() - _STARTED, "cpu": times.user + times.system},
               "torch_threads": threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    folder = Path(os.environ.get("UNIEMBED_PHASES_DIR", "."))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("launcher.json" if launcher else f"rank{rank}.json")).write_text(json.dumps(payload, indent=1))


def main() -> int:
    from uniembed.cli import main as cli

    started_wall, started_cpu = time.time() - _STARTED, time.process_time()  # interpreter + the CLI's imports
    launcher = "RANK" not in os.environ and any(a == "--processes" or a.startswith("--processes=") for a in sys.argv)
    if launcher:  # `eval --processes N`: this process only starts the ranks, each of them timed by this script
        from uniembed.cli import common

        common.RANK_ENTRY = [str(Path(__file__).resolve())]
    atexit.register(write, started_wall, started_cpu, launcher)
    for module_name, attribute, phase in [
            ("uniembed.parallel", "join_world", "join_world"),
            ("uniembed.cli.common", "load_model", "build_model"),
            ("uniembed.eval.suites.base", "Suite.load_tasks", "load_tasks"),
            ("uniembed.encoding.exchange", "encode_chunks", "encode_own_share"),
            ("uniembed.encoding.exchange", "wait_for", "wait_for_ranks"),
            ("uniembed.encoding.distinct", "encode_chunks", "encode_local"),
            ("uniembed.eval.runner", "encode_distinct", "encode_distinct_all"),
            ("uniembed.eval.runner", "score_task", "score"),
            ("uniembed.eval.evaluate", "write_reports", "write_reports")]:
        if "." in attribute:  # a method: time it on its class
            owner_name, method = attribute.split(".")
            try:
                owner = getattr(importlib.import_module(module_name), owner_name)
            except (ImportError, AttributeError):
                continue
            setattr(owner, method, timed_call(getattr(owner, method), phase))
        else:
            timed(module_name, attribute, phase)
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
