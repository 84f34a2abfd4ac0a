"""`uniembed eval --precision`: one encoding pass, every storage precision scored as `uniembed search` scores it.

The fixture's candidates come in near-duplicate pairs closer than one int8 step, so the precisions give
different, known answers: float32 finds 11 of 12 targets, int8 8, binary 7.
"""
import json

import numpy as np
import pytest
from eval_fakes import FakeEncoder, one_task_eval_args

from uniembed.cli.main import main
from uniembed.data.examples import EvalTask
from uniembed.eval.evaluate import evaluate
from uniembed.eval.precision import PrecisionScoring, precision_scorings, rescored
from uniembed.eval.runner import run_tasks
from uniembed.errors import ConfigError
from uniembed.inputs import Item

COUNT, DIM = 12, 16


def fixture_vectors() -> tuple[np.ndarray, np.ndarray]:
    """Queries and candidates: candidate i and i + 6 are one base vector nudged twice; query i is candidate i nudged."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=(COUNT // 2, DIM))
    candidates = np.concatenate([base + rng.normal(scale=0.01, size=base.shape),
                                 base + rng.normal(scale=0.01, size=base.shape)])
    candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
    queries = candidates + rng.normal(scale=0.004, size=candidates.shape)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return queries.astype(np.float32), candidates.astype(np.float32)


class VectorEncoder(FakeEncoder):
    """Returns the fixture's vector of each item (keyed by its text)."""

    def __init__(self) -> None:
        super().__init__()
        queries, candidates = fixture_vectors()
        self.table = {**{f"q{i}": v for i, v in enumerate(queries)}, **{f"c{i}": v for i, v in enumerate(candidates)}}

    def vector(self, item: Item) -> np.ndarray:
        return self.table[item.text]


def fixture_tasks() -> list[EvalTask]:
    queries = [Item(text=f"q{i}") for i in range(COUNT)]
    candidates = [Item(text=f"c{i}") for i in range(COUNT)]
    qrels = [{i: 1.0} for i in range(COUNT)]
    return [EvalTask("pool", queries, candidates, qrels, metric="hit@1", meta_task="retrieval", modality_group="text"),
            EvalTask("lists", queries, candidates, qrels, metric="hit@1", candidate_lists=[list(range(COUNT))] * COUNT,
                     meta_task="retrieval", modality_group="text")]


