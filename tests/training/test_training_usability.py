"""What a training run tells its user before and while it runs (issue 19, points 4 and 9): a recipe that
cannot learn at the chosen size, what trains in the vision tower, unused LoRA options, and write failures."""
from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
import torch

from uniembed import ConfigError, Embedder
from uniembed.cli.main import main
from uniembed.training.recipe import learning_notes, load_recipe, recipe_from_dict
from uniembed.training.trainable import apply_trainable, describe_trainable
from uniembed.training.trainer import Trainer, TrainingError

from training_data import write_training_set

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> Path:
    return write_training_set(tmp_path_factory.mktemp("usability_data"), count=8)


def one_stage(mixture: Path, trainable: dict, steps: int = 1, save_every: int = 0) -> dict:
    return {"name": "t", "model": "tiny", "trainable": trainable, "save_every": save_every,
            "stages": [{"name": "s", "data": str(mixture), "batch_size": 4, "lr": 1e-3, "max_steps": steps}]}


def test_lora_on_a_random_model_is_called_out_before_training(mixture, tmp_path, caplog):
    shipped = load_recipe(REPO / "recipes" / "vlm2vec.yaml", ["model=tiny"])
    [note] = learning_notes(shipped)
    assert "randomly initialised" in note and "trainable.mode=full" in note
    assert learning_notes(load_recipe(REPO / "recipes" / "vlm2vec.yaml")) == []  # a real checkpoint: fine
    assert learning_notes(load_recipe(REPO / "recipes" / "demo.yaml")) == []  # tiny, but full fine-tuning
    # the run logs it first, before the model is even built, and the trainability line names the vision tower
    caplog.set_level(logging.INFO, logger="uniembed.train")
    Trainer(recipe_from_dict(one_stage(mixture, {"mode": "lora", "r": 2})), tmp_path / "lora", show_progress=False).run()
    messages = [r.getMessage() for r in caplog.records if r.name == "uniembed.train"]
    assert "randomly initialised" in messages[0]
    assert any("vision tower frozen (trainable.freeze_vision=true)" in m for m in messages)


def test_vision_tower_trainability_is_explicit():
    spec = recipe_from_dict({"name": "t", "model": "tiny", "trainable": {"mode": "full"},
                             "stages": [{"name": "s", "data": "x.yaml", "max_steps": 1}]}).trainable
    model = apply_trainable(Embedder.tiny().backbone.hf_model, spec)
    line = describe_trainable(model, spec)
    assert "full fine-tuning" in line and "vision tower frozen (trainable.freeze_vision=true)" in line
    assert "vision tower 0 of" in line
    spec.freeze_vision = False
    line = describe_trainable(apply_trainable(Embedder.tiny().backbone.hf_model, spec), spec)
    assert "vision tower trains" in line and "vision tower 0 of" not in line


def test_lora_targets_that_match_nothing_trainable_are_refused(caplog):
    recipe = recipe_from_dict({"name": "t", "model": "tiny",
                               "trainable": {"mode": "lora", "target_modules": ["q_proj", "qkv"]},
                               "stages": [{"name": "s", "data": "x.yaml", "max_steps": 1}]})
    # `qkv` is the vision tower's attention: with the tower frozen, an adapter there would never be made
    with pytest.raises(ConfigError, match=r"\['qkv'\].*only in the vision tower, which is frozen"):
        apply_trainable(Embedder.tiny().backbone.hf_model, recipe.trainable)
    recipe.trainable.target_modules = ["q_proj", "nonexistent"]
    with pytest.raises(ConfigError, match=r"\['nonexistent'\] match no module"):
        apply_trainable(Embedder.tiny().backbone.hf_model, recipe.trainable)
    # unfrozen vision tower but no target inside it: said, since it stays frozen
    recipe.trainable.target_modules, recipe.trainable.freeze_vision = ["q_proj"], False
    caplog.set_level(logging.WARNING)
    apply_trainable(Embedder.tiny().backbone.hf_model, recipe.trainable)
    assert any("vision tower trains nothing" in r.getMessage() for r in caplog.records)


def test_unused_lora_options_are_warned(caplog):
    caplog.set_level(logging.WARNING, logger="uniembed.train")
    load_recipe(REPO / "recipes" / "vlm2vec.yaml", ["trainable.mode=full"])
    assert any("r, alpha, dropout are LoRA option(s), unused with mode: full" in r.getMessage() for r in caplog.records)
    caplog.clear()
    # unite's stages carry their own `trainable`: a recipe-level override changes nothing, and says so
    load_recipe(REPO / "recipes" / "unite.yaml", ["trainable.mode=full"])
    assert any("recipe-level `trainable` is unused" in r.getMessage() for r in caplog.records)


def test_write_failure_names_the_folder_the_fix_and_the_last_good_checkpoint(mixture, tmp_path, monkeypatch):
    real_save, calls = torch.save, []

    def failing_save(obj, path, *args, **kwargs):
        calls.append(path)
        if "step00000002" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    run = tmp_path / "run"
    recipe = recipe_from_dict(one_stage(mixture, {"mode": "full"}, steps=3, save_every=1))
    with pytest.raises(TrainingError) as raised:
        Trainer(recipe, run, show_progress=False).run()
    message = str(raised.value)
    assert f"'{run}'" in message and "No space left on device" in message and "free disk space" in message
    assert "Last good checkpoint: " + str(run / "checkpoints" / "stage0-step00000001") in message
    assert "--resume" in message


def test_unwritable_output_folder_is_a_clear_cli_error(mixture, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: t\nmodel: tiny\ntrainable: {{mode: full}}\nstages:\n"
                      f"  - {{name: s, data: {mixture}, batch_size: 4, max_steps: 1}}\n")
    code = main(["train", str(recipe), "--out", str(blocker / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3
    assert f"cannot write the run folder '{blocker / 'run'}'" in err and "Last good checkpoint: none" in err
    assert "Traceback" not in err
