"""`uniembed eval --processes N`: the launcher of `uniembed.launch` starts the ranks (2 gloo ranks on CPU here).

Scores, metrics and cached vectors equal one process's; the launching process imports no torch; a failing rank
makes the command fail with the rank named; under torchrun the option is refused."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from uniembed.cli.main import main

SUBSET = "SynParaphrase,SynDocs,SynI2T"


def eval_args(data: Path, out: Path, datasets: str = SUBSET) -> list[str]:
    return ["eval", "--model", "tiny", "--device", "cpu", "--batch-size", "4", "--suite", "synthetic",
            "--data", str(data), "--out", str(out), "--datasets", datasets]


def cache_rows(cache_dir: Path) -> dict[str, bytes]:
    [path] = cache_dir.glob("*.sqlite")
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, vector FROM embeddings"))


@pytest.mark.slow
@pytest.mark.distributed  # 4 runs of a tiny eval, 2 of them with 2 ranks: ~40 s on 2 cores
def test_two_processes_score_like_one_and_the_launcher_imports_no_torch(tmp_path):
    from uniembed.data.synth.generate import generate

    data = tmp_path / "synth"
    generate(data, size="tiny", seed=0, progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "uniembed.cli.main", *eval_args(data, tmp_path / "one")],
                         capture_output=True, text=True, timeout=240, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    # 1. cold, 2. warm (every vector cached), 3. one more data set (its items not cached): ranks again
    cache = ["--cache", str(tmp_path / "cache")]
    two = [[*eval_args(data, tmp_path / f"two-{run}", datasets), *cache, "--processes", "2"]
           for run, datasets in enumerate([SUBSET, SUBSET, SUBSET + ",SynT2I"], 1)]
    launcher = ("import sys\nfrom uniembed.cli.main import main\n"
                f"for argv in {two!r}:\n"
                "    code = main(argv)\n"
                "    print('exit', code, 'heavy modules in the launcher:', sorted(m for m in ('torch', 'transformers', "
                "'uniembed.models.embedder') if m in sys.modules), flush=True)\n")
    run = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("exit 0 heavy modules in the launcher: []") == 3, run.stdout + run.stderr[-3000:]
    assert run.stdout.count('"json":') == 3  # the ranks' output reaches ours; rank 0 alone reports
    assert run.stderr.count("not every vector is cached: starting 2 ranks") == 2  # runs 1 and 3

    one_results = json.loads((tmp_path / "one" / "results.json").read_text())
    cold, warm, more = (json.loads((tmp_path / f"two-{run}" / "results.json").read_text()) for run in (1, 2, 3))
    for results in (cold, warm):
        assert results["scores"] == one_results["scores"] and results["metrics"] == one_results["metrics"]
    assert (cold["encoding"]["ranks"], cold["encoding"]["encoded"]) == (2, one_results["encoding"]["distinct"])
    # run 2 was scored by the launcher itself: every vector cached, no rank started
    assert (warm["encoding"]["ranks"], warm["encoding"]["encoded"]) == (1, 0)
    assert more["encoding"]["ranks"] == 2 and 0 < more["encoding"]["encoded"] < more["encoding"]["distinct"]
    assert {k: v for k, v in more["scores"].items() if k != "SynT2I"} == one_results["scores"]
    one_rows, two_rows = cache_rows(tmp_path / "one" / "cache"), cache_rows(tmp_path / "cache")
    assert {key: two_rows[key] for key in one_rows} == one_rows  # bit for bit


def test_a_failing_rank_fails_the_command_and_is_named(tmp_path, capsys):
    # no such data folder: every rank fails reading the tasks; the first to fail is named, the others stopped
    code = main([*eval_args(tmp_path / "missing", tmp_path / "out"), "--processes", "2"])
    assert code == 1
    error = capsys.readouterr().err
    assert "uniembed eval: error: rank " in error and "the other ranks were stopped" in error
    assert str(tmp_path / "missing") in error.split("last stderr lines:")[1]  # the rank's own error, quoted


def test_processes_under_torchrun_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main([*eval_args(tmp_path, tmp_path / "out"), "--processes", "2"]) == 2
    assert "already rank 1 of 2" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["eval", "--processes", "2", "--out", "x"], ["eval", "--out", "x"]),
    (["-v", "eval", "--processes=3", "--model", "tiny"], ["-v", "eval", "--model", "tiny"]),
])
def test_the_ranks_get_the_command_line_less_processes(argv, expected):
    from uniembed.cli.common import without_option

    assert without_option(argv, "--processes") == expected
