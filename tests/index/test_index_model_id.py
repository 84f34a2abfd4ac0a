"""The model id travels from the embeddings folder to index.json to `uniembed search`, whose warning goes to
stderr (so `--json` stays valid JSON); hits carry the metadata stored beside the embeddings (issue 19, point 5)."""
from __future__ import annotations

import json

import pytest

from uniembed.cli.main import main
from uniembed.index import ShardedIndex, embeddings_model_id, write_embeddings

TEXTS = {"d0": "a red circle at the left", "d1": "two blue squares", "d2": "a green triangle above a star"}


@pytest.fixture
def corpus(tmp_path, tiny_embedder):
    tiny_embedder.save_pretrained(tmp_path / "model")
    emb = tmp_path / "emb"
    write_embeddings(emb, list(TEXTS), tiny_embedder.encode(list(TEXTS.values())))
    (emb / "metadata.jsonl").write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in TEXTS.items()))
    return tmp_path


def _build_and_search(root, capsys):
    assert main(["index", "build", "--embeddings", str(root / "emb"), "--out", str(root / "idx")]) == 0
    capsys.readouterr()
    assert main(["search", "--index", str(root / "idx"), "--model", str(root / "model"),
                 "--query", "two blue squares", "--top", "2", "--json"]) == 0
    return capsys.readouterr()


def test_a_model_mismatch_is_warned_on_stderr_and_json_stays_valid(corpus, capsys):
    (corpus / "emb" / "info.json").write_text(json.dumps({"model_id": "other-model-123", "model": "x"}))  # encode's
    out = _build_and_search(corpus, capsys)
    assert ShardedIndex(corpus / "idx").model_id == "other-model-123"
    hits = json.loads(out.out)  # the whole of stdout is one JSON document
    assert hits[0]["id"] == "d1" and hits[0]["metadata"] == {"text": "two blue squares"}
    assert "warning" in out.err and "other-model-123" in out.err and "warning" not in out.out


def test_the_same_model_searches_without_a_warning(corpus, capsys, tiny_embedder):
    (corpus / "emb" / "model.json").write_text(json.dumps({"model_id": tiny_embedder.model_id,
                                                           "model_path": str(corpus / "model")}))
    out = _build_and_search(corpus, capsys)
    assert ShardedIndex(corpus / "idx").model_id == tiny_embedder.model_id
    assert "warning" not in out.err and json.loads(out.out)[0]["id"] == "d1"


def test_the_model_id_may_come_from_the_manifest(tmp_path):
    write_embeddings(tmp_path, ["a"], [[1.0, 0.0]])
    assert embeddings_model_id(tmp_path) is None
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "a", "shard": 0, "row": 0, "model_id": "m-1"}) + "\n")
    assert embeddings_model_id(tmp_path) == "m-1"
