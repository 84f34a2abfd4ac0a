"""Hard-negative mining: positives and their duplicates are never mined, rank window / count / margins select
exactly the hand-computed candidates, shortfalls are reported and never refilled, sharding changes nothing."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from uniembed.data.readers import read_corpus_ids, read_jsonl_examples
from uniembed.errors import ConfigError, InputError
from uniembed.mining import MiningOptions, load_source, merge_shards, mine_shard, select_negatives

# Each query has its own axis; a document's score with its topic's query is its cosine `c` (the rest of its
# vector lies on a private axis), and 0 with every other query.
TOPICS = {
    "q0": {"text": "where is the red fox", "positive": ("d0", 0.9),
           "docs": [("d0dup", 0.9, "same"), ("d1", 0.85), ("d0near", 0.84, "near"), ("d2", 0.8), ("d3", 0.6),
                    ("d4", 0.5), ("d5", 0.3), ("d6", 0.1)]},
    "q1": {"text": "how tall is the tower", "positive": ("e0", 0.7),
           "docs": [("e1", 0.95), ("e2", 0.65), ("e3", 0.2)]},
    "q2": {"text": "who painted the mural", "positive": ("f0", 0.8),
           "docs": [("f1", 0.5), ("f2", 0.4)]},
}


def build_fixture() -> tuple[dict[str, np.ndarray], list[dict], list[dict]]:
    """Texts -> vectors, corpus rows and query rows with hand-chosen cosines."""
    docs = []  # (topic, docid, cosine, kind): kind "same" copies the positive's text, "near" nearly does
    for topic, spec in TOPICS.items():
        for entry in [spec["positive"], *spec["docs"]]:
            docs.append((topic, entry[0], entry[1], entry[2] if len(entry) > 2 else ""))
    dim = len(TOPICS) + len(docs) + 1
    axes = {topic: i for i, topic in enumerate(TOPICS)}
    vectors: dict[str, np.ndarray] = {}
    corpus, texts = [], {}
    for number, (topic, docid, c, kind) in enumerate(docs):
        positive_id = TOPICS[topic]["positive"][0]
        text = {"same": texts.get(positive_id), "near": f"{texts.get(positive_id)}!"}.get(kind) or f"document {docid}"
        texts[docid] = text
        if kind != "same":
            v = np.zeros(dim)
            v[axes[topic]] = c
            v[len(TOPICS) + number] = math.sqrt(1 - c * c)
            vectors[text] = v
        corpus.append({"docid": docid, "text": text})
    queries = []
    for topic, spec in TOPICS.items():
        v = np.zeros(dim)
        v[axes[topic]] = 1.0
        vectors[spec["text"]] = v
        queries.append({"query_id": topic, "query_text": spec["text"], "positive_document_ids": [spec["positive"][0]],
                        "negative_document_ids": ["old"]})
    corpus.append({"docid": "old", "text": "an old negative"})
    v = np.zeros(dim)
    v[-1] = 1.0
    vectors["an old negative"] = v
    return vectors, corpus, queries


class TableEncoder:
    """Embeds a text by looking it up: every score in these tests is known in advance."""

    model_id = "table-encoder"

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, items, batch_size: int = 32) -> np.ndarray:
        return np.stack([self.vectors[item.text] for item in items]).astype(np.float32)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture()
def corpus_ids(tmp_path):
    vectors, corpus, queries = build_fixture()
    return (TableEncoder(vectors), write_jsonl(tmp_path / "queries.jsonl", queries),
            write_jsonl(tmp_path / "corpus.jsonl", corpus))


def mine(encoder, queries, corpus, out, **options):
    source = load_source(queries, corpus)
    return mine_shard(encoder, source, MiningOptions(**options), out, progress=False)


def negatives_by_query(out: Path) -> dict[str, list[str]]:
    return {row["query_id"]: row["negative_ids"] for row in map(json.loads, (out / "negatives.jsonl").open())}


def test_default_keeps_first_five_non_positives_and_never_a_duplicate_of_a_positive(corpus_ids, tmp_path):
    encoder, queries, corpus = corpus_ids
    report = mine(encoder, queries, corpus, tmp_path / "out")
    mined = negatives_by_query(tmp_path / "out")
    # q0 ranking: d0 / d0dup (0.9, identical text), d1 .85, d0near .84, d2 .8, d3 .6, d4 .5, ...
    assert mined["q0"] == ["d1", "d0near", "d2", "d3", "d4"]  # d0near is similar, not identical: it stays
    # zero-score documents follow in pool order; d0dup repeats d0's content, so it is not kept twice
    assert mined["q1"] == ["e1", "e2", "e3", "d0", "d1"]
    assert mined["q2"] == ["f1", "f2", "d0", "d1", "d0near"]
    assert report["removed"] == {"positive": 3, "positive_duplicate": 1, "rank_range": 0, "max_score": 0,
                                 "absolute_margin": 0, "relative_margin": 0, "duplicate_negative": 2}
    assert report["candidates_retrieved"] == 3 * 17 and report["queries_short"] == 0
    # the mined file is valid training data: ids rewritten, the old negative replaced, positives untouched
    examples = read_corpus_ids(tmp_path / "out" / "queries.jsonl", corpus)
    for example in examples:
        assert example.negative_ids == mined[example.query_id]
        assert not set(example.negative_ids) & set(example.positive_ids)
        keys = {p.content_key() for p in example.positives}
        assert all(n.content_key() not in keys for n in example.negatives)


def test_rank_window_and_count_take_exactly_the_hand_picked_ranks(corpus_ids, tmp_path):
    encoder, queries, corpus = corpus_ids
    report = mine(encoder, queries, corpus, tmp_path / "out", top=8, rank_range=(3, 7), num_negatives=2)
    # q0 ranks: 0 d0, 1 d0dup, 2 d1, 3 d0near, 4 d2, 5 d3, 6 d4, 7 d5  -> window 3..6 -> first two
    assert negatives_by_query(tmp_path / "out")["q0"] == ["d0near", "d2"]
    negatives = [json.loads(line) for line in (tmp_path / "out" / "negatives.jsonl").open()]
    assert negatives[0]["ranks"] == [3, 4]
    assert negatives[0]["scores"] == pytest.approx([0.84, 0.8], abs=1e-6)
    assert report["removed"]["rank_range"] > 0


@pytest.mark.parametrize("options, expected_q0, filter_name, removed_in_q0", [
    ({"absolute_margin": 0.08}, ["d2", "d3", "d4", "d5", "d6"], "absolute_margin", 2),   # > 0.9 - 0.08: d1, d0near
    ({"relative_margin": 0.1}, ["d2", "d3", "d4", "d5", "d6"], "relative_margin", 2),    # > 0.9 * 0.9 = 0.81
    ({"relative_margin": 0.05}, ["d1", "d0near", "d2", "d3", "d4"], "relative_margin", 0),  # > 0.855: none
    ({"max_score": 0.7}, ["d3", "d4", "d5", "d6", "e0"], "max_score", 3),                 # > 0.7: d1, d0near, d2
])
def test_score_margins_follow_sentence_transformers_semantics(corpus_ids, tmp_path, options, expected_q0,
                                                              filter_name, removed_in_q0):
    encoder, queries, corpus = corpus_ids
    mine(encoder, queries, corpus, tmp_path / "out", **options)
    assert negatives_by_query(tmp_path / "out")["q0"] == expected_q0
    rows = [json.loads(line) for line in (tmp_path / "out" / "shards" / "shard-00000-of-00001.jsonl").open()]
    assert rows[0]["removed"].get(filter_name, 0) == removed_in_q0


def test_shortfall_is_reported_and_never_refilled(corpus_ids, tmp_path):
    encoder, queries, corpus = corpus_ids
    report = mine(encoder, queries, corpus, tmp_path / "out", num_negatives=20, max_score=0.55)
    mined = negatives_by_query(tmp_path / "out")
    # eligible under the cap: q0 d4 d5 d6 + 8 zero-score others; q1 e3 + 8 d-documents + f0 f1 f2 old;
    # q2 f1 f2 + 8 d-documents + e0..e3 + old
    assert {q: len(ids) for q, ids in mined.items()} == {"q0": 11, "q1": 13, "q2": 15}
    assert report["queries_short"] == 3 and report["short_query_ids"] == ["q0", "q1", "q2"]
    assert report["queries_without_negatives"] == 0
    for query_id, ids in mined.items():
        assert TOPICS[query_id]["positive"][0] not in ids and "d0dup" not in ids
        assert len(set(ids)) == len(ids)
    assert report["negatives_written"] == 11 + 13 + 15
    assert report["eligible_not_used"] == 0


def test_sharded_run_writes_exactly_what_an_unsharded_run_writes(corpus_ids, tmp_path):
    encoder, queries, corpus = corpus_ids
    whole = mine(encoder, queries, corpus, tmp_path / "whole", num_negatives=3, rank_range=(1, 9), top=9)
    source = load_source(queries, corpus)
    options = MiningOptions(num_negatives=3, rank_range=(1, 9), top=9)
    results = [mine_shard(encoder, source, options, tmp_path / "sharded", shard_index=i, num_shards=3, progress=False)
               for i in (2, 0, 1)]
    assert results[0] is None and results[1] is None and results[2] is not None  # the last to finish merges
    for name in ("queries.jsonl", "negatives.jsonl"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "sharded" / name).read_bytes()
    sharded = results[2]
    for key in ("removed", "negatives_written", "queries_short", "eligible"):
        assert whole[key] == sharded[key]
    assert merge_shards(tmp_path / "sharded")["removed"] == whole["removed"]


def test_merge_refuses_missing_shards(corpus_ids, tmp_path):
    encoder, queries, corpus = corpus_ids
    mine_shard(encoder, load_source(queries, corpus), MiningOptions(), tmp_path / "out", shard_index=1, num_shards=2,
               progress=False)
    with pytest.raises(InputError, match=r"shard\(s\) \[0\] of 2"):
        merge_shards(tmp_path / "out")


def test_select_negatives_counts_each_candidate_under_its_first_filter():
    keys = ["k0", "k0", "k1", "k2", "k2", "k3"]
    selection = select_negatives([0, 1, 2, 3, 4, 5], [0.9, 0.9, 0.88, 0.7, 0.7, 0.2], pool_keys=keys,
                                 positive_indices={0}, positive_keys={"k0"}, positive_score=0.9,
                                 options=MiningOptions(top=6, num_negatives=5, absolute_margin=0.05))
    assert selection.indices == [3, 5]
    assert dict(selection.removed) == {"positive": 1, "positive_duplicate": 1, "absolute_margin": 1,
                                       "duplicate_negative": 1}
    assert selection.eligible == 2


def test_random_sampling_draws_among_eligible_only_and_is_seeded():
    keys = [f"k{i}" for i in range(20)]
    args = dict(pool_keys=keys, positive_indices={0}, positive_keys={"k0"}, positive_score=1.0)
    ranked, scores = list(range(20)), list(np.linspace(1, 0, 20))
    options = MiningOptions(top=20, num_negatives=4, sampling="random", seed=3, rank_range=(0, 10))
    first = select_negatives(ranked, scores, options=options, query_key="q", **args)
    again = select_negatives(ranked, scores, options=options, query_key="q", **args)
    other = select_negatives(ranked, scores, options=options, query_key="another", **args)
    assert first.indices == again.indices and len(first.indices) == 4
    assert all(1 <= i < 10 for i in first.indices + other.indices) and first.indices == sorted(first.indices)
    draws = {tuple(select_negatives(ranked, scores, options=options, query_key=str(k), **args).indices)
             for k in range(10)}
    assert len(draws) > 1


@pytest.mark.parametrize("options, message", [
    ({"top": 10, "rank_range": (0, 20)}, "raise --top"),
    ({"rank_range": (5, 5)}, "is empty"),
    ({"relative_margin": 1.5}, "relative-margin"),
    ({"num_negatives": 0}, "num-negatives"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        MiningOptions(**options)


def test_jsonl_training_data_mines_items_from_the_deduplicated_targets(tmp_path):
    vectors = {}
    rows = []
    rng = np.random.default_rng(0)
    for i in range(6):
        query, positive = f"query {i}", f"answer {i}"
        rows.append({"query": query, "positive": positive, "source": "toy"})
        vectors[query] = rng.normal(size=8)
        vectors[positive] = vectors[query] + 0.3 * rng.normal(size=8)
    rows.append({"query": "query 6", "positive": "answer 0", "negatives": ["answer 9"]})  # shares a positive
    vectors["query 6"] = rng.normal(size=8)
    vectors["answer 9"] = rng.normal(size=8)
    vectors = {k: (v / np.linalg.norm(v)).astype(np.float32) for k, v in vectors.items()}
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    source = load_source(path)
    assert source.format == "jsonl" and len(source.pool_items) == 7  # six answers + answer 9, de-duplicated
    report = mine_shard(TableEncoder(vectors), source, MiningOptions(num_negatives=3), tmp_path / "out", progress=False)
    mined = read_jsonl_examples(tmp_path / "out" / "train.jsonl")
    assert [m.query.text for m in mined] == [r["query"] for r in rows]
    for example in mined:
        assert len(example.negatives) == 3
        assert example.positives[0].text not in {n.text for n in example.negatives}
    assert [m.source for m in mined] == ["toy"] * 6 + ["train"]
    assert report["removed"]["positive"] == 7 and report["queries_short"] == 0
    mixture = (tmp_path / "out" / "mixture.yaml").read_text()
    assert "format: jsonl" in mixture or '"format": "jsonl"' in mixture


# ------------------------------------------------------------------------------- the CLI, with the tiny model


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_embedder):
    directory = tmp_path_factory.mktemp("tiny-model")
    tiny_embedder.save_pretrained(directory)
    return directory


def test_cli_mines_with_a_saved_model_sharded_by_torchrun_environment(corpus_ids, tmp_path, tiny_model_dir,
                                                                      monkeypatch, capsys):
    from PIL import Image

    from uniembed.cli.main import main
    from uniembed.data.mixture import load_mixture

    _, queries, corpus = corpus_ids
    Image.new("RGB", (32, 32), "red").save(tmp_path / "red.png")
    with corpus.open("a") as handle:  # an image document and a byte-identical copy of a positive under a new id
        handle.write(json.dumps({"docid": "img", "image": "red.png"}) + "\n")
        handle.write(json.dumps({"docid": "f0copy", "text": "document f0"}) + "\n")
    common = ["mine", "--model", str(tiny_model_dir), "--queries", str(queries), "--corpus", str(corpus),
              "--top", "12", "--num-negatives", "4", "--batch-size", "4"]
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    assert "removed: positive_duplicate" in capsys.readouterr().out
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main([*common, "--out", str(tmp_path / "sharded")]) == 0
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert negatives_by_query(tmp_path / "whole") == negatives_by_query(tmp_path / "sharded")
    report = json.loads((tmp_path / "whole" / "report.json").read_text())
    assert report["shards"] == 1 and json.loads((tmp_path / "sharded" / "report.json").read_text())["shards"] == 2
    forbidden = {"q0": {"d0", "d0dup"}, "q1": {"e0"}, "q2": {"f0", "f0copy"}}  # positives and their copies
    for example in read_corpus_ids(tmp_path / "whole" / "queries.jsonl", corpus):
        assert len(example.negative_ids) == 4
        assert not forbidden[example.query_id] & set(example.negative_ids)
    mixture = load_mixture(tmp_path / "whole" / "mixture.yaml")
    assert len(mixture.sources["mined"].examples) == 3
    assert main(["mine", "--merge", "--out", str(tmp_path / "sharded")]) == 0
    assert main(["mine", "--model", str(tiny_model_dir), "--queries", str(queries), "--corpus", str(corpus),
                 "--top", "5", "--rank-range", "0:10", "--out", str(tmp_path / "bad")]) == 2


def test_mmeb_train_parquet_mines_items_and_keeps_instructions(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = ["cat", "dog", "fox", "owl"]
    rows = {"qry": [f"Represent the given text for classification\nan animal {i}" for i in range(8)],
            "qry_image_path": [""] * 8, "pos_text": [labels[i % 4] for i in range(8)], "pos_image_path": [""] * 8}
    folder = tmp_path / "Animals"
    folder.mkdir()
    pq.write_table(pa.table(rows), folder / "original-00000-of-00001.parquet")
    rng = np.random.default_rng(1)
    vectors = {text: rng.normal(size=6) for text in [*labels, *(f"an animal {i}" for i in range(8))]}
    vectors = {k: (v / np.linalg.norm(v)).astype(np.float32) for k, v in vectors.items()}
    source = load_source(folder)
    assert source.format == "mmeb-train" and len(source.pool_items) == 4
    report = mine_shard(TableEncoder(vectors), source, MiningOptions(num_negatives=5), tmp_path / "out", progress=False)
    mined = read_jsonl_examples(tmp_path / "out" / "train.jsonl")
    assert len(mined) == 8 and report["queries_short"] == 8  # 3 other labels exist, 5 were asked: no refill
    for i, example in enumerate(mined):
        assert example.query.instruction == "Represent the given text for classification"
        assert sorted(n.text for n in example.negatives) == sorted(set(labels) - {labels[i % 4]})


def test_rerun_with_other_options_into_the_same_folder_merges_only_its_own_shards(corpus_ids, tmp_path):
    encoder, queries, corpus = corpus_ids
    source = load_source(queries, corpus)
    mine_shard(encoder, source, MiningOptions(), tmp_path / "out", shard_index=0, num_shards=2, progress=False)
    report = mine(encoder, queries, corpus, tmp_path / "out", num_negatives=2)
    assert report["shards"] == 1 and report["negatives_written"] == 6
    assert all(len(ids) == 2 for ids in negatives_by_query(tmp_path / "out").values())
    with pytest.raises(InputError, match="2 different mining runs"):
        merge_shards(tmp_path / "out")
