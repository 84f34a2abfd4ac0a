"""`uniembed encode / index build --pool-factor / search` on a multi-vector (late-interaction) model end to end,
and the refusals between single- and multi-vector models, embeddings and indexes (issue 25.3)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from uniembed.cli.main import main
from uniembed.index.multistore import read_multi_embeddings
from uniembed.inputs import Item
from uniembed.losses.maxsim import maxsim, pad_tokens

TEXTS = ["a red circle", "a blue square on white", "green", "two yellow triangles and a circle", "blue",
         "a black line", "an orange star in the corner"]


@pytest.fixture(scope="module")
def multi_model(tmp_path_factory):
    from uniembed import Embedder

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("colqwen") / "model"
    Embedder.tiny(seed=0, multi_vector_dim=16).save_pretrained(path)
    return path


def encode(tmp_path, model, *extra):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"d{i}", "text": text, "metadata": {"n": i}}) + "\n"
                            for i, text in enumerate(TEXTS)))
    return main(["encode", "--model", str(model), "--input", str(rows), "--out", str(tmp_path / "emb"),
                 "--no-progress", "--shard-size", "3", *extra])


def test_multi_vector_encode_index_search_equals_brute_force_maxsim(multi_model, tmp_path, capsys):
    from uniembed import Embedder

    assert encode(tmp_path, multi_model) == 0  # --vectors auto: the model has a late-interaction head
    info = json.loads((tmp_path / "emb" / "info.json").read_text())
    assert info["kind"] == "multi_vector" and info["dimension"] == 16
    assert main(["index", "build", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "index")]) == 0
    assert json.loads((tmp_path / "index" / "index.json").read_text())["pool_factor"] == 1
    capsys.readouterr()
    assert main(["search", "--index", str(tmp_path / "index"), "--model", str(multi_model), "--query", "a blue circle",
                 "--top", "7", "--token-k", "1000", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    ids, items = read_multi_embeddings(tmp_path / "emb")
    model = Embedder.from_pretrained(multi_model, device="cpu")
    prompt = "query" if "query" in model.config.prompts else None
    query = model.encode_multi([Item(text="a blue circle")], prompt_name=prompt)[0]
    q, q_mask = pad_tokens([query])
    d, d_mask = pad_tokens(items)
    brute = maxsim(q, q_mask, d, d_mask)[0].numpy()
    order = np.lexsort((np.arange(len(ids)), -brute))
    assert [hit["id"] for hit in hits] == [ids[i] for i in order]
    np.testing.assert_allclose([hit["score"] for hit in hits], brute[order], rtol=1e-4)
    assert hits[0]["metadata"]["n"] == int(hits[0]["id"][1:])
    assert main(["index", "build", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "pooled"),
                 "--pool-factor", "2", "--precision", "float16"]) == 0
    pooled = json.loads((tmp_path / "pooled" / "index.json").read_text())
    assert pooled["pool_factor"] == 2 and pooled["tokens"] == sum(max(len(t) // 2, 1) for t in items)


def test_single_and_multi_vector_cli_refusals_name_both(multi_model, tmp_path, capsys):
    assert encode(tmp_path, "tiny", "--vectors", "multi") == 2
    assert "single-vector" in capsys.readouterr().err
    assert encode(tmp_path, "tiny") == 0
    assert main(["index", "build", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "x"),
                 "--pool-factor", "2"]) == 2
    assert "single-vector embeddings" in capsys.readouterr().err
    assert main(["index", "build", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "single")]) == 0
    (tmp_path / "emb").rename(tmp_path / "single-emb")
    assert encode(tmp_path, multi_model) == 0
    assert main(["index", "build", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "multi")]) == 0
    capsys.readouterr()
    assert main(["search", "--index", str(tmp_path / "multi"), "--model", "tiny", "--query", "blue"]) == 2
    err = capsys.readouterr().err
    assert "multi-vector index" in err and "single-vector" in err
    assert encode(tmp_path, multi_model, "--vectors", "single") == 0  # the same directory, now one vector per item
    assert json.loads((tmp_path / "emb" / "info.json").read_text()).get("kind") is None