def hand_int8(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Scores by hand: each dimension's candidate range in 255 steps, candidates rounded to a step, queries float."""
    low, high = candidates.min(axis=0).astype(np.float64), candidates.max(axis=0).astype(np.float64)
    step = (high - low) / 255
    stored = low + np.clip(np.rint((candidates - low) / step), 0, 255) * step
    return queries.astype(np.float64) @ stored.T


def hand_binary(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Scores by hand: D - 2 x the Hamming distance between the sign bits."""
    hamming = ((queries[:, None, :] > 0) != (candidates[None, :, :] > 0)).sum(axis=2)
    return DIM - 2.0 * hamming


def ties_at_random(scores: np.ndarray) -> np.ndarray:
    """Equal binary scores ordered by a seed-0 random draw per candidate (below the step of 2), not by position."""
    return scores + np.random.default_rng(0).random(scores.shape[1], dtype=np.float32)


def hit_at_1(scores: np.ndarray) -> float:
    return 100.0 * float(np.mean(np.argmax(scores, axis=1) == np.arange(len(scores))))  # ties: the first candidate


def test_each_precision_scores_as_quantised_by_hand_and_float32_equals_the_plain_scores():
    encoder = VectorEncoder()
    run = run_tasks(encoder, fixture_tasks(), progress=False, precisions=("float32", "int8", "binary"))
    assert encoder.calls == 1  # one encoding pass for every precision
    grid = run.by_precision[None]
    assert [r.metrics for r in grid["float32"]] == [r.metrics for r in run.tasks]  # exactly the plain scores
    queries, candidates = fixture_vectors()
    want = {"float32": hit_at_1(queries @ candidates.T), "int8": hit_at_1(hand_int8(queries, candidates)),
            "binary": hit_at_1(ties_at_random(hand_binary(queries, candidates)))}
    assert want == pytest.approx({"float32": 100 * 11 / 12, "int8": 100 * 8 / 12, "binary": 100 * 7 / 12})
    for name, results in grid.items():
        for result in results:  # the global pool (FAISS) and the candidate lists give the same answer
            assert result.metrics["hit@1"] == pytest.approx(want[name]), (name, result.name)
    scored_queries, scored_pool = PrecisionScoring("binary").vectors(queries, candidates)
    np.testing.assert_array_equal(np.floor(scored_queries @ scored_pool.T), hand_binary(queries, candidates))
    scored_queries, scored_pool = PrecisionScoring("int8").vectors(queries, candidates)
    np.testing.assert_allclose(scored_queries @ scored_pool.T, hand_int8(queries, candidates), atol=1e-6)
    ranks = 1 + (hand_int8(queries, candidates) > np.diag(hand_int8(queries, candidates))[:, None]).sum(axis=1)
    assert grid["int8"][0].metrics["mrr@10"] == pytest.approx(100 * np.mean(1 / ranks))


def test_equal_hamming_distances_do_not_favour_the_first_candidate():
    """Every candidate has the query's sign bits: position order would give the gold (index 0) every hit."""
    rng = np.random.default_rng(1)
    query = np.abs(rng.normal(size=(1, DIM))).astype(np.float32)
    pool = np.abs(rng.normal(size=(COUNT, DIM))).astype(np.float32)
    scored_query, scored_pool = PrecisionScoring("binary").vectors(query, pool)
    scores = (scored_query @ scored_pool.T)[0]
    assert np.all(np.floor(scores) == DIM) and np.argmax(scores) != 0
    np.testing.assert_array_equal(np.argsort(-scores), np.argsort(-np.random.default_rng(0).random(COUNT, dtype=np.float32)))


def test_rescoring_the_whole_pool_gives_the_float_ranking_and_a_shallow_one_mends_part():
    run = run_tasks(VectorEncoder(), fixture_tasks(), progress=False, precisions=("binary", "int8"), rescore=2)
    grid = run.by_precision[None]
    assert sorted(grid) == ["binary", "binary+rescore2", "int8", "int8+rescore2"]
    for name in ("binary+rescore2", "int8+rescore2"):  # 2 x 10 candidates cover the pool of 12
        for got, want in zip(grid[name], run.tasks, strict=True):
            assert got.metrics == pytest.approx(want.metrics), (name, got.name)
        assert grid[name.split("+")[0]][0].score < grid[name][0].score  # rescoring changed something
    scores = np.array([[0.5, 0.9, 0.1, -np.inf], [0.3, 0.2, 0.1, 0.0]])
    exact = np.array([[0.8, 0.2, 0.7, 0.0], [0.0, 0.5, 0.9, 0.1]])
    order = np.argsort(-rescored(scores, exact, depth=2), axis=1, kind="stable")
    assert order.tolist() == [[0, 1, 2, 3], [1, 0, 2, 3]]  # the top 2 re-ranked, the rest in quantised order
    assert rescored(scores, exact, depth=2)[0, 3] == -np.inf


def test_width_by_precision_grid_in_results_json_and_reports(tmp_path):
    tasks = fixture_tasks()
    evaluation = evaluate(VectorEncoder(), "synthetic", tmp_path, tmp_path / "out", tasks=tasks, progress=False,
                          dimensions=(8,), precisions=("float32", "binary"), rescore=4)
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload == evaluation.payload
    assert sorted(payload["by_precision"]) == ["binary", "binary+rescore4", "float32"]
    assert payload["by_precision"]["float32"]["scores"] == payload["scores"]
    cell = payload["by_dimension"]["8"]["by_precision"]["binary"]
    assert sorted(cell) == ["groups", "overall", "scores"]
    cut = run_tasks(VectorEncoder(), tasks, progress=False, dimensions=(8,), precisions=("binary",))
    assert cell["scores"]["pool"] == pytest.approx(cut.by_precision[8]["binary"][0].score, abs=1e-4)
    assert payload["by_dimension"]["8"]["by_precision"]["float32"]["scores"] == payload["by_dimension"]["8"]["scores"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## By precision" in report and "| 8 | binary+rescore4 |" in report and "| full | float32 |" in report
    assert "<h2>By precision</h2>" in (tmp_path / "out" / "report.html").read_text()
    plain = evaluate(VectorEncoder(), "synthetic", tmp_path, tmp_path / "plain", tasks=tasks, progress=False)
    assert "by_precision" not in plain.payload and "By precision" not in (tmp_path / "plain" / "report.md").read_text()


def test_refusals():
    with pytest.raises(ConfigError, match="'int4' is not one of float32"):
        precision_scorings(["int4"])
    with pytest.raises(ConfigError, match="--rescore -1"):
        precision_scorings(["binary"], rescore=-1)
    assert PrecisionScoring("float32").vectors is not None and PrecisionScoring("binary", 4).name == "binary+rescore4"


def test_cli_precision_with_the_tiny_model(tmp_path, tiny_embedder, capsys):
    args = one_task_eval_args(tmp_path, tiny_embedder)
    assert main(args + ["--precision", "int8,binary", "--rescore", "4", "--dimensions", "32"]) == 0
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(payload["by_precision"]) == ["int8", "int8+rescore4", "binary", "binary+rescore4"]
    assert list(payload["by_dimension"]["32"]["by_precision"]) == list(payload["by_precision"])
    assert payload["encoding"]["encoded"] == 4 and "overall@32/binary" in capsys.readouterr().out
    assert main(args + ["--rescore", "4"]) == 2
    assert "pass --precision too" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--precision", "int8,int4"])
