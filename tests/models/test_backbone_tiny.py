"""Each family builds its own tiny model (`Backbone.build_tiny`), bit-identical to what `models/tiny.py` built
before the move (hashes computed once on main at e69a2c7, spec `tiny:<family>:tiny:1`)."""
from __future__ import annotations

import hashlib

import pytest

from uniembed.errors import ConfigError
from uniembed.models.backbones import backbone_for
from uniembed.models.embedder import Embedder
from uniembed.models.tiny import TINY_FAMILIES, parse_tiny_spec

STATE_DICT_SHA256 = {
    "qwen2_vl": "1560b336e4d94a9e",
    "qwen3_vl": "315bfc5b1f0cac2e",
    "llava_onevision": "3a242624bf35799b",
}


def state_dict_hash(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_tiny_weights_are_bit_identical_to_the_pre_move_builder(family):
    embedder = Embedder.tiny(seed=1, size="tiny", family=family)
    assert state_dict_hash(embedder.backbone.model) == STATE_DICT_SHA256[family]


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_each_tiny_family_is_built_by_its_own_backbone(family):
    model, tokenizer, image_processor, defaults = backbone_for(family).build_tiny("tiny", 0)
    assert model.config.model_type == family
    assert defaults["max_length"] >= 512 and tokenizer.pad_token == "<|endoftext|>"


def test_unknown_tiny_family_names_the_known_ones():
    with pytest.raises(ConfigError, match="qwen3_vl"):
        Embedder.tiny(family="qwen2_5_vl")
    with pytest.raises(ConfigError, match="small"):
        Embedder.tiny(size="huge")
    assert parse_tiny_spec("tiny:llava_onevision:mini:2") == ("llava_onevision", "mini", 2)
