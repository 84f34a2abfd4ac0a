"""The training engine: recipes, stages, checkpoints, exact resume after SIGKILL, non-finite losses."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from uniembed import ConfigError, Embedder
from uniembed.training.recipe import load_recipe, recipe_from_dict
from uniembed.training.trainer import Trainer, TrainingError

from training_runs import (assert_close_to_ddp, assert_resume_repeats, final_weights, killed_copy, recipe_dict,
                           torchrun_train, uneven_full_recipe)

REPO = Path(__file__).resolve().parents[2]


def test_recipe_overrides_and_validation(tmp_path, data_dir):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(data_dir)))
    recipe = load_recipe(path, ["stages.1.lr=5e-5", "model=tiny:small", "stages.*.batch_size=8", "trainable.r=2"])
    assert recipe.stages[1].lr == 5e-5 and recipe.model == "tiny:small" and recipe.trainable.r == 2
    assert [s.batch_size for s in recipe.stages] == [8, 8]
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['lrr'\] in stages\[0\]"):
        load_recipe(path, ["stages.0.lrr=1"])
    with pytest.raises(ConfigError, match="index 5 out of range"):
        load_recipe(path, ["stages.5.lr=1"])
    bad = recipe_dict(data_dir)
    bad["stages"][0]["loss"]["kind"] = "triplet"
    with pytest.raises(ConfigError, match="loss.kind 'triplet'"):
        recipe_from_dict(bad)
    del bad["stages"][0]["max_steps"]
    with pytest.raises(ConfigError, match="set max_steps or epochs"):
        recipe_from_dict(recipe_dict(data_dir) | {"stages": [bad["stages"][0] | {"loss": {}}]})


def test_recipe_rejects_distribution_it_cannot_run(data_dir):
    with pytest.raises(ConfigError, match=r"distributed 'zero3' is not one of \('ddp', 'fsdp', 'deepspeed'\)"):
        recipe_from_dict(recipe_dict(data_dir) | {"distributed": "zero3"})
    with pytest.raises(ConfigError, match="fsdp shards full fine-tuning"):
        recipe_from_dict(recipe_dict(data_dir) | {"distributed": "fsdp"})  # the test recipe trains LoRA
    full = recipe_dict(data_dir) | {"distributed": "fsdp", "trainable": {"mode": "full"}}
    assert recipe_from_dict(full).distributed == "fsdp"
    with pytest.raises(ConfigError, match="ZeRO stage 2 is not offered.*distributed: fsdp"):
        recipe_from_dict(recipe_dict(data_dir) | {"distributed": "deepspeed", "deepspeed": {"zero_optimization": {"stage": 2}}})
    with pytest.raises(ConfigError, match="`deepspeed` options but distributed is not deepspeed"):
        recipe_from_dict(recipe_dict(data_dir) | {"deepspeed": {"zero_optimization": {"stage": 1}}})
    zero = recipe_dict(data_dir) | {"distributed": "deepspeed", "deepspeed": {"zero_optimization": {"stage": 1}}}
    assert recipe_from_dict(zero).deepspeed == {"zero_optimization": {"stage": 1}}  # LoRA is fine under ZeRO
    reranker = recipe_dict(data_dir) | {"trainable": {"mode": "full"}}
    reranker["stages"] = [reranker["stages"][0] | {"loss": {"kind": "reranker"}, "batching": "source"}]
    for strategy in ("fsdp", "deepspeed"):  # late_interaction trains under both; the re-ranker is not checked there
        with pytest.raises(ConfigError, match="stage 'mixed': a reranker stage runs with distributed: ddp only"):
            recipe_from_dict(reranker | {"distributed": strategy})


def test_two_stage_run_writes_loadable_models(tmp_path, data_dir):
    run = tmp_path / "run"
    final = Trainer(recipe_from_dict(recipe_dict(data_dir)), run, show_progress=False).run()
    for stage in ("stage0-mixed", "stage1-instruct"):
        model = Embedder.from_pretrained(run / stage)
        assert model.encode(["a red circle"]).shape == (1, 64)
        assert (run / stage / "recipe.yaml").exists()
    trained = Embedder.from_pretrained(final).encode(["a red circle number 0", "a blue square"])
    untrained = Embedder.tiny().encode(["a red circle number 0", "a blue square"])
    assert np.abs(trained - untrained).max() > 1e-3  # training changed the model
    entries = [yaml.safe_load(line) for line in (run / "logs" / "train.jsonl").read_text().splitlines()]
    assert [(e["stage_index"], e["step"]) for e in entries] == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2), (1, 3), (1, 4)]
    assert all(np.isfinite(e["loss"]) and e["lr"] >= 0 and e["temperature"] > 0 for e in entries)
    checkpoint = sorted((run / "checkpoints").iterdir())[-1]
    assert yaml.safe_load((checkpoint / "recipe.yaml").read_text())["stages"][1]["grad_cache_chunk"] == 3
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(recipe_from_dict(recipe_dict(data_dir)), run, show_progress=False).run()


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, data_dir, monkeypatch):
    from uniembed.training.objectives import contrastive as trainer_module  # the module that computes the loss

    calls = {"n": 0}
    real = trainer_module.local_contrastive_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] >= 3 else value

    monkeypatch.setattr(trainer_module, "local_contrastive_loss", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"non-finite loss at stage 0 \('mixed'\) step 3.*stage0-step00000002"):
        Trainer(recipe_from_dict(recipe_dict(data_dir, save_every=2)), run, show_progress=False).run()
    assert (run / "checkpoints" / "stage0-step00000002" / "trainer_state.json").exists()


def _train_command(recipe_path: Path, run: Path, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "uniembed.cli.main", "train", str(recipe_path), "--out", str(run), "--no-progress"]
    return command + (["--resume"] if resume else [])


def _checkpoints(run: Path) -> set[Path]:
    """The run's complete checkpoints (written under a temporary name, then renamed)."""
    return set((run / "checkpoints").glob("stage*-step*"))


