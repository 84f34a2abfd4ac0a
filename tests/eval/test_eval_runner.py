"""Runner, cache and reports on tasks whose scores are known in advance (fake colour-word encoder)."""
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from eval_fakes import FakeEncoder, colour_image

from uniembed.data.examples import EvalTask
from uniembed.encoding import EmbeddingCache, encode_distinct
from uniembed.encoding.distinct import length_batches
from uniembed.eval.evaluate import evaluate
from uniembed.eval.runner import run_tasks
from uniembed.inputs import Item


@pytest.fixture()
def images(tmp_path):
    return {c: str(colour_image(tmp_path / f"{c}.png", c)) for c in ("red", "green", "blue", "yellow")}


def local_task(images, name="local"):
    candidates = [Item(image=images[c]) for c in ("red", "blue", "green", "yellow")]
    # "green" query: gold (index 0 of its list) is the red image, the green one outranks it -> miss
    lists = [[0, 1], [1, 2], [0, 2]]
    queries = [Item(text="red", instruction="find"), Item(text="blue", instruction="find"),
               Item(text="green", instruction="find")]
    return EvalTask(name, queries, candidates, [{0: 1.0}] * 3, candidate_lists=lists, meta_task="retrieval",
                    modality_group="image", in_distribution=True, chance=0.5)


def global_task(images, name="global"):
    candidates = [Item(image=images[c]) for c in ("red", "blue", "green")]
    queries = [Item(text="red", instruction="find"), Item(text="blue", instruction="find")]
    return EvalTask(name, queries, candidates, [{0: 1.0}, {1: 1.0}], metric="hit@1", meta_task="retrieval",
                    modality_group="image", in_distribution=False)


def test_local_and_global_scores_known_in_advance(images):
    run = run_tasks(FakeEncoder(), [local_task(images), global_task(images)], progress=False)
    local, pool = run.tasks
    assert local.score == pytest.approx(200 / 3)
    assert local.metrics["hit@5"] == pytest.approx(100.0)
    assert local.chance == pytest.approx(50.0)
    assert pool.score == pytest.approx(100.0)
    assert pool.metrics["mrr@10"] == pytest.approx(100.0)
    assert local.examples[2] == {"query": 2, "top": [2, 0], "gold": [0]}
    assert pool.examples[1]["top"][0] == 1


def test_task_that_must_score_zero(images):
    candidates = [Item(image=images["red"]), Item(image=images["blue"])]
    task = EvalTask("zero", [Item(text="red"), Item(text="blue")], candidates, [{1: 1.0}, {0: 1.0}])
    assert run_tasks(FakeEncoder(), [task], progress=False).tasks[0].score == 0.0


def test_each_distinct_item_is_encoded_once_across_tasks(images):
    encoder = FakeEncoder()
    run = run_tasks(encoder, [local_task(images, "a"), local_task(images, "b"), global_task(images)], progress=False)
    keys = [item.content_key() for item in encoder.encoded]
    assert len(keys) == len(set(keys)) == 3 + 4  # three queries (shared) + four images
    assert run.stats.requested == 7 + 7 + 5 and run.stats.encoded == 7


def test_cache_resumes_and_reuses_across_runs(images, tmp_path):
    first = FakeEncoder()
    cache = EmbeddingCache(tmp_path / "cache", first.model_id)
    run_tasks(first, [local_task(images)], cache=cache, progress=False)
    assert len(cache) == 7
    second = FakeEncoder()
    again = run_tasks(second, [local_task(images), global_task(images)], cache=cache, progress=False)
    assert second.encoded == [] and again.stats.from_cache == 7
    other_model = EmbeddingCache(tmp_path / "cache", "another-model")
    assert len(other_model) == 0
    extra = Item(text="yellow", instruction="find")
    third = FakeEncoder()
    table, stats = encode_distinct(third, [extra, Item(text="red", instruction="find")], cache=cache, progress=False)
    assert [i.text for i in third.encoded] == ["yellow"] and stats.from_cache == 1
    np.testing.assert_allclose(table.lookup([extra.content_key()])[0], FakeEncoder().vector(extra))


