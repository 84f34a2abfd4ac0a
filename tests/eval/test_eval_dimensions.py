"""`uniembed eval --dimensions`: one encoding pass, every Matryoshka width scored from the cut vectors."""
import json

import numpy as np
import pytest
from eval_fakes import FakeEncoder, colour_image, one_task_eval_args

from uniembed.cli.main import main
from uniembed.data.examples import EvalTask
from uniembed.eval.evaluate import evaluate
from uniembed.eval.runner import run_tasks
from uniembed.inputs import Item

WORDS = ["red", "blue", "green", "yellow", "black", "white", "sky", "sea", "leaf", "sun", "coal", "snow"]


class CutEncoder(FakeEncoder):
    """The fake encoder's vectors cut to their first `width` coordinates and re-normalised (the reference)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def vector(self, item: Item) -> np.ndarray:
        cut = super().vector(item)[:self.width].astype(np.float64)
        norm = np.linalg.norm(cut)
        return (cut / norm if norm else cut).astype(np.float32)


def tasks(tmp_path):
    images = {c: str(colour_image(tmp_path / f"{c}.png", c)) for c in ("red", "green", "blue", "yellow")}
    queries = [Item(text=f"{w} {WORDS[(i + 3) % len(WORDS)]}") for i, w in enumerate(WORDS)]
    candidates = [Item(text=f"{w} {WORDS[(i + 5) % len(WORDS)]} thing") for i, w in enumerate(WORDS)]
    pool = EvalTask("pool", queries, candidates, [{i: 1.0} for i in range(len(WORDS))], metric="hit@1",
                    meta_task="retrieval", modality_group="text")
    pictures = [Item(image=images[c]) for c in ("red", "blue", "green", "yellow")]
    local = EvalTask("local", [Item(text="red"), Item(text="blue"), Item(text="green")], pictures, [{0: 1.0}] * 3,
                     candidate_lists=[[0, 1], [1, 2], [2, 3]], meta_task="retrieval", modality_group="image")
    return [pool, local]


def test_each_width_scores_as_vectors_cut_and_renormalised_and_encodes_once(tmp_path):
    encoder = FakeEncoder()
    run = run_tasks(encoder, tasks(tmp_path), progress=False, dimensions=(64, 16, 4))
    plain = FakeEncoder()
    run_tasks(plain, tasks(tmp_path), progress=False)
    assert encoder.calls == plain.calls and len(encoder.encoded) == len(plain.encoded)  # no re-encoding
    assert [r.metrics for r in run.by_dimension[64]] == [r.metrics for r in run.tasks]  # full width: no cut
    for width in (16, 4):
        reference = run_tasks(CutEncoder(width), tasks(tmp_path), progress=False).tasks
        for got, want in zip(run.by_dimension[width], reference, strict=True):
            assert got.metrics == pytest.approx(want.metrics)
    assert run.by_dimension[4][0].score < run.tasks[0].score  # the cut matters: the test can tell widths apart


def test_results_json_and_reports_get_by_dimension(tmp_path):
    evaluation = evaluate(FakeEncoder(), "synthetic", tmp_path, tmp_path / "out", tasks=tasks(tmp_path),
                          progress=False, dimensions=(16, 4))
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload == evaluation.payload and sorted(payload["by_dimension"]) == ["16", "4"]
    entry = payload["by_dimension"]["4"]
    assert sorted(entry) == ["groups", "overall", "scores"] and sorted(entry["scores"]) == ["local", "pool"]
    assert entry["overall"] == pytest.approx(sum(entry["scores"].values()) / 2, abs=1e-3)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>By dimension</h2>" in html and "<td>4</td>" in html and "<td>full</td><td>" in html
    assert "| 16 |" in (tmp_path / "out" / "report.md").read_text()
    plain = evaluate(FakeEncoder(), "synthetic", tmp_path, tmp_path / "plain", tasks=tasks(tmp_path), progress=False)
    assert "by_dimension" not in plain.payload
    assert "By dimension" not in (tmp_path / "plain" / "report.html").read_text()


def test_cli_dimensions_with_the_tiny_model(tmp_path, tiny_embedder, capsys):
    args = one_task_eval_args(tmp_path, tiny_embedder)
    assert main(args + ["--dimensions", "8,32"]) == 0
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(payload["by_dimension"]) == ["32", "8"] and payload["encoding"]["encoded"] == 4
    assert "overall@8" in capsys.readouterr().out
    assert main(args + ["--dimensions", "65"]) == 2
    assert "--dimensions 65 is outside the model's 1..64 dimensions" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--dimensions", "8,x"])


def test_table_cut_renormalises_only_unit_vectors():
    from uniembed.encoding import EmbeddingTable

    rng = np.random.default_rng(0)
    unit = rng.normal(size=(5, 8)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    cut = EmbeddingTable(list("abcde"), unit).truncated(3)
    np.testing.assert_allclose(cut.lookup(["c", "a"]), unit[[2, 0], :3] / np.linalg.norm(unit[[2, 0], :3], axis=1,
                                                                                          keepdims=True), rtol=1e-6)
    raw = 3 * unit  # a model that does not normalise: the plain prefix, as Embedder.encode(truncate_dim=) gives
    np.testing.assert_array_equal(EmbeddingTable(list("abcde"), raw).truncated(3).vectors, raw[:, :3])
