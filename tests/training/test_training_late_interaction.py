"""`loss.kind: late_interaction`: GradCache through the real model equals the plain step, a recipe trains and its
checkpoint reloads as a multi-vector model, bad set-ups fail early, and 2 torchrun ranks train with cross-rank
negatives, under FSDP2 and ZeRO-1 to DDP's weights (slow)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from uniembed import ConfigError, Embedder
from uniembed.inputs import Item
from uniembed.losses import GradCache
from uniembed.losses.late_interaction import late_interaction_loss
from uniembed.models.late_interaction import HEAD_FILE
from uniembed.training.recipe import load_recipe, recipe_from_dict
from uniembed.training.trainer import Trainer

from training_data import write_training_set

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def recipe(data, embedding=None, distributed: str = "ddp", **loss) -> dict:
    return {"name": "col", "model": "tiny", "embedding": {"multi_vector_dim": 16} if embedding is None else embedding,
            "trainable": {"mode": "full", "freeze_vision": True}, "seed": 1, "distributed": distributed,
            "stages": [{"name": "col", "data": str(data), "loss": {"kind": "late_interaction", **loss},
                        "temperature": {"init": 0.05}, "batch_size": 4, "grad_cache_chunk": 3, "lr": 1e-3,
                        "schedule": "constant", "warmup_ratio": 0.0, "max_steps": 8}]}


def test_gradcache_through_the_model_equals_the_plain_step(media_dir):
    """Chunks of different token lengths (a caption, a long text, an image) padded to the step's length give
    the plain step's loss and gradients, the head's included."""
    model = Embedder.tiny(seed=0, multi_vector_dim=16)
    module = model.module.eval()  # no dropout: the plain step and the chunks must draw the same masks
    items = [Item(text="a red circle"), Item(text="a blue square " * 8), Item(image=str(media_dir / "red.png")),
             Item(text="red"), Item(text="a red circle on white"), Item(image=str(media_dir / "blue.jpg")),
             Item(text="a square"), Item(text="blue")]
    prepared = [model.prepare(item, i) for i, item in enumerate(items)]
    length = max(len(model.backbone.item_tokens(d, model.config)[0]) for d in prepared)

    def encode(decoded):
        return module(model.collate_by_length(decoded), multi_vector=True, pad_to=length)

    def loss_fn(tokens):
        return late_interaction_loss(tokens[:3], tokens[3:], temperature=0.05)

    results = []
    for chunk in (None, 3):
        module.zero_grad()
        loss = GradCache([encode], loss_fn, chunk).step(prepared)
        results.append((float(loss), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}))
    (plain_loss, plain), (cached_loss, cached) = results
    assert abs(plain_loss - cached_loss) < 1e-5
    assert set(plain) == set(cached) and "head.proj.weight" in plain
    for name, grad in plain.items():
        torch.testing.assert_close(cached[name], grad, atol=1e-6, rtol=1e-3, msg=name)


def test_a_recipe_trains_the_loss_falls_and_the_checkpoint_encodes_multi_vector(tmp_path):
    data = write_training_set(tmp_path / "data", count=4).parent / "text_mixture.yaml"
    losses = []
    final = Trainer(recipe_from_dict(recipe(data, num_negatives=0)), tmp_path / "run", show_progress=False,
                    on_step=lambda entry: losses.append(entry["loss"])).run()
    assert len(losses) == 8 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < np.mean(losses[:2])  # the same 4 examples every step: the loss falls
    assert (final / HEAD_FILE).is_file()
    trained = Embedder.from_pretrained(final)
    assert trained.multi_vector_dimension == 16
    tokens = trained.encode_multi(["which circle is red, item 0", "a red circle number 0"])
    assert [t.shape[1] for t in tokens] == [16, 16]
    start = Embedder.tiny(seed=0, multi_vector_dim=16).module.head.proj.weight
    assert not torch.allclose(trained.module.head.proj.weight, start)  # the head trained, and was saved


def test_bad_set_ups_fail_early(tmp_path):
    data = write_training_set(tmp_path / "data", count=4)
    with pytest.raises(ConfigError, match="loss.num_negatives must be a non-negative integer"):
        recipe_from_dict(recipe(data, num_negatives=-1))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['temperature'\]"):
        recipe_from_dict(recipe(data, temperature=0.02))
    for strategy in ("fsdp", "deepspeed"):  # both shard or partition the multi-vector model too
        assert recipe_from_dict(recipe(data, distributed=strategy)).distributed == strategy
    with pytest.raises(ConfigError, match="set embedding.multi_vector_dim"):
        Trainer(recipe_from_dict(recipe(data, embedding={})), tmp_path / "run", show_progress=False).run()


def test_the_colqwen_recipe_loads_and_trains_the_tiny_model(tmp_path):
    data = write_training_set(tmp_path / "data", count=8)
    shipped = load_recipe(RECIPES / "colqwen.yaml")
    assert shipped.embedding["multi_vector_dim"] == 128 and shipped.stages[0].loss.kind == "late_interaction"
    recipe = load_recipe(RECIPES / "colqwen.yaml", [
        "model=tiny", "save_every=0", "gradient_checkpointing=false", "stages.0.max_steps=2", "stages.0.epochs=null",
        "stages.0.batch_size=4", "stages.0.grad_cache_chunk=3", "stages.0.loss.num_negatives=1",
        f"stages.0.data={data}", "embedding.max_pixels=12544"])
    final = Trainer(recipe, tmp_path / "run", show_progress=False).run()
    model = Embedder.from_pretrained(final)
    assert model.multi_vector_dimension == 128 and model.config.padding_side == "left"
    tokens = model.encode_multi([{"image": str(data.parent / "img0.png")}, "a red circle"])
    assert [t.shape[1] for t in tokens] == [128, 128] and all(np.isfinite(t).all() for t in tokens)
    start = Embedder.tiny(seed=0, multi_vector_dim=128).module.head.proj.weight
    assert not torch.allclose(model.module.head.proj.weight, start)  # under LoRA the head trains in full


@pytest.mark.slow
@pytest.mark.distributed
def test_two_rank_ddp_training_scores_against_both_ranks_documents(tmp_path):
    """`uniembed train` on 2 gloo ranks (torchrun): the ranks' shares (images, long and short captions, hard
    negatives) pad their token tensors to different lengths, which the cross-rank gather pads to one; the run
    trains the head and logs the global loss. Gradient equality with one process is tests/dist/losses_worker.py's."""
    import json

    from training_runs import torchrun_train

    mixture = write_training_set(tmp_path / "data", count=8)
    run = tmp_path / "run"
    torchrun_train(recipe(mixture, num_negatives=1) | {"save_every": 100}, run)
    entries = [json.loads(line) for line in (run / "logs" / "train.jsonl").read_text().splitlines()]
    assert len(entries) == 8 and all(np.isfinite(entry["loss"]) for entry in entries)
    start = Embedder.tiny(seed=0, multi_vector_dim=16).module.head.proj.weight
    assert (run / "model" / HEAD_FILE).is_file()
    assert not torch.allclose(Embedder.from_pretrained(run / "model").module.head.proj.weight, start)


