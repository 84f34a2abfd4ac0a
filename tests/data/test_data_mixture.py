"""YAML mixtures: sources of every training format, weights, instruction overrides, bad rows, errors."""
from __future__ import annotations

import pytest
import yaml

from data_fixtures import jsonl, parquet, png
from uniembed.data import MixtureSampler, load_mixture
from uniembed.errors import ConfigError, InputError


@pytest.fixture
def data(tmp_path):
    png(tmp_path / "images" / "s" / "a.jpg")
    parquet(tmp_path / "MMEB-train" / "VOC2007" / "original.parquet", {
        "qry": ["<|image_1|>\nRepresent the given image for classification\n", "<|image_1|>\nRepresent it\n"],
        "qry_image_path": ["s/a.jpg", "s/missing.jpg"],
        "pos_text": ["cat", "dog"], "pos_image_path": ["", ""]})
    jsonl(tmp_path / "pairs.jsonl", [{"query": f"q{i}", "positive": f"p{i}"} for i in range(6)])
    jsonl(tmp_path / "corpus.jsonl", [{"docid": "d1", "text": "one"}, {"docid": "d2", "text": "two"}])
    jsonl(tmp_path / "queries.jsonl", [{"query_id": "q1", "query_text": "1?", "positive_document_ids": ["d1"]},
                                       {"query_id": "q2", "query_text": "2?", "positive_document_ids": ["d2"]}])
    return tmp_path


def _write(folder, spec):
    path = folder / "mixture.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_mixture_reads_each_format_with_weights_and_overrides(data):
    path = _write(data, {"skip_bad_rows": True, "sources": [
        {"name": "voc", "format": "mmeb-train", "path": "MMEB-train/VOC2007/original.parquet",
         "image_root": "images", "weight": 3, "target_instruction": "Represent the class name"},
        {"name": "pairs", "format": "jsonl", "path": "pairs.jsonl", "query_instruction": "Retrieve the match"},
        {"name": "docs", "format": "corpus-ids", "path": "queries.jsonl", "corpus": "corpus.jsonl"},
    ]})
    mixture = load_mixture(path)
    assert list(mixture.sources) == ["voc", "pairs", "docs"]
    assert mixture.weights == {"voc": 3.0, "pairs": 6.0, "docs": 2.0}  # default weight = size
    voc = mixture.sources["voc"]
    assert len(voc) == 1 and voc.report.skipped == 1 and "missing.jpg" in voc.report.bad_rows[0].problem
    assert voc.examples[0].query.instruction == "Represent the given image for classification"
    assert voc.examples[0].positives[0].instruction == "Represent the class name"
    pairs = mixture.sources["pairs"].examples
    assert all(e.source == "pairs" and e.query.instruction == "Retrieve the match" for e in pairs)
    assert mixture.sources["docs"].examples[1].positive_ids == ["d2"]
    batch = MixtureSampler(mixture, 2, seed=0).next_batch()
    assert batch.source in mixture.sources and len(batch.examples) == 2


def test_bad_rows_fail_unless_skipped_and_the_caller_flag_wins(data):
    spec = {"sources": {"voc": {"format": "mmeb-train", "path": "MMEB-train/VOC2007/original.parquet",
                                "image_root": "images"}}}
    path = _write(data, spec)
    with pytest.raises(InputError, match=r"original\.parquet.*row 2.*missing\.jpg"):
        load_mixture(path)
    assert len(load_mixture(path, skip_bad_rows=True).sources["voc"]) == 1


@pytest.mark.parametrize("spec, message", [
    ({"sources": [{"name": "x", "format": "csv", "path": "pairs.jsonl"}]}, "format must be one of"),
    ({"sources": [{"name": "x", "format": "jsonl", "path": "pairs.jsonl", "colour": 1}]}, "unknown option"),
    ({"sources": [{"name": "x", "format": "jsonl", "path": "pairs.jsonl", "weight": -1}]}, "weight must be a positive number"),
    ({"sources": [{"name": "x", "format": "jsonl", "path": "pairs.jsonl"},
                  {"name": "x", "format": "jsonl", "path": "pairs.jsonl"}]}, "two mixture sources are named 'x'"),
    ({"sources": [{"name": "d", "format": "corpus-ids", "path": "queries.jsonl"}]}, "needs 'corpus'"),
    ({"mix": []}, "'sources'"),
])
def test_invalid_mixtures_say_what_is_wrong(data, spec, message):
    with pytest.raises(ConfigError, match=message):
        load_mixture(_write(data, spec))


def test_mixture_given_as_a_mapping_resolves_paths_against_base_dir(data):
    mixture = load_mixture({"sources": {"pairs": {"format": "jsonl", "path": "pairs.jsonl", "max_rows": 4}}},
                           base_dir=data)
    assert len(mixture.sources["pairs"]) == 4
