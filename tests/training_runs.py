"""Training-run helpers shared by the training tests: a two-stage recipe, torchrun launches of `uniembed train`,
killed-run copies and weight comparisons (test modules never import each other)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file


def recipe_dict(data: Path, steps=(4, 4), save_every=2) -> dict:
    return {
        "name": "test",
        "model": "tiny",
        "trainable": {"mode": "lora", "r": 4, "alpha": 8, "dropout": 0.1},
        "seed": 3,
        "save_every": save_every,
        "stages": [
            {"name": "mixed", "data": str(data / "mixture.yaml"), "loss": {"kind": "contrastive", "symmetric": True},
             "temperature": {"init": 0.05, "learnable": True}, "batch_size": 4, "lr": 2e-3, "max_steps": steps[0]},
            {"name": "instruct", "data": str(data / "mixture.yaml"),
             "loss": {"kind": "contrastive", "modality_mask": True, "num_negatives": 1, "false_negative_margin": 0.1,
                      "hardness_alpha": 9.0, "top_k": 4},
             "temperature": {"init": 0.03, "per_task": True}, "batch_size": 4, "grad_cache_chunk": 3, "lr": 2e-3,
             "max_steps": steps[1]},
        ],
    }


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(run_dir) / "model" / "model.safetensors"))


def torchrun_train(recipe: dict, run: Path, resume: bool = False) -> None:
    """`uniembed train` on 2 CPU ranks (gloo) with the given recipe."""
    from ports import free_port

    recipe_path = run.parent / f"{run.name}.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(free_port()), "-m", "uniembed.cli.main", "train",
               str(recipe_path), "--out", str(run), "--no-progress"] + (["--resume"] if resume else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def killed_copy(run: Path, copy: Path, stage_dir: str, kept_step: int) -> Path:
    """`run` as a kill right after the checkpoint at `kept_step` of `stage_dir` leaves it: later checkpoints,
    the stage's output and the final link never written."""
    import shutil

    shutil.copytree(run, copy, symlinks=True)
    stage_index = stage_dir.split("-")[0].removeprefix("stage")
    later = [copy / stage_dir, copy / "model"] + [
        path for path in (copy / "checkpoints").glob(f"stage{stage_index}-step*")
        if int(path.name.split("step")[1]) > kept_step]
    for path in later:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
    return copy


def uneven_full_recipe(data_dir: Path, tmp_path: Path, text_only: bool = False) -> dict:
    """Full fine-tuning, 3 + 6 steps, GradCache chunks of 2 in stage 2 on a source where only a third of the rows
    carry a hard negative, so the two ranks' shares of a batch differ in length (`text_only`: and two thirds
    of the rows have no image, so some ranks' shares skip the vision tower)."""
    recipe = recipe_dict(data_dir, steps=(3, 6), save_every=3)
    recipe["trainable"] = {"mode": "full", "freeze_vision": False}
    rows = [json.loads(line) for line in (data_dir / "mm.jsonl").read_text().splitlines()]
    if text_only:
        rows = [row if k % 3 == 0 else {side: f"a picture number {k}" if isinstance(value, dict) else value
                                        for side, value in row.items()} for k, row in enumerate(rows)]
    uneven = tmp_path / "uneven.jsonl"
    uneven.write_text("".join(json.dumps(row if k % 3 == 0 else {**row, "negatives": []}) + "\n" for k, row in enumerate(rows)))
    recipe["stages"][1]["data"] = {"sources": [{"name": "uneven", "format": "jsonl", "path": str(uneven),
                                                "media_root": str(data_dir)}]}
    recipe["stages"][1]["grad_cache_chunk"] = 2  # 2 rows per rank: 4 items = 2 chunks, 5 or 6 items = 3 chunks
    return recipe


def model_files(run: Path, stage: str = "model") -> dict[str, dict[str, torch.Tensor]]:
    """Every safetensors file of the run's final model (or of one stage's output folder), by file name: the
    backbone's, and a multi-vector model's head."""
    return {path.name: load_file(str(path)) for path in sorted((Path(run) / stage).glob("*.safetensors"))}


def assert_close_to_ddp(run: Path, ddp: Path) -> None:
    """The run's final weights (`model_files`) are DDP's up to float summation order, and stage 2 moved most."""
    files, ddp_files, started_files = model_files(run), model_files(ddp), model_files(run, "stage0-mixed")
    assert files.keys() == ddp_files.keys()
    for file, ddp_weights in ddp_files.items():
        weights, started = files[file], started_files[file]
        assert weights.keys() == ddp_weights.keys(), file
        changed = 0
        for name, value in ddp_weights.items():
            torch.testing.assert_close(weights[name], value, atol=5e-4, rtol=0, msg=f"{file}: {name}")
            changed += not torch.equal(value, started[name])
        assert changed > len(ddp_weights) // 2, file  # full fine-tuning moves nearly every tensor


def assert_resume_repeats(recipe: dict, run: Path, copy: Path) -> None:
    """A kill after stage 2's step-3 checkpoint, resumed, ends with the run's final weights bit for bit (every
    safetensors file of the final model)."""
    resumed = killed_copy(run, copy, "stage1-instruct", kept_step=3)
    torchrun_train(recipe, resumed, resume=True)
    expected, got = model_files(run), model_files(resumed)
    assert expected.keys() == got.keys()
    for file, weights in expected.items():
        for name in weights:
            assert torch.equal(weights[name], got[file][name]), f"{file}: {name}"


def train_under_each_strategy(recipe: dict, tmp_path: Path) -> dict[str, Path]:
    """`recipe` trained by `torchrun_train` under DDP, FSDP2 and (when installed) DeepSpeed ZeRO-1, DDP first:
    {strategy: run directory}."""
    strategies = ["ddp", "fsdp"]
    try:
        import deepspeed  # noqa: F401
        strategies.append("deepspeed")
    except ImportError:
        pass
    runs = {strategy: tmp_path / strategy for strategy in strategies}
    for strategy, run in runs.items():
        torchrun_train(recipe | {"distributed": strategy}, run)
    return runs
