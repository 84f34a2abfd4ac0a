"""The beir suite on a generated BEIR-style folder whose answers are known (fake colour-word encoder), its
errors that name file, line and id, and `uniembed eval --suite beir` (with --check) on the tiny model."""
import json
import math

import pytest
from eval_fakes import FakeEncoder, colour_image

from uniembed.cli.main import main
from uniembed.errors import ConfigError, InputError
from uniembed.eval.evaluate import evaluate
from uniembed.eval.suites import SuiteOptions, get_suite

CORPUS = [
    {"_id": "d1", "title": "red apple", "text": "fruit"},
    {"_id": "d2", "title": "", "text": "blue sky"},
    {"_id": "d3", "title": "green", "text": "grass field"},
    {"_id": "d4", "title": "", "text": "", "image": "img/red.png"},
    {"_id": "d5", "title": "", "text": "ocean", "video": "frames"},
]
QUERIES = [
    {"_id": "q1", "text": "red apple fruit"},  # identical to d1 (title + " " + text): must rank it first
    {"_id": "q2", "text": "green sky"},  # graded: d2 (grade 1) ranks above d3 (grade 2)
    {"_id": "q3", "text": "", "image": "img/red.png", "instruction": "Find the same picture"},
    {"_id": "q4", "text": "not in the qrels"},
    {"_id": "q5", "text": "ocean blue"},  # the video document: "ocean" + two blue frames
]
QRELS = [("q1", "d1", 1), ("q2", "d3", 2), ("q2", "d2", 1), ("q2", "d1", 0), ("q3", "d4", 1), ("q5", "d5", 1)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_beir(root, corpus=CORPUS, queries=QUERIES, qrels=QRELS, split="test"):
    (root / "img").mkdir(parents=True, exist_ok=True)
    colour_image(root / "img" / "red.png", "red")
    (root / "frames").mkdir(exist_ok=True)
    for i in range(2):
        colour_image(root / "frames" / f"{i}.png", "blue")
    write_jsonl(root / "corpus.jsonl", corpus)
    write_jsonl(root / "queries.jsonl", queries)
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / f"{split}.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{c}\t{s}\n" for q, c, s in qrels))
    return root


def test_beir_scores_are_the_hand_computed_ones(tmp_path):
    evaluation = evaluate(FakeEncoder(), "beir", write_beir(tmp_path), progress=False)
    task = evaluation.tasks[0]
    assert task.name == "test" and not task.is_local and len(task.candidates) == 5
    assert task.query_ids == ["q1", "q2", "q3", "q5"]  # q4 has no qrels; d1's grade 0 for q2 is dropped
    assert task.qrels[1] == {2: 2.0, 1: 1.0}
    result = evaluation.results[0]
    # q2 ranks d2 (grade 1, cosine 1/2) above d3 (grade 2, cosine 1/sqrt(6)): DCG = 1 + 2/log2(3),
    # ideal DCG = 2 + 1/log2(3); the other three queries rank their one relevant document first.
    q2_ndcg = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert result.metric == "ndcg@10" and evaluation.payload["main_metric"]["test"] == "ndcg@10"
    assert result.score == pytest.approx(100 * (3 + q2_ndcg) / 4)
    assert result.metrics["recall@1"] == pytest.approx(100 * 3.5 / 4)
    for name in ("recall@5", "recall@10", "recall@100", "mrr@10"):
        assert result.metrics[name] == pytest.approx(100.0), name
    assert evaluation.payload["overall"] == pytest.approx(result.score)


def test_beir_splits_and_datasets(tmp_path):
    write_beir(tmp_path, split="dev")
    write_beir(tmp_path, qrels=[("q1", "d2", 1)], split="test")
    options = SuiteOptions()
    assert [t.name for t in get_suite("beir").load_tasks(tmp_path, options)] == ["test"]
    tasks = get_suite("beir").load_tasks(tmp_path, SuiteOptions(datasets=["dev", "test"]))
    assert [t.name for t in tasks] == ["dev", "test"]
    with pytest.raises(ConfigError, match="train"):
        get_suite("beir").load_tasks(tmp_path, SuiteOptions(datasets=["train"]))


@pytest.mark.parametrize("change, where, message", [
    (dict(qrels=QRELS + [("q1", "d9", 1)]), "qrels/test.tsv', row 8", "corpus-id 'd9' is not in corpus.jsonl"),
    (dict(qrels=[("q7", "d1", 1)]), "qrels/test.tsv', row 2", "query-id 'q7' is not in queries.jsonl"),
    (dict(corpus=CORPUS + [{"_id": "d6", "text": "no title"}]), "corpus.jsonl', row 6", "missing field(s) ['title']"),
    (dict(corpus=CORPUS + [dict(CORPUS[0])]), "corpus.jsonl', row 6", "_id 'd1' repeats line 1"),
    (dict(queries=QUERIES + [{"_id": "q6", "text": "x", "image": "img/none.png"}]), "queries.jsonl', row 6",
     "not found"),
])
def test_beir_bad_input_names_file_row_and_id(tmp_path, change, where, message):
    write_beir(tmp_path, **change)
    with pytest.raises(InputError) as caught:
        get_suite("beir").load_tasks(tmp_path)
    assert where in str(caught.value) and message in str(caught.value)


def test_beir_bad_json_missing_file_and_header(tmp_path):
    write_beir(tmp_path)
    with open(tmp_path / "queries.jsonl", "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(InputError, match=r"queries.jsonl', row 6: invalid JSON"):
        get_suite("beir").load_tasks(tmp_path)
    write_beir(tmp_path)
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    with pytest.raises(InputError, match="header query-id<TAB>corpus-id<TAB>score"):
        get_suite("beir").load_tasks(tmp_path)
    (tmp_path / "corpus.jsonl").unlink()
    with pytest.raises(InputError, match="corpus.jsonl not found.*BEIR-style folder holds"):
        get_suite("beir").load_tasks(tmp_path)


def test_beir_cli_run_cache_and_check(tmp_path, tiny_embedder, capsys):
    tiny_embedder.save_pretrained(tmp_path / "model")
    data = write_beir(tmp_path / "data")
    args = ["eval", "--model", str(tmp_path / "model"), "--suite", "beir", "--data", str(data),
            "--out", str(tmp_path / "out"), "--batch-size", "4"]
    assert main(args) == 0
    first = json.loads((tmp_path / "out" / "results.json").read_text())
    assert first["main_metric"] == {"test": "ndcg@10"} and 0.0 <= first["scores"]["test"] <= 100.0
    assert first["encoding"]["encoded"] > 0
    assert main(args) == 0  # the second run reads every vector from the cache
    second = json.loads((tmp_path / "out" / "results.json").read_text())
    assert second["encoding"]["encoded"] == 0 and second["scores"] == first["scores"]
    assert "ndcg@10" in (tmp_path / "out" / "report.md").read_text()
    capsys.readouterr()
    assert main(["eval", "--suite", "beir", "--data", str(data), "--check"]) == 0
    assert "[ok] test" in capsys.readouterr().out
    write_beir(data, qrels=[("q1", "d9", 1)])
    assert main(["eval", "--suite", "beir", "--data", str(data), "--check"]) == 1
    out = capsys.readouterr().out
    assert "[PROBLEM] test" in out and "corpus-id 'd9'" in out and "row 2" in out
