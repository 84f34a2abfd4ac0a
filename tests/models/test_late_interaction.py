"""The late-interaction head and `Embedder.encode_multi` (issue 25.3, model side)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from uniembed import Embedder
from uniembed.errors import ConfigError
from uniembed.inputs import Item
from uniembed.models.config import EmbeddingConfig
from uniembed.models.late_interaction import HEAD_FILE, LateInteractionHead, keep_mask, token_mask

pytestmark = pytest.mark.usefixtures("one_thread")

ITEMS = ["a red circle", "blue", {"text": "a long text about a red circle left of a blue square", "instruction": "Find it"},
         "a red circle left of a blue square " * 3]


@pytest.fixture(scope="module")
def colqwen():
    return Embedder.tiny(seed=0, multi_vector_dim=16)


def test_head_masks_padding_so_padded_garbage_cannot_leak():
    head = LateInteractionHead(8, 4)
    hidden = torch.randn(2, 5, 8)
    keep = torch.tensor([[False, False, True, True, True], [True, True, True, True, False]])
    garbage = hidden.clone()
    garbage[~keep] = float("nan")
    tokens = head(garbage, keep)
    assert torch.isfinite(tokens).all()
    assert (tokens[~keep] == 0).all()
    torch.testing.assert_close(tokens[keep].norm(dim=-1), torch.ones(int(keep.sum())))
    torch.testing.assert_close(tokens, head(hidden, keep))
    assert torch.equal(token_mask(tokens), keep)


def test_instruction_mask_drops_the_instruction_but_never_every_token():
    attention = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    instruction = torch.tensor([[False, True, False, False], [True, True, True, True]])
    assert keep_mask(attention, instruction, "padding").tolist() == attention.bool().tolist()
    assert keep_mask(attention, instruction, "instruction").tolist() == [[False, False, True, True],
                                                                         [True, True, True, True]]


def test_encode_multi_is_independent_of_batch_size_order_and_padding_side(colqwen):
    reference = colqwen.encode_multi(ITEMS, batch_size=len(ITEMS))
    assert [t.dtype for t in reference] == [np.float32] * len(ITEMS)
    assert all(t.shape[1] == 16 == colqwen.multi_vector_dimension for t in reference)
    np.testing.assert_allclose(np.linalg.norm(reference[3], axis=1), 1.0, atol=1e-5)
    lengths = [len(colqwen.backbone.item_tokens(colqwen.decode(item), colqwen.config)[0])
               for item in colqwen.resolve_items(ITEMS)]
    assert [t.shape[0] for t in reference] == lengths  # padding dropped, every real token kept
    alone = [colqwen.encode_multi([item], batch_size=1)[0] for item in ITEMS]
    reversed_ = colqwen.encode_multi(ITEMS[::-1], batch_size=2)[::-1]
    right = colqwen.with_options(padding_side="right").encode_multi(ITEMS, batch_size=3)
    for other in (alone, reversed_, right):
        for a, b in zip(reference, other):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_instruction_masking_option_removes_the_instruction_tokens(colqwen):
    full = colqwen.encode_multi(ITEMS[2:3])[0]
    masked = colqwen.with_options(multi_vector_mask="instruction").encode_multi(ITEMS[2:3])[0]
    item = colqwen.resolve_items(ITEMS[2:3])[0]
    _, flags, _ = colqwen.backbone.item_tokens(colqwen.decode(item), colqwen.config)
    assert 0 < sum(flags) and masked.shape[0] == full.shape[0] - sum(flags)
    kept = np.array([not f for f in flags])
    np.testing.assert_allclose(masked, full[kept], atol=1e-5)  # the mask drops rows; it changes no other token


def test_save_load_round_trip_keeps_the_head_and_the_fingerprint(colqwen, tmp_path):
    colqwen.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / HEAD_FILE).is_file()
    loaded = Embedder.from_pretrained(tmp_path / "m")
    assert loaded.multi_vector_dimension == 16 and loaded.model_id == colqwen.model_id
    for a, b in zip(colqwen.encode_multi(ITEMS), loaded.encode_multi(ITEMS)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(colqwen.encode(ITEMS), loaded.encode(ITEMS), atol=1e-6)  # the pooled vector too


def test_head_is_part_of_the_module_and_the_fingerprint(colqwen):
    names = [name for name, _ in colqwen.module.named_parameters()]
    assert "head.proj.weight" in names and "head.proj.bias" in names
    other = Embedder.tiny(seed=0, multi_vector_dim=16)
    assert other.model_id == colqwen.model_id
    with torch.no_grad():
        other.module.head.proj.bias.add_(1.0)
    other.invalidate_fingerprint()
    assert other.model_id != colqwen.model_id
    assert Embedder.tiny(seed=0).model_id != colqwen.model_id
    assert colqwen.with_options(multi_vector_mask="instruction").model_id != colqwen.model_id
    single = Embedder.tiny(seed=0)  # single-vector ids do not see the multi-vector fields (caches stay warm)
    fields = {k: v for k, v in single.config.to_dict().items()
              if k not in ("matryoshka_dims", "multi_vector_dim", "multi_vector_mask", "packing")}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    digest.update(single.weights_fingerprint().encode())
    assert single.model_id == digest.hexdigest()[:20]
    assert colqwen.with_options(padding_side="right").module.head is colqwen.module.head  # shared weights


def test_single_vector_models_refuse_encode_multi_and_bad_widths_are_refused(tiny_embedder, tmp_path):
    assert tiny_embedder.multi_vector_dimension is None and tiny_embedder.module.head is None
    with pytest.raises(ConfigError, match="single-vector"):
        tiny_embedder.encode_multi(["a"])
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ConfigError, match="multi_vector_dim"):
            EmbeddingConfig(multi_vector_dim=bad)
    with pytest.raises(ConfigError, match="multi_vector_mask"):
        EmbeddingConfig(multi_vector_mask="prompt")
    tiny_embedder.save_pretrained(tmp_path / "single")  # a single-vector checkpoint gets a new head on request
    grown = Embedder.from_pretrained(tmp_path / "single", multi_vector_dim=8)
    assert grown.encode_multi(["a"])[0].shape[1] == 8
    grown.save_pretrained(tmp_path / "grown")
    (tmp_path / "grown" / HEAD_FILE).unlink()  # a multi-vector folder without its head is broken, not new
    with pytest.raises(ConfigError, match=f"{HEAD_FILE} is missing"):
        Embedder.from_pretrained(tmp_path / "grown")
    assert Embedder.from_pretrained(tmp_path / "grown", multi_vector_dim=None).multi_vector_dimension is None
    grown.module.head.save(tmp_path / "single")
    with pytest.raises(ConfigError, match="multi_vector_dim"):
        Embedder.from_pretrained(tmp_path / "single", multi_vector_dim=4)


def test_multi_vector_forward_pads_length_groups_to_one_length_with_the_rows_in_order(colqwen):
    items = [Item(text="a red circle " * k) for k in (1, 9, 2, 12, 3, 1, 1, 1, 1, 1)]
    prepared = [colqwen.prepare(item, i) for i, item in enumerate(items)]
    grouped = colqwen.collate_by_length(prepared)
    assert len(grouped.batches) > 1
    tokens = colqwen.module(grouped, multi_vector=True, pad_to=120)
    assert tokens.shape[:2] == (len(items), 120)
    reference = colqwen.encode_multi(items)
    for row, expected in enumerate(reference):
        np.testing.assert_allclose(tokens[row][token_mask(tokens[row:row + 1])[0]].detach().numpy(), expected,
                                   atol=1e-5)
