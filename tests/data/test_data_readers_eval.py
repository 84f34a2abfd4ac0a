"""Evaluation readers on tiny fixtures in each real layout: good rows and malformed ones."""
from __future__ import annotations

import math

import pytest

from data_fixtures import frames, jsonl, parquet, png, png_bytes
from uniembed.data.readers import (MMEB_V2_VIDEO_SAMPLING, ReadReport, read_mbeir, read_mmeb_v1, read_mmeb_v1_suite,
                                   read_mmeb_v2_video, read_visdoc)
from uniembed.errors import InputError
from uniembed.inputs import Item


@pytest.fixture
def mmeb_root(tmp_path):
    root = tmp_path / "MMEB-eval"
    for name, colour in [("q0", (1, 1, 1)), ("q1", (2, 2, 2)), ("c0", (3, 3, 3)), ("c1", (4, 4, 4))]:
        png(root / "images" / "MSCOCO_i2t" / f"{name}.jpg", colour)
    return root


def test_mmeb_v1_old_columns_local_lists_with_gold_first_and_shared_pool(mmeb_root):
    table = parquet(mmeb_root / "MSCOCO_i2t" / "test-00000-of-00001.parquet", {
        "qry_text": ["<|image_1|>\nFind an image caption describing the given everyday image.\n"] * 2,
        "qry_img_path": ["MSCOCO_i2t/q0.jpg", "MSCOCO_i2t/q1.jpg"],
        "tgt_text": [["a dog", "a cat", "a bird"], ["a cat", "a horse", "a dog"]],
        "tgt_img_path": [["", "", ""], ["", "", ""]],
    })
    task = read_mmeb_v1(table, mmeb_root / "images")
    assert task.name == "MSCOCO_i2t" and task.metric == "hit@1" and task.is_local
    assert task.meta_task == "retrieval" and task.in_distribution is True and task.modality_group == "image"
    assert [c.text for c in task.candidates] == ["a dog", "a cat", "a bird", "a horse"]
    assert task.candidate_lists == [[0, 1, 2], [1, 3, 0]]
    assert task.qrels == [{0: 1.0}, {0: 1.0}]
    assert task.chance == pytest.approx(1 / 3)
    query = task.queries[0]
    assert query.instruction == "Find an image caption describing the given everyday image."
    assert query.text is None and query.image == str(mmeb_root / "images" / "MSCOCO_i2t" / "q0.jpg")


def test_mmeb_v1_new_columns_take_separate_instructions(mmeb_root):
    table = parquet(mmeb_root / "MSCOCO_t2i" / "test-00000-of-00001.parquet", {
        "qry_inst": ["<|image_1|>Find me an everyday image that matches the given caption:"],
        "qry_text": ["A dog on a beach."],
        "qry_img_path": [""],
        "tgt_inst": ["Represent the given image."],
        "tgt_text": [["<|image_1|>", "<|image_1|>"]],
        "tgt_img_path": [["MSCOCO_i2t/c0.jpg", "MSCOCO_i2t/c1.jpg"]],
    })
    task = read_mmeb_v1(table, mmeb_root / "images")
    query = task.queries[0]
    assert query.instruction == "Find me an everyday image that matches the given caption:"
    assert query.text == "A dog on a beach." and query.image is None
    assert [c.instruction for c in task.candidates] == ["Represent the given image."] * 2
    assert all(c.text is None and c.image for c in task.candidates)
    assert task.meta_task == "retrieval" and task.candidate_lists == [[0, 1]]


def test_mmeb_v1_suite_reads_every_folder(mmeb_root):
    for name in ("VOC2007", "ImageNet-A"):
        parquet(mmeb_root / name / "test-00000-of-00001.parquet", {
            "qry_text": ["<|image_1|>\nRepresent the given image for classification\n"],
            "qry_img_path": ["MSCOCO_i2t/q0.jpg"], "tgt_text": [["cat", "dog"]], "tgt_img_path": [["", ""]]})
    tasks = read_mmeb_v1_suite(mmeb_root, mmeb_root / "images")
    assert [(t.name, t.meta_task, t.in_distribution) for t in tasks] == [
        ("ImageNet-A", "classification", False), ("VOC2007", "classification", True)]
    with pytest.raises(InputError, match="Nope"):
        read_mmeb_v1_suite(mmeb_root, mmeb_root / "images", datasets=["Nope"])


