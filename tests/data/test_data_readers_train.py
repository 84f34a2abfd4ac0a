"""Training readers on tiny fixtures in each real layout: good rows and malformed ones."""
from __future__ import annotations

import json
import logging

import pytest

from data_fixtures import jsonl, parquet, png
from uniembed.data.readers import (ReadReport, read_corpus_ids, read_jsonl_examples, read_mbeir_train,
                                   read_mmeb_train, rewrite_negative_ids)
from uniembed.errors import InputError
from uniembed.inputs import IMAGE, TEXT


@pytest.fixture
def mmeb_train(tmp_path):
    images = tmp_path / "images"
    png(images / "ImageNet_1K" / "a.jpg", (255, 0, 0))
    png(images / "ImageNet_1K" / "b.jpg", (0, 255, 0))
    png(images / "ImageNet_1K" / "n.jpg", (0, 0, 255))
    table = parquet(tmp_path / "ImageNet_1K" / "original-00000-of-00001.parquet", {
        "qry": ["<|image_1|>\nRepresent the given image for classification\n",
                "Find me an everyday image that matches the given caption: A green square."],
        "qry_image_path": ["ImageNet_1K/a.jpg", ""],
        "pos_text": ["tench", "<|image_1|>\nRepresent the given image.\n"],
        "pos_image_path": ["", "ImageNet_1K/b.jpg"],
        "neg_text": ["goldfish", "<|image_1|>\nRepresent the given image.\n"],
        "neg_image_path": ["", "ImageNet_1K/n.jpg"],
    })
    return table, images


def test_mmeb_train_rows_become_examples_with_hard_negatives_and_split_instructions(mmeb_train):
    table, images = mmeb_train
    first, second = read_mmeb_train(table, images)
    assert first.source == "ImageNet_1K"
    assert first.query.instruction == "Represent the given image for classification"
    assert first.query.text is None and first.query.image == str(images / "ImageNet_1K" / "a.jpg")
    assert first.positives[0].text == "tench" and first.positives[0].instruction is None
    assert [n.text for n in first.negatives] == ["goldfish"]
    assert first.target_modality == TEXT
    assert second.query.instruction == "Find me an everyday image that matches the given caption:"
    assert second.query.text == "A green square." and second.query.image is None
    assert second.positives[0].instruction == "Represent the given image."
    assert second.target_modality == IMAGE
    assert second.negatives[0].image == str(images / "ImageNet_1K" / "n.jpg")


def test_mmeb_train_can_keep_instructions_inline(mmeb_train):
    table, images = mmeb_train
    example = read_mmeb_train(table, images, split_instructions=False)[1]
    assert example.query.instruction is None
    assert example.query.text == "Find me an everyday image that matches the given caption: A green square."


def test_mmeb_train_missing_column_names_the_file(tmp_path):
    table = parquet(tmp_path / "S" / "original.parquet", {"qry": ["a"], "qry_image_path": [""], "pos_text": ["b"]})
    with pytest.raises(InputError, match=r"original\.parquet.*pos_image_path"):
        read_mmeb_train(table, tmp_path)


def test_mmeb_train_missing_image_names_file_and_row_or_is_skipped(mmeb_train, caplog):
    table, images = mmeb_train
    (images / "ImageNet_1K" / "b.jpg").unlink()
    with pytest.raises(InputError) as error:
        read_mmeb_train(table, images)
    message = str(error.value)
    assert "original-00000-of-00001.parquet" in message and "row 2" in message and "b.jpg" in message
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger="uniembed.data"):
        kept = read_mmeb_train(table, images, skip_bad_rows=True, report=report)
    assert len(kept) == 1 and kept[0].positives[0].text == "tench"
    assert (report.rows_read, report.rows_kept, report.skipped) == (2, 1, 1)
    assert report.bad_rows[0].row == 2 and "b.jpg" in report.bad_rows[0].problem
    assert "skipped 1 bad row" in caplog.text


def test_jsonl_examples(tmp_path):
    png(tmp_path / "img" / "cat.png")
    path = jsonl(tmp_path / "pairs.jsonl", [
        {"query": "a cat", "positive": {"image": "img/cat.png"}, "negatives": ["a dog"], "source": "pets"},
        {"query": {"text": "kitten", "instruction": "Retrieve a caption"}, "positives": ["a cat", "a small cat"]},
    ])
    first, second = read_jsonl_examples(path)
    assert first.source == "pets" and first.positives[0].image == str(tmp_path / "img" / "cat.png")
    assert first.negatives[0].text == "a dog" and first.target_modality == IMAGE
    assert second.source == "pairs" and second.query.instruction == "Retrieve a caption"
    assert [p.text for p in second.positives] == ["a cat", "a small cat"]


