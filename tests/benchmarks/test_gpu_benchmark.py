"""benchmarks/gpu/run.sh works before a GPU arrives: its --smoke mode runs every section at tiny size on CPU."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "benchmarks" / "gpu" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_every_section(tmp_path):
    out = tmp_path / "gpu-smoke.md"
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu" / "run.sh"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    sections = report["sections"]
    assert set(sections) == set(load_bench().SECTIONS)
    for name, entry in sections.items():
        assert entry["status"] == "ok" or entry["status"].startswith("skipped"), (name, entry)
    assert sections["encode flash_attention_2"]["status"].startswith("skipped")  # no CUDA here: said, not failed
    for name in ("train vlm2vec", "train unite"):
        for stage in sections[name]["result"]["stages"]:
            assert stage["timed_steps"] >= 1 and stage["pairs_per_s"] > 0 and stage["tokens_per_step"] > 0
    assert [s["stage"] for s in sections["train unite"]["result"]["stages"]] == ["retrieval_adaptation", "instruction_tuning"]
    assert sections["eval"]["result"]["items_encoded"]["uniembed_warm"] == 0
    assert sections["eval"]["result"]["max_score_difference"] == 0
    text = out.read_text()
    assert "## Training" in text and "## Encode throughput" in text and "## Evaluation" in text


def test_flops_formula():
    bench = load_bench()
    full = {"language_model": 100, "vision": 10, "language_model_trainable": 100, "vision_trainable": 10}
    useful, hardware = bench.step_flops(full, tokens=7, patches=3, grad_cache=True, checkpointing=True)
    assert useful == 6 * 100 * 7 + 6 * 10 * 3  # full fine-tuning: the usual 6 N T
    assert hardware == useful + 2 * (2 * 100 * 7 + 2 * 10 * 3)  # + GradCache's forward + the recomputation
    lora = {"language_model": 100, "vision": 10, "language_model_trainable": 1, "vision_trainable": 0}
    useful, _ = bench.step_flops(lora, tokens=7, patches=3, grad_cache=False, checkpointing=False)
    assert useful == 4 * 100 * 7 + 2 * 1 * 7 + 2 * 10 * 3  # frozen ViT: forward only


def test_a_failed_section_is_reported_and_the_rest_still_written(tmp_path, monkeypatch):
    bench = load_bench()

    def broken(*_, **__):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setitem(bench.SECTIONS, "encode sdpa", (broken, {}))
    entry = bench.run_section_here("encode sdpa", bench.SMOKE, tmp_path, cap=10)
    assert entry["status"].startswith("failed (RuntimeError: CUDA out of memory")
    report = {"date": "d", "scale": {"name": "gpu", "model": "2b"}, "command": "c",
              "sections": {"environment": {"status": "ok", "result": {"gpu": "NVIDIA H200"}}, "encode sdpa": entry}}
    bench.write_report(report, tmp_path / "r.md", None)
    text = (tmp_path / "r.md").read_text()
    assert "989.4 TFLOP/s dense bf16 (H200)" in text and "CUDA out of memory" in text


@pytest.mark.parametrize("given,expected", [(None, None), (500.0, 500.0)])
def test_unknown_gpu_peak(given, expected):
    assert load_bench().peak_tflops({"gpu": "Some GPU"}, given)[0] == expected
