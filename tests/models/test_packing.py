"""Sequence packing (`models/backbones/packing.py`): packed rows give the padded forward's embeddings on every
family, both padding sides, causal and bidirectional attention, 1-D and M-RoPE positions, text, image, video and
mixed batches; nothing leaks between the items of a row; and the padded path's cheaper 2-D mask is exact."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from uniembed import ConfigError, Embedder, Item
from uniembed.models.backbones import packing
from uniembed.models.backbones.base import attention_bias, forward_mask
from uniembed.models.config import EmbeddingConfig, model_fingerprint

from backbone_checks import parity_items, variant

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILIES = ("qwen2_vl", "qwen3_vl", "llava_onevision")
LONG = Item(text=" ".join(["a red circle left of a blue square on a white page"] * 40))


@pytest.fixture(scope="module")
def models():
    return {family: Embedder.tiny(family=family) for family in FAMILIES}


@pytest.fixture(scope="module")
def models64():
    """float64 copies: position offsets that RoPE's relative form cancels in exact arithmetic still show."""
    built = {family: Embedder.tiny(family=family) for family in FAMILIES}
    for model in built.values():
        model.backbone.model.double()
    return built


def batch_items(kind: str, media_dir) -> list[Item]:
    """A long text first (it sets the row capacity), then items short enough to share rows."""
    items = parity_items(media_dir)
    chosen = {"text": ["text", "short", "short", "text"], "image": ["image", "two_images", "image"],
              "video": ["video_frames", "video_file"],
              "mixed": ["short", "image", "video_frames", "text", "two_images", "short"]}[kind]
    return [LONG] + [items[name] for name in chosen]


def configured(model: Embedder, family: str, **overrides) -> Embedder:
    if family == "llava_onevision":
        overrides["positions"] = "1d"  # its language model has 1-D RoPE only
    return variant(model, **overrides)


def embeddings(model: Embedder, items: list[Item], packing_mode: str) -> tuple[torch.Tensor, packing.PackPlan | None]:
    model = variant(model, packing=packing_mode)
    batch = model.collate([model.decode(item, i) for i, item in enumerate(items)])
    plan = packing.plan_packing(batch["attention_mask"], model.config, model.backbone.hf_model.config)
    with torch.no_grad():
        return model.module(batch, normalize=False), plan


def assert_packed_equals_padded(model: Embedder, items: list[Item], atol: float) -> None:
    padded, _ = embeddings(model, items, "off")
    packed, plan = embeddings(model, items, "on")
    assert plan is not None and plan.rows < len(items)  # items really share rows
    torch.testing.assert_close(packed, padded, atol=atol, rtol=0)


@pytest.mark.parametrize("kind", ["text", "image", "video", "mixed"])
@pytest.mark.parametrize("family", FAMILIES)
def test_packed_embeddings_equal_padded(models, media_dir, family, kind):
    model = configured(models[family], family, pooling="mean")
    assert_packed_equals_padded(model, batch_items(kind, media_dir), atol=1e-5)


@pytest.mark.parametrize("overrides", [
    {"padding_side": "right", "attention": "bidirectional", "pooling": "mean"},
    {"padding_side": "left", "attention": "bidirectional", "pooling": "last"},
    {"padding_side": "right", "positions": "1d", "pooling": "eos"},
    {"padding_side": "left", "pooling": "mean_no_instruction"},
])
@pytest.mark.parametrize("family", FAMILIES)
def test_packed_equals_padded_across_options(models, media_dir, family, overrides):
    model = configured(models[family], family, **overrides)
    assert_packed_equals_padded(model, batch_items("mixed", media_dir), atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_equals_padded_in_float64(models64, media_dir, family):
    model = configured(models64[family], family, attention="bidirectional", pooling="mean")
    assert_packed_equals_padded(model, batch_items("mixed", media_dir), atol=1e-12)


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
@pytest.mark.parametrize("family", FAMILIES)
def test_nothing_leaks_between_the_items_of_a_row(models64, media_dir, family, attention):
    """Changing one item (its content and its length) leaves every other item of its row as it was: a mask
    that lets attention cross items, or positions that count on from the previous item, would move them
    (float64: RoPE's relative form hides a position shift in float32 rounding, not in float64's)."""
    model = configured(models64[family], family, attention=attention, pooling="mean")
    items = batch_items("mixed", media_dir)
    before, plan = embeddings(model, items, "on")
    changed = 1  # "short": it shares its row with the image item after it
    row_of = plan.target.div(plan.capacity, rounding_mode="floor")
    first_token = plan.source.div(plan.batch_shape[1], rounding_mode="floor")
    rows = {int(row_of[first_token == k][0]) for k in (changed, changed + 1)}
    assert len(rows) == 1  # the changed item and the next one do share a row
    items[changed] = Item(text="a much longer text that replaces the short greeting entirely")
    after, _ = embeddings(model, items, "on")
    others = [k for k in range(len(items)) if k != changed]
    torch.testing.assert_close(after[others], before[others], atol=1e-12, rtol=0)
    assert (after[changed] - before[changed]).abs().max() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_flash_inputs_pack_by_positions(models, media_dir, family, monkeypatch):
    """Under flash attention packing passes no mask, one row, and positions restarting per item (4 x 1 x N for
    M-RoPE: per-item ranks first); transformers derives the varlen blocks from them. On CPU the same inputs run
    through sdpa, where transformers builds its block-causal mask from those positions: equal embeddings."""
    model = configured(models[family], family, pooling="mean")
    items = batch_items("mixed", media_dir)
    padded, _ = embeddings(model, items, "off")
    monkeypatch.setattr(packing, "attention_implementation", lambda config: "flash_attention_2")
    batch = model.collate([model.decode(item, i) for i, item in enumerate(items)])
    language = packing.language_inputs(batch["input_ids"], batch, variant(model, packing="on").config,
                                       model.backbone.hf_model.config, torch.float32)
    assert language.mask is None and language.plan.rows == 1
    assert language.position_ids.shape[0] == (1 if family == "llava_onevision" else 4)
    packed, _ = embeddings(model, items, "on")
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=0)


