"""`uniembed encode/index build/search --precision ... --rescore K` end to end on the tiny model (issue 25)."""
import json

import numpy as np

from uniembed.cli.main import main
from uniembed.index import ShardedIndex, read_embeddings

TEXTS = [f"item {i}: {word}" for i, word in enumerate(
    ["red", "square", "blue", "circle", "green", "triangle", "yellow", "star", "purple", "hexagon", "orange", "line", "black", "dot", "white", "cross"])]


def _search(index, capsys, *extra):
    capsys.readouterr()
    code = main(["search", "--index", str(index), "--model", "tiny", "--query", "a blue circle", "--top", "5",
                 "--json", *extra])
    out = capsys.readouterr()
    return code, out


def test_binary_encode_index_search_with_rescore_gives_the_float_ranking(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"t{i}", "text": text}) + "\n" for i, text in enumerate(TEXTS)))
    emb = tmp_path / "emb"
    assert main(["encode", "--model", "tiny", "--input", str(rows), "--out", str(emb), "--no-progress",
                 "--precision", "binary", "--shard-size", "6"]) == 0
    info = json.loads((emb / "info.json").read_text())
    assert info["precision"] == "binary"
    packed = np.concatenate([np.load(emb / "binary" / f"shard-0000{i}.npy") for i in range(3)])
    assert packed.shape == (len(TEXTS), 64 // 8) and packed.dtype == np.int8  # dim/8 bytes per vector

    assert main(["index", "build", "--embeddings", str(emb), "--out", str(tmp_path / "bin"), "--shard-size", "7"]) == 0
    assert main(["index", "build", "--embeddings", str(emb), "--out", str(tmp_path / "flat"),
                 "--precision", "float32"]) == 0
    index = ShardedIndex(tmp_path / "bin")
    assert index.precision == "binary" and index.rescore_precision == "float32" and index.factory == "BFlat"
    assert (tmp_path / "bin" / "rescore-00000.npy").exists()

    code, out = _search(tmp_path / "bin", capsys, "--rescore", "4")  # 4 x 5 >= 16 items: every one is re-scored
    assert code == 0, out.err
    rescored = json.loads(out.out)
    code, out = _search(tmp_path / "flat", capsys)
    assert code == 0, out.err
    exact = json.loads(out.out)
    assert [h["id"] for h in rescored] == [h["id"] for h in exact]
    np.testing.assert_allclose([h["score"] for h in rescored], [h["score"] for h in exact], atol=1e-5)
    ids, vectors = read_embeddings(emb)
    assert set(ids) == {f"t{i}" for i in range(len(TEXTS))} and vectors.dtype == np.float32  # floats kept

    code, out = _search(tmp_path / "bin", capsys, "--precision", "int8")
    assert code == 2 and "holds binary vectors but the queries are int8" in out.err
    code, out = _search(tmp_path / "flat", capsys, "--rescore", "2")
    assert code == 2 and "--rescore-vectors" in out.err