def test_sigkill_and_resume_ends_with_identical_weights(tmp_path, data_dir):
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe_dict(data_dir, steps=(5, 4), save_every=1)))
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    reference = tmp_path / "reference"
    subprocess.run(_train_command(recipe_path, reference, False), check=True, env=env, capture_output=True, timeout=600)

    run = tmp_path / "killed"
    kills = 0
    rng = np.random.default_rng(0)
    for attempt in range(8):
        process = subprocess.Popen(_train_command(recipe_path, run, attempt > 0), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # kill at a random moment once the run has made progress (mid-step, mid-checkpoint or mid-save): after
        # its next checkpoint appears, not after a fixed time (a quiet machine finishes the run in seconds)
        before = _checkpoints(run)
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None and not _checkpoints(run) - before:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.3)))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
        elif process.returncode == 0:
            break
        else:
            pytest.fail(f"training exited with {process.returncode}")
    else:
        finished = subprocess.run(_train_command(recipe_path, run, True), env=env, capture_output=True, timeout=600)
        assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    assert kills >= 1
    expected, got = final_weights(reference), final_weights(run)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


@pytest.mark.distributed
def test_two_rank_resume_repeats_the_uninterrupted_run(tmp_path, data_dir):
    """torchrun, 2 ranks, gloo: resuming from a mid-stage checkpoint ends with the weights of the uninterrupted
    run, which needs every rank's random streams (LoRA dropout differs per rank), not rank 0's only."""
    recipe = recipe_dict(data_dir, steps=(4, 3), save_every=2)
    recipe["stages"][1].pop("grad_cache_chunk")
    reference = tmp_path / "reference"
    torchrun_train(recipe, reference)
    rng = torch.load(reference / "checkpoints" / "stage1-step00000002" / "rng.pt", weights_only=False)
    assert len(rng["ranks"]) == 2 and not torch.equal(rng["ranks"][0]["torch"], rng["ranks"][1]["torch"])

    resumed = killed_copy(reference, tmp_path / "resumed", "stage1-instruct", kept_step=2)
    torchrun_train(recipe, resumed, resume=True)
    expected, got = final_weights(reference), final_weights(resumed)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