def test_jsonl_bad_line_names_file_and_line_or_is_skipped(tmp_path):
    path = jsonl(tmp_path / "pairs.jsonl", [{"query": "q", "positive": "p"}, {"query": "q2"}],
                 raw_lines={1: "{not json"})
    with pytest.raises(InputError, match=r"pairs\.jsonl.*row 2.*invalid JSON"):
        read_jsonl_examples(path)
    report = ReadReport()
    kept = read_jsonl_examples(path, skip_bad_rows=True, report=report)
    assert [e.query.text for e in kept] == ["q"]
    assert [(b.row, "positive" in b.problem or "JSON" in b.problem) for b in report.bad_rows] == [(2, True), (3, True)]


def test_corpus_ids_keeps_ids_and_shares_corpus_items(tmp_path):
    png(tmp_path / "d1.png")
    corpus = jsonl(tmp_path / "corpus.jsonl", [
        {"docid": "d1", "image": "d1.png"}, {"docid": "d2", "text": "two"}, {"docid": "d3", "text": "three"}])
    queries = jsonl(tmp_path / "queries.jsonl", [
        {"query_id": "q1", "query_text": "one", "positive_document_ids": ["d1"], "negative_document_ids": ["d2", "d3"]},
        {"query_id": "q2", "query_text": "two?", "query_instruction": "Find it", "positive_document_ids": ["d2"]},
    ])
    first, second = read_corpus_ids(queries, corpus)
    assert first.query_id == "q1" and first.positive_ids == ["d1"] and first.negative_ids == ["d2", "d3"]
    assert first.positives[0].image == str(tmp_path / "d1.png") and [n.text for n in first.negatives] == ["two", "three"]
    assert first.negatives[0] is second.positives[0]  # stored once
    assert second.query.instruction == "Find it" and second.negatives == []


def test_corpus_ids_unknown_id_is_an_error_and_mining_rewrites_only_ids(tmp_path):
    corpus = jsonl(tmp_path / "corpus.jsonl", [{"docid": "d1", "text": "one"}, {"docid": "d2", "text": "two"}])
    queries = jsonl(tmp_path / "queries.jsonl", [
        {"query_id": "q1", "query_text": "x", "positive_document_ids": ["d1"]},
        {"query_id": "q2", "query_text": "y", "positive_document_ids": ["d9"]}])
    with pytest.raises(InputError, match=r"queries\.jsonl.*row 2.*d9"):
        read_corpus_ids(queries, corpus)
    mined = tmp_path / "mined.jsonl"
    assert rewrite_negative_ids(queries, mined, {"q1": ["d2"]}) == 1
    rows = [json.loads(line) for line in mined.read_text().splitlines()]
    assert rows[0] == {"query_id": "q1", "query_text": "x", "positive_document_ids": ["d1"],
                       "negative_document_ids": ["d2"]}
    assert rows[1] == {"query_id": "q2", "query_text": "y", "positive_document_ids": ["d9"]}


@pytest.fixture
def mbeir_root(tmp_path):
    root = tmp_path / "M-BEIR"
    png(root / "mbeir_images" / "cirr" / "ref.png", (1, 2, 3))
    png(root / "mbeir_images" / "cirr" / "tgt.png", (4, 5, 6))
    png(root / "mbeir_images" / "cirr" / "neg.png", (7, 8, 9))
    jsonl(root / "cand_pool" / "local" / "mbeir_cirr_task7_cand_pool.jsonl", [
        {"did": "9:1", "txt": "", "img_path": "mbeir_images/cirr/tgt.png", "modality": "image", "src_content": ""},
        {"did": "9:2", "txt": "", "img_path": "mbeir_images/cirr/neg.png", "modality": "image", "src_content": ""},
        {"did": "9:3", "txt": "a caption", "img_path": "", "modality": "text", "src_content": ""},
    ])
    (root / "instructions").mkdir()
    (root / "instructions" / "query_instructions.tsv").write_text(
        "dataset\tquery_modality\tcand_modality\tprompt_1\tprompt_2\tprompt_3\tprompt_4\n"
        "CIRR\timage,text\timage\tEdit A.\tEdit B.\tEdit C.\tEdit D.\n"
        "CIRR\timage,text\ttext\tCaption A.\tCaption B.\tCaption C.\tCaption D.\n")
    return root