def test_mmeb_v1_malformed_rows(mmeb_root):
    table = parquet(mmeb_root / "VOC2007" / "test-00000-of-00001.parquet", {
        "qry_text": ["<|image_1|>\nRepresent the given image for classification\n"] * 3,
        "qry_img_path": ["MSCOCO_i2t/q0.jpg", "MSCOCO_i2t/missing.jpg", "MSCOCO_i2t/q1.jpg"],
        "tgt_text": [["cat", "dog"], ["cat"], []],
        "tgt_img_path": [["", ""], [""], []],
    })
    with pytest.raises(InputError) as error:
        read_mmeb_v1(table, mmeb_root / "images")
    assert "test-00000-of-00001.parquet" in str(error.value) and "row 2" in str(error.value)  # 1-based
    assert "missing.jpg" in str(error.value)
    report = ReadReport()
    task = read_mmeb_v1(table, mmeb_root / "images", skip_bad_rows=True, report=report)
    assert len(task.queries) == 1 and report.skipped == 2
    assert "empty candidate list" in report.bad_rows[1].problem and report.bad_rows[1].row == 3
    missing_column = parquet(mmeb_root / "Bad" / "test.parquet", {"qry_text": ["x"], "qry_img_path": [""]})
    with pytest.raises(InputError, match=r"Bad/test\.parquet.*missing column.*tgt_text"):
        read_mmeb_v1(missing_column, mmeb_root / "images")


def test_mmeb_v2_video_missing_frames_name_the_row_and_can_be_skipped(tmp_path):
    # SmthSmthV2 columns (TIGER-AI-Lab/VLM2Vec src/data/eval_dataset/ssv2_dataset.py:20-40)
    frames(tmp_path / "frames" / "1", 3, (255, 0, 0))
    rows = [{"video_id": "1", "pos_text": "pushing left", "neg_text": ["pushing left", "pushing right"]},
            {"video_id": "9", "pos_text": "a", "neg_text": ["a", "b"]}]
    table = jsonl(tmp_path / "SmthSmthV2" / "test.jsonl", rows)
    with pytest.raises(InputError, match=r"SmthSmthV2/test\.jsonl.*row 2.*frames/9"):
        read_mmeb_v2_video(table.parent, tmp_path / "frames", name="SmthSmthV2")
    task = read_mmeb_v2_video(table.parent, tmp_path / "frames", name="SmthSmthV2", skip_bad_rows=True)
    assert task.is_local and task.meta_task == "video_classification" and task.candidate_lists == [[0, 1]]
    assert task.queries[0].video == str(tmp_path / "frames" / "1") and task.queries[0].text is None
    assert task.video_sampling == MMEB_V2_VIDEO_SAMPLING and task.qrels == [{0: 1.0}]
    assert task.queries[0].instruction == ("What actions or object interactions are being performed by the "
                                           "person in the video?")  # video_classification_utils.py:18

def _visdoc(tmp_path, qrels_scores):
    folder = tmp_path / "ViDoRe_docvqa"
    parquet(folder / "corpus" / "test-00000-of-00001.parquet", {
        "corpus-id": [10, 11, 12, 13],
        "image": [{"bytes": png_bytes((i, i, i)), "path": f"p{i}.png"} for i in range(3)]
                 + [{"bytes": png_bytes((0, 0, 0)), "path": "dup.png"}],
    })
    parquet(folder / "queries" / "test-00000-of-00001.parquet", {
        "query-id": [1, 2, 3], "query": ["what is the total?", "who signed?", "no answer"]})
    parquet(folder / "qrels" / "test-00000-of-00001.parquet", {
        "query-id": [1, 1, 2, 3], "corpus-id": [10, 12, 11, 13], "score": qrels_scores})
    return folder


def test_visdoc_beir_layout_graded_global_ndcg(tmp_path):
    task = read_visdoc(_visdoc(tmp_path, [2, 1, 1, 0]), query_instruction="Find a document image that matches")
    assert task.metric == "ndcg@5" and not task.is_local and task.modality_group == "visdoc"
    assert len(task.candidates) == 3  # page 13 repeats page 10
    assert task.candidate_ids == ["10", "11", "12"]
    assert task.query_ids == ["1", "2"]  # query 3 has only a score-0 pair
    assert task.qrels == [{0: 2.0, 2: 1.0}, {1: 1.0}]
    assert task.queries[0].instruction == "Find a document image that matches"
    assert isinstance(task.candidates[0].image, bytes)


