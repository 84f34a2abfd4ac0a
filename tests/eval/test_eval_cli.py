"""`uniembed eval` and `uniembed search` end to end with the tiny model."""
import json

import numpy as np
from eval_fakes import one_task_eval_args

from uniembed.cli.main import main
from uniembed.index import write_embeddings


def test_eval_cli_writes_reports_and_reuses_its_cache(tmp_path, tiny_embedder, capsys):
    args = one_task_eval_args(tmp_path, tiny_embedder)
    assert main(args) == 0
    first = json.loads((tmp_path / "out" / "results.json").read_text())
    assert first["encoding"]["encoded"] == 4 and first["scores"]["t1"] in (0.0, 100.0)
    assert first["model"] == tiny_embedder.model_id
    assert main(args) == 0
    second = json.loads((tmp_path / "out" / "results.json").read_text())
    assert second["encoding"]["encoded"] == 0 and second["scores"] == first["scores"]
    assert "overall" in capsys.readouterr().out
    unknown_dataset = args + ["--datasets", "t2"]
    assert main(unknown_dataset) == 2 and "no data set(s) ['t2']" in capsys.readouterr().err


def test_search_cli_finds_the_identical_document(tmp_path, tiny_embedder, capsys):
    tiny_embedder.save_pretrained(tmp_path / "model")
    texts = ["a red circle at the left", "two blue squares", "a green triangle above a star"]
    write_embeddings(tmp_path / "emb", ["d0", "d1", "d2"], tiny_embedder.encode(texts))
    assert main(["index", "build", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "idx")]) == 0
    assert main(["search", "--index", str(tmp_path / "idx"), "--model", str(tmp_path / "model"),
                 "--query", "two blue squares", "--top", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [h["rank"] for h in hits] == [1, 2] and hits[0]["id"] == "d1"
    assert abs(hits[0]["score"] - 1.0) < 1e-4
    assert main(["search", "--index", str(tmp_path / "idx"), "--model", str(tmp_path / "model")]) == 2
    assert np.isfinite(hits[1]["score"])