@pytest.mark.slow
@pytest.mark.distributed
def test_late_interaction_under_fsdp_and_zero_matches_ddp(tmp_path):
    """A late-interaction recipe on 2 gloo ranks (torchrun): FSDP2 (sharded language layers, the head in the root
    group) and DeepSpeed ZeRO-1 end with DDP's weights, the head's included, up to float summation order, with
    GradCache chunks of token tensors on ranks holding different numbers of rows (a hard negative on a third of
    them, images on some) and the documents gathered across ranks; a resumed FSDP2 run repeats itself. Four
    launches: slow."""
    from safetensors.torch import load_file
    from training_runs import (assert_close_to_ddp, assert_resume_repeats, train_under_each_strategy,
                               uneven_full_recipe)

    data = tmp_path / "data"
    write_training_set(data)
    col = uneven_full_recipe(data, tmp_path) | {"embedding": {"multi_vector_dim": 16}}
    col["stages"][0]["max_steps"], col["stages"][1]["max_steps"] = 2, 4  # a checkpoint at stage 2's step 3
    for stage in col["stages"]:
        stage["loss"] = {"kind": "late_interaction", "num_negatives": 1}
    runs = train_under_each_strategy(col, tmp_path)
    strategies = list(runs)
    for strategy in strategies:
        model = Embedder.from_pretrained(runs[strategy] / "model")
        tokens = model.encode_multi([{"image": str(data / "img1.png")}, "a red circle"])
        assert [t.shape[1] for t in tokens] == [16, 16] and all(np.isfinite(t).all() for t in tokens), strategy
        dense = load_file(str(runs[strategy] / "model" / "1_Dense" / "model.safetensors"))  # the export's copy
        assert torch.equal(dense["linear.weight"], model.module.head.proj.weight.detach()), strategy
    for strategy in strategies[1:]:
        assert_close_to_ddp(runs[strategy], runs["ddp"])
    # the sharded head's full tensors and Adam state are in the checkpoint: a resumed FSDP2 run repeats itself
    assert_resume_repeats(col | {"distributed": "fsdp"}, runs["fsdp"], tmp_path / "fsdp_resumed")
    if len(strategies) < 3:
        pytest.skip("DeepSpeed is not installed (`make setup` installs it): ZeRO-1 not checked")
