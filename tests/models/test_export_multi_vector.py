"""A multi-vector model saves (and `uniembed export`s) as a folder that sentence-transformers >= 6 loads as a
`MultiVectorEncoder` whose token vectors equal `Embedder.encode_multi`'s (the real package, no mocks).

The loading tests need transformers' Qwen-VL processors, hence torchvision: they run in `make test-interop`'s venv
and skip elsewhere (see test_export_sentence_transformers.py); the file layout test runs everywhere.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from interop_helpers import needs_torchvision

from uniembed.inputs import Item
from uniembed.models.embedder import Embedder
from uniembed.models.export import export_model
from uniembed.models.interop import exportable

RED = Image.new("RGB", (64, 48), (200, 30, 30))
BLUE = Image.new("RGB", (40, 40), (0, 0, 255))
PROMPTS = {"query": "Find the matching page.", "document": ""}


def test_the_folder_is_laid_out_as_a_multi_vector_encoder_with_the_head_as_its_dense(tmp_path):
    from safetensors.torch import load_file

    model = Embedder.tiny(multi_vector_dim=16, prompts=PROMPTS)
    model.save_pretrained(tmp_path)
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert [m["path"] for m in modules] == ["", "1_Dense", "2_MultiVectorMask", "3_Normalize"]
    assert not (tmp_path / "1_Pooling").exists()
    st_config = json.loads((tmp_path / "config_sentence_transformers.json").read_text())
    assert st_config["model_type"] == "MultiVectorEncoder" and st_config["similarity_fn_name"] == "maxsim"
    assert st_config["prompts"]["query"] == PROMPTS["query"]
    assert "MultiVectorEncoder(" in (tmp_path / "README.md").read_text()  # the model card says how to load it
    dense = load_file(str(tmp_path / "1_Dense" / "model.safetensors"))
    assert torch.equal(dense["linear.weight"], model.module.head.proj.weight.detach())
    assert torch.equal(dense["linear.bias"], model.module.head.proj.bias.detach())
    assert exportable(model.config, "qwen2_vl") == []
    assert exportable(model.config.replace(multi_vector_mask="instruction"), "qwen2_vl") == [
        "multi_vector_mask=instruction (MultiVectorMask keeps every real token of a query)"]


def assert_same_tokens(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        b = np.asarray(b.float().cpu() if torch.is_tensor(b) else b)
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5)


@needs_torchvision
@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_sentence_transformers_gives_encode_multi_token_vectors(family, tmp_path):
    from sentence_transformers import MultiVectorEncoder

    model = Embedder.tiny(family=family, multi_vector_dim=16, prompts=PROMPTS)
    model.save_pretrained(tmp_path / "saved")  # the export of a saved folder: the trained head travels with it
    assert export_model(str(tmp_path / "saved"), tmp_path / "exported") == []
    loaded = MultiVectorEncoder(str(tmp_path / "exported"), device="cpu")
    texts = ["a red circle", "two blue squares on a white page"]
    assert_same_tokens(model.encode_multi(texts, prompt_name="document"), loaded.encode_document(texts))
    assert_same_tokens(model.encode_multi(texts, prompt_name="query"), loaded.encode_query(texts))
    pages = [Item(None, image=RED), Item("a red circle", image=RED), Item("two", images=[RED, BLUE])]
    assert_same_tokens(model.encode_multi(pages), loaded.encode_document(
        [{"image": RED}, {"text": "a red circle", "image": RED}, {"text": "two", "image": [RED, BLUE]}]))
    assert Embedder.from_pretrained(str(tmp_path / "exported")).model_id == model.model_id  # and uniembed reloads it