def test_interrupted_encoding_keeps_finished_chunks(images, tmp_path):
    class Failing(FakeEncoder):
        def encode(self, items, batch_size=32):
            if self.calls == 1:
                raise KeyboardInterrupt
            return super().encode(items, batch_size)

    items = [Item(text=f"word{i}") for i in range(8)]
    cache = EmbeddingCache(tmp_path / "cache", FakeEncoder.model_id)
    with pytest.raises(KeyboardInterrupt):
        encode_distinct(Failing(), items, batch_size=2, chunk_batches=2, cache=cache, progress=False)
    assert len(cache) == 4
    resumed = FakeEncoder()
    encode_distinct(resumed, items, batch_size=2, cache=cache, progress=False)
    assert len(resumed.encoded) == 4


def test_batches_are_formed_by_length():
    items = [Item(text="a" * n) for n in (5, 50, 1, 30)]
    assert length_batches(items, 2, lambda item: len(item.text)) == [[1, 3], [0, 2]]


def test_instruction_makes_a_different_item(images):
    encoder = FakeEncoder()
    table, stats = encode_distinct(encoder, [Item(text="red"), Item(text="red", instruction="x"), Item(text="red")],
                                   progress=False)
    assert stats.distinct == 2 and stats.encoded == 2


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        self.tables += tag == "table"


def test_reports_are_written_and_complete(images, tmp_path):
    evaluation = evaluate(FakeEncoder(), "synthetic", tmp_path, tmp_path / "out",
                          tasks=[local_task(images), global_task(images)], cache_dir=tmp_path / "cache", progress=False)
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload["suite"] == "synthetic" and payload["model"] == "fake-colour-words"
    assert payload["scores"] == {"local": pytest.approx(66.6667, abs=1e-3), "global": 100.0}
    assert payload["metrics"]["global"]["ndcg@5"] == 100.0
    assert payload["groups"]["distribution/ID"] == pytest.approx(66.6667, abs=1e-3)
    assert payload["groups"]["distribution/OOD"] == 100.0
    assert payload["groups"]["meta-task/retrieval"] == pytest.approx(83.3333, abs=1e-3)
    assert payload["overall"] == pytest.approx(83.3333, abs=1e-3)
    assert payload["chance"] == {"local": 50.0}
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| image | retrieval | local | hit@1 | 66.7 | 50.0 |" in markdown
    assert "| **image** | **all** | 2 | **83.3** |" in markdown and "| **overall** | | 2 | **83.3** |" in markdown
    parser = _Collector()
    parser.feed((tmp_path / "out" / "report.html").read_text())
    charts = [src for src in parser.images if src.startswith("data:image/png;base64,")]
    thumbs = [src for src in parser.images if src.startswith("data:image/jpeg;base64,")]
    assert not charts  # the overview and each task's metrics are HTML bars
    page = (tmp_path / "out" / "report.html").read_text()
    assert "aria-label='task scores'" in page and page.count("aria-label='metrics of") == 2 and "ndcg@5</td>" in page
    # local: 3 examples x (top 2 + gold 1); global: 2 examples x (top 3 + gold 1)
    assert len(thumbs) == 3 * 3 + 2 * 4
    assert not any(src.startswith(("file:", "http")) for src in parser.images)
    assert evaluation.stats.encoded == 7


def test_report_puts_published_figures_beside_ours_only_for_a_whole_suite(images, tmp_path, monkeypatch):
    from uniembed.data.readers.catalog import MMEB_V1_TASKS
    from uniembed.eval import reference

    task = local_task(images, "ImageNet-1K")
    task.meta_task = "classification"
    evaluate(FakeEncoder(), "mmeb-v1", tmp_path, tmp_path / "one", tasks=[task], progress=False)
    assert "(published)" not in (tmp_path / "one" / "report.md").read_text()  # one task is not the suite
    assert reference.covers_suite("mmeb-v1", list(MMEB_V1_TASKS)) and not reference.covers_suite("mmeb-v1", ["ImageNet-1K"])
    monkeypatch.setattr(reference, "covers_suite", lambda suite, names: True)  # as if all 36 had run
    evaluate(FakeEncoder(), "mmeb-v1", tmp_path, tmp_path / "out", tasks=[task], progress=False)
    markdown = (tmp_path / "out" / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| model |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in markdown.splitlines() if line.startswith("| VLM2Vec Qwen2-VL-7B (published)"))
    cells = dict(zip(columns, (c.strip() for c in row.strip("|").split("|"))))
    assert cells["overall"] == "65.8" and cells["meta-task/classification"] == "62.6"
    ours = next(line for line in markdown.splitlines() if "(this run)" in line)
    assert dict(zip(columns, (c.strip() for c in ours.strip("|").split("|"))))["overall"] == "66.7"
    assert "UNITE 7B (published)" in (tmp_path / "out" / "report.html").read_text()