def test_options_that_cannot_pack_are_named():
    on, auto = EmbeddingConfig(packing="on"), EmbeddingConfig(packing="auto")
    mask = torch.ones(3, 4, dtype=torch.long)
    for implementation, attention, named in (("flex_attention", "causal", "flex_attention"),
                                             ("flash_attention_2", "bidirectional", "bidirectional")):
        hf_config = SimpleNamespace(_attn_implementation=implementation)
        with pytest.raises(ConfigError, match=named):
            packing.plan_packing(mask, on.replace(attention=attention), hf_config)
        assert packing.plan_packing(mask, auto.replace(attention=attention), hf_config) is None
    with pytest.raises(ConfigError, match="packing"):
        EmbeddingConfig(packing="always")
    # YAML 1.1 reads `packing: on` / `off` (recipes, --set embedding.packing=off) as booleans
    assert (EmbeddingConfig(packing=True).packing, EmbeddingConfig(packing=False).packing) == ("on", "off")


def test_auto_packs_only_batches_it_shrinks():
    sdpa = SimpleNamespace(_attn_implementation="sdpa")
    even = torch.ones(4, 10, dtype=torch.long)  # no padding: nothing to gain
    uneven = torch.zeros(4, 10, dtype=torch.long)
    uneven[0], uneven[1:, :3] = 1, 1  # one long item and three short ones: two rows instead of four
    assert packing.plan_packing(even, EmbeddingConfig(), sdpa) is None
    plan = packing.plan_packing(uneven, EmbeddingConfig(), sdpa)
    assert (plan.rows, plan.capacity) == (2, 10)
    assert plan.segments[1].tolist() == [2] * 3 + [3] * 3 + [4] * 3 + [0]
    assert plan.ranks[1].tolist() == [0, 1, 2] * 3 + [0]
    assert packing.plan_packing(uneven, EmbeddingConfig(packing="off"), sdpa) is None


def test_packing_does_not_change_the_model_fingerprint():
    assert model_fingerprint(EmbeddingConfig(packing="on"), "w") == model_fingerprint(EmbeddingConfig(packing="off"), "w")


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("family", FAMILIES)
def test_padded_causal_sdpa_takes_the_2d_mask_with_identical_states(models, media_dir, family, padding_side,
                                                                     monkeypatch):
    """The padded path gives causal sdpa the 2-D mask without gradients (transformers' own causal handling, no
    L x L float mask built per batch) and keeps the 4-D bias for bidirectional attention and for CPU training:
    states on real tokens equal the 4-D bias's."""
    hf_config = models[family].backbone.hf_model.config
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert forward_mask(mask, "causal", hf_config, torch.float32).ndim == 4  # CPU, gradients on: training
    with torch.no_grad():
        assert forward_mask(mask, "causal", hf_config, torch.float32).ndim == 2
        assert forward_mask(mask, "bidirectional", hf_config, torch.float32).ndim == 4
        assert forward_mask(mask, "causal", SimpleNamespace(_attn_implementation="eager"), torch.float32).ndim == 4
    for attention in ("causal", "bidirectional"):
        model = configured(models[family], family, padding_side=padding_side, attention=attention, packing="off")
        batch = model.collate([model.decode(item, i) for i, item in enumerate(batch_items("mixed", media_dir))])
        with torch.no_grad():
            cheap = model.backbone.hidden_states(batch, model.config)
            with monkeypatch.context() as patch:
                patch.setattr(packing, "forward_mask", lambda m, a, c, d: attention_bias(m, a, d))
                full = model.backbone.hidden_states(batch, model.config)
        real = batch["attention_mask"].bool()
        torch.testing.assert_close(cheap[real], full[real], atol=1e-6, rtol=0)
        assert not cheap.isnan().any()
