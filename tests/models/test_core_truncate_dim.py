"""`Embedder.encode(truncate_dim=d)` (issue 25, Matryoshka): the first d coordinates, re-normalised when the
model normalises; a width the model does not have is refused."""
from __future__ import annotations

import numpy as np
import pytest

from uniembed import ConfigError

TEXTS = ["a red circle", "a blue square on grey", "x y z"]


def test_truncation_equals_renormalised_slicing(tiny_embedder):
    full = tiny_embedder.encode(TEXTS)
    cut = tiny_embedder.encode(TEXTS, truncate_dim=16)
    reference = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    assert cut.shape == (3, 16) and cut.dtype == np.float32
    np.testing.assert_allclose(cut, reference, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-6)


def test_truncation_of_unnormalised_vectors_is_plain_slicing(tiny_embedder):
    raw = tiny_embedder.encode(TEXTS, normalize=False)
    cut = tiny_embedder.encode(TEXTS, normalize=False, truncate_dim=8, convert_to="tensor")
    np.testing.assert_allclose(cut.numpy(), raw[:, :8], atol=1e-6)


def test_full_width_is_no_cut_and_other_widths_are_refused(tiny_embedder):
    dimension = tiny_embedder.dimension
    np.testing.assert_array_equal(tiny_embedder.encode(TEXTS, truncate_dim=dimension), tiny_embedder.encode(TEXTS))
    with pytest.raises(ConfigError, match=rf"truncate_dim={dimension + 1} is outside the model's 1..{dimension}"):
        tiny_embedder.encode(TEXTS, truncate_dim=dimension + 1)
    with pytest.raises(ConfigError, match="truncate_dim=0"):
        tiny_embedder.encode(TEXTS, truncate_dim=0)


def test_encode_index_and_search_with_dimensions(tmp_path, tiny_embedder, capsys):
    import json

    from uniembed.cli.main import main
    from uniembed.index.store import read_embeddings

    rows = [{"id": f"t{i}", "text": text} for i, text in enumerate(TEXTS)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "emb"
    args = ["encode", "--model", "tiny", "--input", str(tmp_path / "rows.jsonl"), "--out", str(out), "--no-progress"]
    assert main([*args, "--dimensions", "16"]) == 0
    ids, vectors = read_embeddings(out)
    np.testing.assert_allclose(vectors, tiny_embedder.encode(TEXTS, truncate_dim=16), atol=1e-6)
    assert json.loads((out / "info.json").read_text())["dimension"] == 16
    capsys.readouterr()
    assert main([*args, "--dimensions", "32"]) == 0  # another width redoes every shard, never mixes widths
    assert capsys.readouterr().out.startswith("encoded 3 items, 0 already done")
    assert read_embeddings(out)[1].shape == (3, 32)
    assert main(["index", "build", "--embeddings", str(out), "--out", str(tmp_path / "index")]) == 0
    capsys.readouterr()
    assert main(["search", "--index", str(tmp_path / "index"), "--model", "tiny", "--query", TEXTS[1],
                 "--dimensions", "32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "t1"
    assert main([*args, "--dimensions", "65"]) == 2
    assert "--dimensions=65 is outside the model's 1..64 dimensions" in capsys.readouterr().err
