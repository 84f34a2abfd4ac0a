"""One loading door (issue 22): `Embedder.from_pretrained` and `Reranker.from_pretrained` take checkpoint
directories and `tiny[:family][:size[:seed]]` specs and place the model; CLI verbs do not import each other."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import uniembed.cli
from uniembed import Embedder, Reranker
from uniembed.models.loading import resolve_device, tiny_spec


def test_tiny_specs_load_through_from_pretrained(tiny_embedder):
    model = Embedder.from_pretrained("tiny", device="cpu")
    np.testing.assert_array_equal(model.encode(["a red circle"]), tiny_embedder.encode(["a red circle"]))
    assert Embedder.from_pretrained("tiny:mini:2").source == "tiny:mini:seed=2"
    qwen3 = Embedder.from_pretrained("tiny:qwen3_vl", profile="vlm2vec-v1", max_length=77)
    assert qwen3.backbone.model.config.model_type == "qwen3_vl" and qwen3.source == "tiny:qwen3_vl:tiny:seed=0"
    assert qwen3.config.profile == "vlm2vec-v1" and qwen3.config.max_length == 77


def test_device_auto_picks_cuda_only_when_present():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    assert Embedder.from_pretrained("tiny", device="auto").device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_only_tiny_and_tiny_colon_are_specs(tmp_path):
    assert tiny_spec("tiny") == ("qwen2_vl", "tiny", 0)
    assert tiny_spec("tiny:llava_onevision:mini:5") == ("llava_onevision", "mini", 5)
    assert tiny_spec("tiny_model") is None and tiny_spec(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="model directory 'tiny_model' not found"):
        Embedder.from_pretrained("tiny_model")  # was silently a random tiny model


def test_reranker_loads_tiny_specs_with_options():
    reranker = Reranker.from_pretrained("tiny:qwen3_vl:tiny:1", device="cpu", question="Relevant?")
    assert reranker.backbone.model.config.model_type == "qwen3_vl" and reranker.config.question == "Relevant?"
    reference = Reranker.tiny(seed=1, family="qwen3_vl")
    assert reranker.items.model_id == reference.items.model_id


def test_cli_verbs_import_no_other_verb():
    """Apps do not import each other: a verb module may import only `cli/common.py` of the CLI."""
    folder = Path(uniembed.cli.__file__).parent
    verbs = {path.stem for path in folder.glob("*.py")} - {"__init__", "common", "main"}
    for verb in sorted(verbs):
        tree = ast.parse((folder / f"{verb}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                named = {node.module} if node.module else {alias.name for alias in node.names}
                assert named <= {"common"}, f"cli/{verb}.py imports cli/{sorted(named)}"