@pytest.mark.distributed
def test_deepspeed_zero_matches_ddp_and_resumes_exactly(tmp_path, data_dir):
    """`distributed: deepspeed` on 2 gloo ranks (ZeRO-1: the Adam state partitioned), with GradCache chunks
    through `engine.backward` on ranks running different numbers of chunks and a learnable temperature outside
    the engine: DDP's result up to float summation order and one optimizer partition per rank in the
    checkpoint. On data where some ranks' shares have no image (they skip the vision tower, and ZeRO reduces
    only the gradients a rank holds) it runs, and resuming from the mid-stage checkpoint repeats it exactly."""
    pytest.importorskip("deepspeed", reason="`make setup` installs DeepSpeed")
    recipe = uneven_full_recipe(data_dir, tmp_path)
    recipe["stages"][1]["temperature"] = {"init": 0.05, "learnable": True}
    zero, replicated = tmp_path / "zero", tmp_path / "ddp"
    torchrun_train(recipe | {"distributed": "deepspeed"}, zero)
    torchrun_train(recipe | {"distributed": "ddp"}, replicated)
    assert_close_to_ddp(zero, replicated)
    saved = zero / "checkpoints" / "stage1-step00000003"
    assert len(list((saved / "deepspeed").rglob("*optim_states.pt"))) == 2 and not (saved / "optimizer.pt").exists()
    taus = [json.loads((run / "stage1-instruct" / "training_state.json").read_text())["temperature"]
            for run in (zero, replicated)]
    assert taus[0]["temperature"] != 0.05 and taus[0]["temperature"] == pytest.approx(taus[1]["temperature"], abs=1e-5)

    (tmp_path / "text").mkdir()
    mixed = uneven_full_recipe(data_dir, tmp_path / "text", text_only=True) | {"distributed": "deepspeed"}
    torchrun_train(mixed, tmp_path / "zero_text")
    assert_resume_repeats(mixed, tmp_path / "zero_text", tmp_path / "zero_text_resumed")


@pytest.mark.distributed
def test_fsdp_full_fine_tuning_matches_ddp_and_resumes_exactly(tmp_path, data_dir):
    """`distributed: fsdp` on 2 ranks: the language layers are sharded, GradCache chunks run on a batch whose
    ranks hold different numbers of rows, checkpoints hold full tensors, and the result is DDP's up to float
    summation order; resuming a sharded run from its mid-stage checkpoint repeats it exactly."""
    recipe = uneven_full_recipe(data_dir, tmp_path)
    sharded, replicated = tmp_path / "fsdp", tmp_path / "ddp"
    torchrun_train(recipe | {"distributed": "fsdp"}, sharded)
    torchrun_train(recipe | {"distributed": "ddp"}, replicated)
    assert_close_to_ddp(sharded, replicated)
    state = torch.load(sharded / "checkpoints" / "stage1-step00000003" / "trainable.pt")
    model = Embedder.from_pretrained(sharded / "model")
    assert model.encode(["a red circle"]).shape == (1, 64)
    # the checkpoint holds every trainable tensor whole, not rank 0's shards
    assert {name: tuple(value.shape) for name, value in state.items()} == {
        name: tuple(p.shape) for name, p in model.module.named_parameters()}

    assert_resume_repeats(recipe | {"distributed": "fsdp"}, sharded, tmp_path / "fsdp_resumed")


def test_modality_mask_acts_only_when_batches_mix_target_modalities(tmp_path, data_dir):
    """Two sources, text targets and image targets: with one source per batch the mask removes nothing (weights
    bit-identical to no mask); with `batching: mixed` it removes the other modality's candidates."""
    rows = [json.loads(line) for line in (data_dir / "mm.jsonl").read_text().splitlines()]
    for name, wanted in (("to_text", str), ("to_image", dict)):
        chosen = [row for row in rows if isinstance(row["positive"], wanted)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in chosen))
    sources = [{"name": name, "format": "jsonl", "path": str(tmp_path / f"{name}.jsonl"), "media_root": str(data_dir)}
               for name in ("to_text", "to_image")]

    def train(batching: str, mask: bool) -> dict[str, torch.Tensor]:
        recipe = recipe_dict(data_dir, steps=(3, 1))
        recipe["stages"] = [recipe["stages"][0] | {"data": {"sources": sources}, "batching": batching,
                                                   "loss": {"kind": "contrastive", "modality_mask": mask, "num_negatives": 0}}]
        run = tmp_path / f"{batching}-{mask}"
        Trainer(recipe_from_dict(recipe), run, show_progress=False).run()
        return final_weights(run)

    for batching, same in (("source", True), ("mixed", False)):
        masked, plain = train(batching, True), train(batching, False)
        assert all(torch.equal(masked[name], plain[name]) for name in plain) == same, batching
