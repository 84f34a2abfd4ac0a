"""Each family builds its own tiny model (`Backbone.build_tiny`), bit-identical to what `models/tiny.py` built
before the move (hashes first computed on main at e69a2c7, spec `tiny:<family>:tiny:1`; recomputed once when the
tokenizer's word merges were fixed, which changed the vocabulary size and so the embedding matrix)."""
from __future__ import annotations

import hashlib

import pytest

from uniembed.errors import ConfigError
from uniembed.models.backbones import backbone_for
from uniembed.models.embedder import Embedder
from uniembed.models.tiny import _WORDS, TINY_FAMILIES, build_tokenizer, parse_tiny_spec

STATE_DICT_SHA256 = {
    "qwen2_vl": "03dcd841d49f2061",
    "qwen3_vl": "8a265b652cf40e10",
    "llava_onevision": "26631be3dc231955",
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


def test_every_listed_word_is_one_token_in_each_form():
    """Merges apply by rank, so a word's prefix chain alone leaves it split (" large" was " l", "ar", "g", "e")."""
    tokenizer = build_tokenizer()
    forms = [form for word in _WORDS for form in (word, " " + word, word.capitalize(), " " + word.capitalize())]
    split = [form for form in forms if len(tokenizer(form, add_special_tokens=False)["input_ids"]) != 1]
    assert split == []
    sentence = "Represent the given image with the following question: What is left of the large orange square?"
    assert len(tokenizer(sentence)["input_ids"]) == 18
    assert tokenizer.decode(tokenizer("pelpo, 1721!")["input_ids"]) == "pelpo, 1721!"  # the rest falls back to bytes
