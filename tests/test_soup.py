"""Model soups: exact weight means, identity on identical ingredients, refusal of mismatched checkpoints,
LoRA adapters merged before averaging, and greedy soup's keep-when-not-worse rule under a controlled scorer."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from uniembed import Embedder
from uniembed.cli.main import main
from uniembed.errors import ConfigError
from uniembed.soup import SOUP_FILE, greedy_soup, save_soup, uniform_soup

PROBE = "model.language_model.norm.weight"  # a small tensor the controlled scorer reads


def state(embedder: Embedder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in embedder.backbone.model.state_dict().items()}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_embedder):
    """Two tiny models with different seeds, saved: (dir_a, dir_b, state_a, state_b)."""
    root = tmp_path_factory.mktemp("soup")
    tiny_embedder.save_pretrained(root / "a")
    other = Embedder.tiny(seed=1)
    other.save_pretrained(root / "b")
    return root / "a", root / "b", state(tiny_embedder), state(other)


def test_uniform_soup_is_the_exact_mean_and_a_normal_checkpoint(checkpoints, tmp_path):
    dir_a, dir_b, state_a, state_b = checkpoints
    result = uniform_soup([dir_a, dir_b])
    out = save_soup(result, tmp_path / "soup", [dir_a, dir_b])
    loaded = Embedder.from_pretrained(out)
    souped = state(loaded)
    assert souped.keys() == state_a.keys()
    differing = 0
    for key, value in souped.items():
        if value.is_floating_point():
            assert torch.equal(value, (state_a[key] + state_b[key]) / 2), key
            differing += not torch.equal(state_a[key], state_b[key])
    assert differing > 10  # the seeds really differ, so the mean is not trivially one of them
    assert loaded.config == Embedder.from_pretrained(dir_a).config
    assert loaded.encode(["a red circle"]).shape == (1, loaded.dimension)
    record = json.loads((out / SOUP_FILE).read_text())
    assert record["method"] == "uniform" and record["weights"] == [0.5, 0.5]
    assert [i["path"] for i in record["ingredients"]] == [str(dir_a), str(dir_b)]


def test_weighted_soup_and_soup_of_identical_models(checkpoints, tmp_path):
    dir_a, dir_b, state_a, state_b = checkpoints
    weighted = state(uniform_soup([dir_a, dir_b], weights=[3, 1]).embedder)
    for key, value in weighted.items():
        if value.is_floating_point():
            assert torch.allclose(value, (3 * state_a[key] + state_b[key]) / 4, atol=1e-7), key
    same = uniform_soup([dir_a, dir_a]).embedder
    for key, value in state(same).items():
        assert torch.equal(value, state_a[key]), key
    original = Embedder.from_pretrained(dir_a)
    assert same.model_id == original.model_id  # same weights and config: the same cache key
    with pytest.raises(ConfigError, match="3 --weights for 2 --inputs"):
        uniform_soup([dir_a, dir_b], weights=[1, 1, 1])


def test_mismatched_checkpoints_are_refused_naming_the_difference(checkpoints, tmp_path):
    dir_a = checkpoints[0]
    Embedder.tiny(seed=0, pooling="mean").save_pretrained(tmp_path / "mean")
    with pytest.raises(ConfigError, match=r"embedding option pooling \(pooling: 'last' vs 'mean'\)"):
        uniform_soup([dir_a, tmp_path / "mean"])
    Embedder.tiny(seed=0, size="mini").save_pretrained(tmp_path / "mini")
    with pytest.raises(ConfigError, match="architecture setting"):
        uniform_soup([dir_a, tmp_path / "mini"])
    with pytest.raises(ConfigError, match="at least two"):
        uniform_soup([dir_a])
    with pytest.raises(ConfigError, match="is one of the --inputs"):
        save_soup(uniform_soup([dir_a, dir_a]), dir_a, [dir_a, dir_a])


def test_lora_adapter_is_merged_into_its_base_before_averaging(checkpoints, tmp_path):
    from peft import LoraConfig, get_peft_model

    dir_a, dir_b, state_a, state_b = checkpoints
    tuned = Embedder.from_pretrained(dir_a)  # the base must be on disk for an adapter-only save
    tuned.backbone.model = get_peft_model(tuned.backbone.model,
                                          LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in tuned.backbone.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    tuned.save_pretrained(tmp_path / "adapter", merge_lora=False)
    tuned.save_pretrained(tmp_path / "merged")
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    merged = state(Embedder.from_pretrained(tmp_path / "merged"))
    result = uniform_soup([tmp_path / "adapter", dir_b])
    souped = state(result.embedder)
    assert not torch.equal(merged["model.language_model.layers.0.self_attn.q_proj.weight"],
                           state_a["model.language_model.layers.0.self_attn.q_proj.weight"])
    for key, value in souped.items():
        if value.is_floating_point():
            assert torch.equal(value, (merged[key] + state_b[key]) / 2), key
    assert result.record["ingredients"][0]["adapter"] is True
    save_soup(result, tmp_path / "soup")
    assert not (tmp_path / "soup" / "adapter_config.json").exists()  # a plain checkpoint


def test_greedy_soup_keeps_an_ingredient_only_when_validation_does_not_drop(checkpoints, tmp_path):
    dir_a = checkpoints[0]
    base = Embedder.from_pretrained(dir_a)
    levels = {"A": 1.0, "B": 2.6, "C": -5.0, "D": 2.6}  # the probe tensor's value in each ingredient
    for name, level in levels.items():
        with torch.no_grad():
            base.backbone.model.state_dict()[PROBE].fill_(level)
        base.save_pretrained(tmp_path / name)
    calls = []

    def scorer(embedder: Embedder) -> float:  # best when the probe averages 2.0
        level = float(embedder.backbone.model.state_dict()[PROBE].mean())
        calls.append(level)
        return -(level - 2.0) ** 2

    result = greedy_soup([tmp_path / name for name in levels], scorer)
    # order by score: B (-0.36), D (-0.36, tie keeps input order), A (-1), C (-49)
    # B -> +D: 2.6 (-0.36, equal: kept) -> +A: 2.0667 (-0.0044, kept) -> +C: 0.3 (-2.89, dropped)
    assert [i["kept"] for i in result.record["ingredients"]] == [True, True, False, True]
    assert [s["kept"] for s in result.record["greedy_steps"]] == [True, True, True, False]
    assert len(calls) == 4 + 3
    probe = result.embedder.backbone.model.state_dict()[PROBE]
    expected = (torch.tensor(2.6) + torch.tensor(2.6) + torch.tensor(1.0)) / 3
    assert torch.allclose(probe, expected.expand_as(probe), atol=1e-6)
    assert result.record["soup_validation_score"] == pytest.approx(-(float(expected) - 2.0) ** 2, abs=1e-5)
    assert result.record["weights"] == pytest.approx([1 / 3, 1 / 3, 0.0, 1 / 3])
    untouched = "model.language_model.layers.0.mlp.up_proj.weight"
    # equal in every ingredient, so the average is that value up to float32 rounding of (x + x + x) / 3
    assert torch.allclose(result.embedder.backbone.model.state_dict()[untouched], state(base)[untouched],
                          rtol=1e-6, atol=1e-9)


def test_soup_cli_uniform_and_greedy_on_held_out_validation_data(checkpoints, tmp_path, capsys):
    dir_a, dir_b, _, _ = checkpoints
    folder = tmp_path / "val" / "tasks" / "t1"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"qry_text": ["a red circle", "two blue squares"], "qry_img_path": ["", ""],
                             "tgt_text": [["a red circle", "a green star"], ["two blue squares", "one cat"]],
                             "tgt_img_path": [["", ""], ["", ""]]}), folder / "test-00000-of-00001.parquet")
    (tmp_path / "val" / "metadata.json").write_text(json.dumps({"tasks": [
        {"name": "t1", "layout": "mmeb", "path": "tasks/t1", "image_root": "."}]}))
    assert main(["soup", "--inputs", str(dir_a), str(dir_b), "--out", str(tmp_path / "uniform")]) == 0
    assert Embedder.from_pretrained(tmp_path / "uniform").dimension > 0
    assert main(["soup", "--inputs", str(dir_a), str(dir_b), "--out", str(tmp_path / "greedy"), "--greedy",
                 "--val-data", str(tmp_path / "val"), "--batch-size", "2"]) == 0
    record = json.loads((tmp_path / "greedy" / SOUP_FILE).read_text())
    assert record["method"] == "greedy" and record["validation"]["datasets"] == ["t1"]
    assert all(i["validation_score"] == 100.0 for i in record["ingredients"])  # identical texts rank first
    assert record["soup_validation_score"] == 100.0 and [i["kept"] for i in record["ingredients"]] == [True, True]
    assert "soup validation score" in capsys.readouterr().out
    assert main(["soup", "--inputs", str(dir_a), str(dir_b), "--out", str(tmp_path / "x"), "--greedy"]) == 2
    assert "--greedy needs --val-data" in capsys.readouterr().err


def test_a_soup_of_multi_vector_models_averages_their_late_interaction_heads(tmp_path):
    models = [Embedder.tiny(seed=seed, multi_vector_dim=8) for seed in (0, 1)]
    for number, model in enumerate(models):
        model.save_pretrained(tmp_path / str(number))
    soup = save_soup(uniform_soup([tmp_path / "0", tmp_path / "1"]), tmp_path / "soup")
    loaded = Embedder.from_pretrained(soup)
    expected = (models[0].module.head.proj.weight + models[1].module.head.proj.weight) / 2
    torch.testing.assert_close(loaded.module.head.proj.weight, expected)
    assert loaded.encode_multi(["a red circle"])[0].shape[1] == 8