def test_visdoc_qrels_tsv_and_unknown_corpus_id(tmp_path):
    folder = _visdoc(tmp_path, [1, 1, 1, 1])
    for file in (folder / "qrels").iterdir():
        file.unlink()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t10\t1\n2\t99\t1\n")
    with pytest.raises(InputError, match=r"test\.tsv.*row 3.*'99'"):
        read_visdoc(folder)
    task = read_visdoc(folder, skip_bad_rows=True)
    assert task.qrels == [{0: 1.0}]


def test_mbeir_eval_seeded_instruction_qrels_and_recall_at_10_for_fashioniq(tmp_path):
    root = tmp_path / "M-BEIR"
    png(root / "mbeir_images" / "fiq" / "ref.png", (1, 1, 1))
    png(root / "mbeir_images" / "fiq" / "a.png", (2, 2, 2))
    png(root / "mbeir_images" / "fiq" / "b.png", (3, 3, 3))
    pool = jsonl(root / "cand_pool" / "local" / "mbeir_fashioniq_task7_cand_pool.jsonl", [
        {"did": "8:1", "txt": "", "img_path": "mbeir_images/fiq/a.png", "modality": "image"},
        {"did": "8:2", "txt": "", "img_path": "mbeir_images/fiq/b.png", "modality": "image"}])
    queries = jsonl(root / "query" / "test" / "mbeir_fashioniq_task7_test.jsonl", [
        {"qid": "8:100", "query_txt": "is darker", "query_img_path": "mbeir_images/fiq/ref.png",
         "query_modality": "image,text", "query_src_content": "", "pos_cand_list": ["8:2"], "neg_cand_list": []}])
    qrels = root / "qrels" / "test" / "mbeir_fashioniq_task7_test_qrels.txt"
    qrels.parent.mkdir(parents=True)
    qrels.write_text("8:100 0 8:2 1 7\n8:100 0 8:1 0 7\n")
    instructions = jsonl(root / "instructions.jsonl", [
        {"dataset": "FashionIQ", "query_modality": "text,image", "cand_modality": "image",
         "instructions": ["Find a dress like this but changed as described."]}])
    task = read_mbeir(queries, pool, qrels, instructions=instructions)
    assert task.metric == "hit@10" and task.candidate_ids == ["8:1", "8:2"] and task.qrels == [{1: 1.0}]
    assert task.queries[0].instruction == "Find a dress like this but changed as described."
    assert task.queries[0].text == "is darker" and all(c.instruction is None for c in task.candidates)
    assert task.chance == pytest.approx(1.0)  # 2 candidates, top 10
    wrong = jsonl(root / "bad_instructions.jsonl", [
        {"dataset": "CIRR", "query_modality": "image,text", "cand_modality": "image", "instructions": ["x"]}])
    with pytest.raises(InputError, match=r"mbeir_fashioniq_task7_test\.jsonl.*row 1.*no instruction for dataset"):
        read_mbeir(queries, pool, qrels, instructions=wrong)


def test_strip_and_split_helpers_are_what_the_readers_use():
    from uniembed.data.readers import split_instruction

    assert split_instruction("<|image_1|>\nRepresent the given image for classification\n") == (
        "Represent the given image for classification", None)
    assert split_instruction("<|image_1|>\nRepresent the given image with the following question: What is it?") == (
        "Represent the given image with the following question:", "What is it?")
    assert split_instruction("<|image_1|>\nSelect the portion of the image that isolates the object\nthe dog") == (
        "Select the portion of the image that isolates the object", "the dog")
    assert split_instruction("A photo of a dog: running") == (None, "A photo of a dog: running")
    assert split_instruction("<|image_1|>") == (None, None)
    assert Item(text=split_instruction("plain caption")[1]).text == "plain caption"


def test_visdoc_chance_is_the_expected_ndcg_of_a_random_ranking(tmp_path):
    task = read_visdoc(_visdoc(tmp_path, [2, 1, 1, 0]))
    discount = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # pool of 3 pages: ranks 1..3 inside the top 5
    q1 = (3 / 3 * discount) / (2 + 1 / math.log2(3))  # relevances 2 and 1
    q2 = (1 / 3 * discount) / 1
    assert task.chance == pytest.approx((q1 + q2) / 2)
