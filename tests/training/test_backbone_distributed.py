"""Qwen3-VL and LLaVA-OneVision under the distributed strategies, with real processes: DDP, FSDP2
(`distributed: fsdp`, full fine-tuning) and DeepSpeed ZeRO-1 on 2 gloo ranks, GradCache under each; DoRA;
`uniembed eval` and `uniembed serve` on them. The launches are slow (run with `-m slow`); the first test is the
cheap default-suite guard of the same path."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from uniembed import Embedder, Item
from uniembed.models.embedder import EmbeddingModule
from uniembed.training.recipe import TrainableSpec
from uniembed.training.sharding import shard_units
from uniembed.training.trainable import apply_trainable, is_vision

from training_runs import assert_close_to_ddp, final_weights, killed_copy, torchrun_train, uneven_full_recipe

FAMILIES = ["qwen3_vl", "llava_onevision"]


def test_new_backbones_shard_their_language_layers_and_train_dora():
    """FSDP2's units on each new backbone are exactly its language-model decoder layers (none of the vision
    tower, which a rank without images skips); DoRA adapts only the language model, starts as the identity
    (the embeddings of the base model) and every adapter tensor gets a finite gradient from an image + text batch."""
    image = Image.new("RGB", (64, 64), "white")
    image.paste((200, 30, 30), (16, 16, 48, 48))
    for family in FAMILIES:
        model = Embedder.tiny(family=family, seed=0)
        layers = model.backbone.hf_model.model.language_model.layers
        assert [id(unit) for unit in shard_units(model.module)] == [id(layer) for layer in layers], family

        items = [Item(text="a red square"), Item(image=image, text="Represent the image")]
        batch = model.collate([model.prepare(item, i) for i, item in enumerate(items)])
        with torch.no_grad():
            base = model.module(batch)
        backbone = model.backbone
        backbone.model = apply_trainable(backbone.hf_model, TrainableSpec(mode="dora", r=4, alpha=8, dropout=0.0))
        module = EmbeddingModule(backbone, model.config).train()
        trained = {name: p for name, p in module.named_parameters() if p.requires_grad}
        assert trained and not any(is_vision(name) for name in trained), family
        magnitudes = [name for name in trained if "lora_magnitude_vector" in name]
        assert magnitudes, f"{family}: no DoRA magnitude vector"
        out = module(batch)
        torch.testing.assert_close(out.detach(), base, atol=1e-5, rtol=1e-4, msg=family)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        for name, parameter in trained.items():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), f"{family}: {name}"
        assert any(float(trained[name].grad.abs().sum()) > 0 for name in magnitudes), family


def family_recipe(family: str, data_dir: Path, tmp_path: Path, text_only: bool = False) -> dict:
    """test_training_engine's uneven full fine-tuning on `family`: GradCache chunks of 2 on ranks with different
    numbers of rows, the vision tower training, 2 + 3 steps (checkpoint at stage 2's step 2). `text_only`: two
    thirds of stage 2's rows have no image and it runs 6 steps, so some ranks' shares skip the vision tower (and
    Qwen3-VL's DeepStack injection) while others run it."""
    recipe = uneven_full_recipe(data_dir, tmp_path, text_only=text_only)
    recipe["model"] = f"tiny:{family}"
    recipe["save_every"] = 2
    recipe["stages"][0]["max_steps"], recipe["stages"][1]["max_steps"] = 2, 6 if text_only else 3
    if family == "llava_onevision":
        recipe["embedding"] = {"positions": "1d"}
    return recipe


def differences(run: Path, reference: Path) -> dict[str, float]:
    a, b = final_weights(run), final_weights(reference)
    assert a.keys() == b.keys()
    return {name: float((a[name] - b[name]).abs().max()) for name in b}


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("family", FAMILIES)
def test_fsdp_and_deepspeed_match_ddp_on_new_backbone(family, tmp_path, data_dir):  # noqa: F811
    """2 gloo ranks, full fine-tuning with GradCache: DDP, FSDP2 and DeepSpeed ZeRO-1 end with the same weights up to
    float summation order; the FSDP output loads and encodes, and resuming it from its mid-stage checkpoint repeats
    it exactly. On data where some ranks' shares have no image, FSDP2 trains (it stopped with "Received data size
    doesn't match expected size": ranks reduce-scattered different tensors), and so does DDP with the vision tower
    frozen (full mode's default; an untied LM head no step uses and LLaVA-OneVision's image_newline, used only with
    images, stopped it with "Expected to have finished reduction in the prior iteration")."""
    recipe = family_recipe(family, data_dir, tmp_path)
    runs = {name: tmp_path / name for name in ("ddp", "fsdp", "deepspeed", "fsdp_mixed", "frozen_mixed")}
    strategies = ["ddp", "fsdp"] + (["deepspeed"] if _has_deepspeed() else [])
    for strategy in strategies:
        torchrun_train(recipe | {"distributed": strategy}, runs[strategy])
    for strategy in strategies[1:]:
        print(f"{family}: max |DDP - {strategy}| = {max(differences(runs[strategy], runs['ddp']).values()):.2e}")
        assert_close_to_ddp(runs[strategy], runs["ddp"])
    model = Embedder.from_pretrained(runs["fsdp"] / "model")
    assert model.backbone.hf_model.config.model_type == family
    assert model.encode(["a red circle"]).shape == (1, 64)
    assert (runs["fsdp"] / "checkpoints" / "stage1-step00000002" / "trainable.pt").exists()
    resumed = killed_copy(runs["fsdp"], tmp_path / "fsdp_resumed", "stage1-instruct", kept_step=2)
    torchrun_train(recipe | {"distributed": "fsdp"}, resumed, resume=True)
    expected, got = final_weights(runs["fsdp"]), final_weights(resumed)
    assert all(torch.equal(expected[name], got[name]) for name in expected), family

    (tmp_path / "mixed").mkdir()
    mixed = family_recipe(family, data_dir, tmp_path / "mixed", text_only=True)
    torchrun_train(mixed | {"distributed": "fsdp"}, runs["fsdp_mixed"])
    assert Embedder.from_pretrained(runs["fsdp_mixed"] / "model").encode(["a red circle"]).shape == (1, 64)
    frozen = mixed | {"distributed": "ddp", "trainable": {"mode": "full", "freeze_vision": True}}
    torchrun_train(frozen, runs["frozen_mixed"])
    start, end = (load_file(str(runs["frozen_mixed"] / where / "model.safetensors")) for where in ("stage0-mixed", "model"))
    moved = {name for name in end if not torch.equal(start[name], end[name])}
    assert moved and not any(is_vision(name) for name in moved), family  # the language model (+ image_newline)
    if len(strategies) < 3:
        pytest.skip("DeepSpeed is not installed (`make setup` installs it): ZeRO-1 not checked")


def _has_deepspeed() -> bool:
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.distributed
def test_dora_trains_under_ddp_with_grad_cache_on_new_backbones(tmp_path, data_dir):  # noqa: F811
    """DoRA on 2 DDP ranks, GradCache chunks of 2 on ranks with different numbers of rows, one launch per
    family: the adapters move and the saved adapter loads and encodes."""
    for family in FAMILIES:
        (tmp_path / family).mkdir()
        recipe = family_recipe(family, data_dir, tmp_path / family)
        recipe["trainable"] = {"mode": "dora", "r": 4, "alpha": 8, "dropout": 0.0}
        recipe["distributed"] = "ddp"
        recipe["stages"][0]["max_steps"] = 1
        run = tmp_path / family / "dora"
        torchrun_train(recipe, run)
        model = Embedder.from_pretrained(run / "model")
        assert model.backbone.hf_model.config.model_type == family
        base = Embedder.tiny(family=family, seed=0)
        assert model.encode(["a red circle"]).shape == (1, 64)
        assert not torch.allclose(torch.as_tensor(model.encode(["a red circle"])),
                                  torch.as_tensor(base.encode(["a red circle"])), atol=1e-6), family


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_eval_and_serve_cli_on_new_backbone(family, tmp_path):
    """`uniembed eval --model tiny:<family>` writes its report; `uniembed serve --model tiny:<family>` answers
    /v1/embeddings with the vectors the same model gives in-process."""
    from eval_fakes import colour_image
    from serving_helpers import served
    import pyarrow as pa
    import pyarrow.parquet as pq

    from uniembed.cli.main import main

    data = tmp_path / "data"
    (data / "tasks" / "t1").mkdir(parents=True)
    colour_image(data / "red.png", "red")
    pq.write_table(pa.table({"qry_text": ["<|image_1|>\nRepresent the given image\n"], "qry_img_path": ["red.png"],
                             "tgt_text": [["red", "blue", "green"]], "tgt_img_path": [["", "", ""]]}),
                   data / "tasks" / "t1" / "test-00000-of-00001.parquet")
    (data / "metadata.json").write_text(json.dumps({"tasks": [
        {"name": "t1", "layout": "mmeb", "path": "tasks/t1", "image_root": ".", "chance": 1 / 3}]}))
    assert main(["eval", "--model", f"tiny:{family}", "--suite", "synthetic", "--data", str(data),
                 "--out", str(tmp_path / "out"), "--batch-size", "2"]) == 0
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["encoding"]["encoded"] == 4 and report["scores"]["t1"] in (0.0, 100.0)

    texts = ["a red circle", "two blue squares"]
    with served(["--model", f"tiny:{family}", "--threads", "1", "--log-level", "warning"],
                tmp_path / "server.log") as (url, _):
        request = urllib.request.Request(url + "/v1/embeddings", data=json.dumps({"input": texts}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            served_vectors = torch.tensor([row["embedding"] for row in json.loads(response.read())["data"]])
    expected = torch.as_tensor(Embedder.tiny(family=family, seed=0).encode(texts))
    torch.testing.assert_close(served_vectors, expected.to(served_vectors.dtype), atol=1e-4, rtol=1e-4)