def test_mbeir_train_resolves_dids_and_draws_a_seeded_instruction(mbeir_root):
    queries = jsonl(mbeir_root / "query" / "train" / "mbeir_cirr_task7_train.jsonl", [
        {"qid": f"9:{i}", "query_txt": "make it blue", "query_img_path": "mbeir_images/cirr/ref.png",
         "query_modality": "image,text", "query_src_content": "", "pos_cand_list": ["9:1"], "neg_cand_list": ["9:2"]}
        for i in range(20)])
    pool = mbeir_root / "cand_pool" / "local" / "mbeir_cirr_task7_cand_pool.jsonl"
    tsv = mbeir_root / "instructions" / "query_instructions.tsv"
    examples = read_mbeir_train(queries, pool, instructions=tsv, seed=3)
    assert len(examples) == 20 and examples[0].source == "cirr"
    assert examples[0].positives[0].image == str(mbeir_root / "mbeir_images" / "cirr" / "tgt.png")
    assert examples[0].negative_ids == ["9:2"] and examples[0].query.text == "make it blue"
    drawn = [e.query.instruction for e in examples]
    assert set(drawn) <= {"Edit A.", "Edit B.", "Edit C.", "Edit D."} and len(set(drawn)) > 1
    assert drawn == [e.query.instruction for e in read_mbeir_train(queries, pool, instructions=tsv, seed=3)]
    assert drawn != [e.query.instruction for e in read_mbeir_train(queries, pool, instructions=tsv, seed=4)]
    inline = read_mbeir_train(queries, pool, instructions=tsv, seed=3, inline_instruction=True)
    assert inline[0].query.text == f"{drawn[0]} make it blue" and inline[0].query.instruction is None


def test_mbeir_train_empty_positive_list_names_file_and_row(mbeir_root):
    queries = jsonl(mbeir_root / "query" / "train" / "mbeir_cirr_task7_train.jsonl", [
        {"qid": "9:0", "query_txt": "x", "query_img_path": "", "query_modality": "text", "pos_cand_list": [],
         "neg_cand_list": []}])
    pool = mbeir_root / "cand_pool" / "local" / "mbeir_cirr_task7_cand_pool.jsonl"
    with pytest.raises(InputError, match=r"mbeir_cirr_task7_train\.jsonl.*row 1.*empty pos_cand_list"):
        read_mbeir_train(queries, pool)


def test_mmeb_train_video_columns_and_video_placeholder(tmp_path):
    from data_fixtures import frames

    frames(tmp_path / "frames" / "Motion" / "q0", 4)
    frames(tmp_path / "frames" / "Motion" / "n0", 4, (9, 9, 9))
    table = parquet(tmp_path / "Motion" / "original-00000-of-00001.parquet", {
        "qry": ["<|video_1|>\nRepresent the given video for classification\n"], "qry_image_path": [""],
        "qry_video_path": ["Motion/q0"], "pos_text": ["moves left"], "pos_image_path": [""], "pos_video_path": [""],
        "neg_text": ["<|video_1|>\nUnderstand the content of the provided video.\n"], "neg_image_path": [""],
        "neg_video_path": ["Motion/n0"]})
    (example,) = read_mmeb_train(table, tmp_path / "images", video_root=tmp_path / "frames")
    assert example.query.video == str(tmp_path / "frames" / "Motion" / "q0")
    assert example.query.instruction == "Represent the given video for classification" and example.query.text is None
    assert example.negatives[0].video == str(tmp_path / "frames" / "Motion" / "n0")
    assert example.target_modality == TEXT


def test_jsonl_triplet_shorthand_with_single_negative_and_instruction(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", [
        {"query": "two cats", "positive": "a pair of cats", "negative": "three cats", "instruction": "Find a paraphrase"},
        {"query": {"text": "x", "instruction": "A"}, "positive": "y", "instruction": "B"}])
    with pytest.raises(InputError, match=r"t\.jsonl.*row 2.*instruction twice"):
        read_jsonl_examples(path)
    (example,) = read_jsonl_examples(path, skip_bad_rows=True)
    assert example.query.instruction == "Find a paraphrase" and [n.text for n in example.negatives] == ["three cats"]
