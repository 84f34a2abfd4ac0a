"""The synthetic benchmark: every task written in its layout, gold first, disjoint splits, same bytes per seed."""
from __future__ import annotations

import hashlib
import io
import json
import math
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from uniembed.cli.main import main as cli_main
from uniembed.data.synth import ALL_TASKS, SizeConfig, chance_local_hit1, expected_random_ndcg, generate
from uniembed.errors import InputError

MMEB_COLUMNS = ["qry_text", "qry_img_path", "tgt_text", "tgt_img_path"]
# the MMEB-V2 data sets' own columns (TIGER-AI-Lab/VLM2Vec src/data/eval_dataset/*.py, see video_layouts.py)
VIDEO_COLUMNS = {"SynMotion": ["video_id", "pos_text", "neg_text"], "SynT2V": ["video_id", "video", "caption"],
                 "SynVideoQA": ["subset", "question", "video", "candidates", "answer"],
                 "SynMoment": ["query", "video_path"]}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "tiny"
    generate(out, "tiny", seed=0, workers=2, progress=False)
    return out


def metadata(out: Path) -> dict:
    return json.loads((out / "metadata.json").read_text())


def tree_digest(out: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "metadata.json"):
        digest.update(str(path.relative_to(out)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    meta = metadata(out)
    for volatile in ("generation_seconds", "workers"):
        meta.pop(volatile)
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()


def rows(out: Path, task: dict) -> list[dict]:
    return pq.read_table(out / task["path"]).to_pylist()


def media_digest(out: Path, root: str, rel: str) -> str:
    path = out / root / rel
    if path.is_dir():
        return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(path.iterdir()))).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_task_is_written_with_its_layout(bench):
    meta = metadata(bench)
    names = {t["name"] for t in meta["tasks"]}
    assert names == {t.name for t in ALL_TASKS} | {"SynDocs", "SynMBEIR_T2I"}
    groups = {t["modality_group"] for t in meta["tasks"]}
    assert groups == {"image", "video", "visdoc", "text"}
    assert {t["meta_task"] for t in meta["tasks"] if t["modality_group"] == "image"} == {
        "classification", "vqa", "retrieval", "grounding"}
    for task in meta["tasks"]:
        if task["layout"] in ("beir", "mbeir", "mmeb_v2_video"):
            continue
        table = pq.read_table(bench / task["path"])
        assert table.column_names == MMEB_COLUMNS
        assert table.num_rows == task["num_queries"] == 16
        for row in table.to_pylist():
            assert row["tgt_text"] and len(row["tgt_text"]) == len(row["tgt_img_path"])
            if task["ranking"] == "local":
                assert 10 <= len(row["tgt_text"]) <= 20
            refs = [row["qry_img_path"], *row["tgt_img_path"], row.get("qry_video_path", ""), *row.get("tgt_video_path", [])]
            for rel in filter(None, refs):
                target = bench / task["media_root"] / rel
                assert target.exists(), f"{task['name']}: {rel} missing"
                if target.is_dir():
                    frames = sorted(target.iterdir())
                    assert len(frames) >= 8 and frames[0].name == "frame_0000.jpg"


def test_mmeb_text_carries_placeholders_and_instructions_like_real_mmeb(bench):
    meta = {t["name"]: t for t in metadata(bench)["tasks"]}
    count = rows(bench, meta["SynCount"])[0]
    assert count["qry_text"] == "<|image_1|>\nRepresent the given image for classification\n"
    assert all(p == "" for p in count["tgt_img_path"]) and "<|image_1|>" not in count["tgt_text"][0]
    t2i = rows(bench, meta["SynT2I"])[0]
    assert t2i["qry_img_path"] == "" and t2i["tgt_text"][0] == "<|image_1|>\nRepresent the given image.\n"
    image = Image.open(bench / "mmeb/images" / t2i["tgt_img_path"][0])
    assert image.size == (96, 96)
    crop = Image.open(bench / "mmeb/images" / rows(bench, meta["SynGround"])[0]["tgt_img_path"][0])
    assert crop.size == (40, 40)


def video_rows(out: Path, task: dict) -> list[dict]:
    return pq.read_table(out / task["path"] / "test-00000-of-00001.parquet").to_pylist()


def test_video_tasks_use_the_mmeb_v2_data_sets_own_columns_and_frame_folders(bench):
    meta = {t["name"]: t for t in metadata(bench)["tasks"]}
    for name, columns in VIDEO_COLUMNS.items():
        table = pq.read_table(bench / meta[name]["path"] / "test-00000-of-00001.parquet")
        assert table.column_names == columns and table.num_rows == 16
    frames = {name: bench / meta[name]["frames"] for name in VIDEO_COLUMNS}
    motion = video_rows(bench, meta["SynMotion"])[0]
    assert motion["pos_text"] == motion["neg_text"][0] and 10 <= len(motion["neg_text"]) <= 20
    assert (frames["SynMotion"] / motion["video_id"] / "frame_0000.jpg").is_file()
    t2v = video_rows(bench, meta["SynT2V"])
    assert all((frames["SynT2V"] / r["video_id"] / "frame_0000.jpg").is_file() for r in t2v)
    qa = video_rows(bench, meta["SynVideoQA"])[0]
    assert qa["answer"] in qa["candidates"] and (frames["SynVideoQA"] / qa["subset"] / qa["video"]).is_dir()
    moment = video_rows(bench, meta["SynMoment"])[0]
    folder = frames["SynMoment"] / Path(moment["video_path"]).stem
    clips = sorted(p.name for p in folder.iterdir())
    assert "query" in clips and "positive" in clips and len(clips) == 11  # query + gold + 9 others
    assert sorted((folder / "query").iterdir())[0].name == "frame_0000.jpg"


def test_candidates_in_a_list_are_all_different(bench):
    """No candidate may be a copy of another (else the gold at index 0 would be ambiguous)."""
    for task in metadata(bench)["tasks"]:
        if task["ranking"] != "local" or task["layout"] == "mmeb_v2_video":
            continue
        for row in rows(bench, task):
            media = row.get("tgt_video_path") if any(row.get("tgt_video_path", [])) else row["tgt_img_path"]
            keys = [(text, media_digest(bench, task["media_root"], m) if m else "")
                    for text, m in zip(row["tgt_text"], media)]
            assert len(set(keys)) == len(keys), task["name"]


def test_global_video_pool_and_beir_documents(bench):
    meta = {t["name"]: t for t in metadata(bench)["tasks"]}
    t2v = video_rows(bench, meta["SynT2V"])
    assert len({r["video_id"] for r in t2v}) == meta["SynT2V"]["num_candidates"] == len(t2v)
    assert len({r["caption"] for r in t2v}) == len(t2v)
    docs = bench / meta["SynDocs"]["path"]
    queries = pq.read_table(docs / "queries/test-00000-of-00001.parquet").to_pylist()
    corpus = pq.read_table(docs / "corpus/test-00000-of-00001.parquet").to_pylist()
    qrels = pq.read_table(docs / "qrels/test-00000-of-00001.parquet").to_pylist()
    assert set(queries[0]) == {"query-id", "query"} and set(qrels[0]) == {"query-id", "corpus-id", "score"}
    assert Image.open(io.BytesIO(corpus[0]["image"]["bytes"])).size == (224, 288)
    corpus_ids, query_ids = {c["corpus-id"] for c in corpus}, {q["query-id"] for q in queries}
    assert {q["corpus-id"] for q in qrels} <= corpus_ids and {q["query-id"] for q in qrels} == query_ids
    for qid in query_ids:
        assert sorted(q["score"] for q in qrels if q["query-id"] == qid) == [1, 2]


def test_mbeir_slice_links_queries_pool_and_qrels(bench):
    # the TIGER-Lab/M-BEIR layout (UniIR src/common/mbeir_embedder.py:270-277, mbeir_retriever.py:394)
    root = bench / "mbeir"
    queries = [json.loads(line) for line in (root / "query/test/mbeir_synt2i_task0_test.jsonl").read_text().splitlines()]
    pool_file = root / "cand_pool/local/mbeir_synt2i_task0_cand_pool.jsonl"
    pool = {p["did"]: p for p in map(json.loads, pool_file.read_text().splitlines())}
    qrels = [line.split() for line in (root / "qrels/test/mbeir_synt2i_task0_test_qrels.txt").read_text().splitlines()]
    assert len(queries) == len(qrels) == 16
    for query, (qid, zero, did, relevance, task_id) in zip(queries, qrels):
        assert (query["qid"], zero, relevance, task_id) == (qid, "0", "1", "0") and query["pos_cand_list"] == [did]
        assert query["qid"].startswith("90:") and query["query_modality"] == "text"
        assert all(d in pool for d in query["pos_cand_list"] + query["neg_cand_list"])
        assert (bench / "mbeir" / pool[did]["img_path"]).exists()
    from uniembed.eval.suites import SuiteOptions, get_suite  # the mbeir suite reads the slice as it is

    assert [t.name for t in get_suite("mbeir").load_tasks(root, SuiteOptions())] == ["synt2i_task0"]


def test_training_rows_have_hard_negatives_and_do_not_overlap_test(bench):
    meta = metadata(bench)
    test = {t["name"]: t for t in meta["tasks"]}
    for subset in meta["train"]:
        if subset["layout"] == "jsonl_triplets":
            lines = [json.loads(line) for line in (bench / subset["path"]).read_text().splitlines()]
            assert all(set(x) == {"query", "positive", "negative", "instruction"} for x in lines)
            test_queries = {r["qry_text"].split(": ", 1)[1].rstrip("\n") for r in rows(bench, test[subset["name"]])}
            assert not test_queries & {x["query"] for x in lines}
            continue
        table = pq.read_table(bench / subset["path"])
        assert {"qry", "qry_image_path", "pos_text", "pos_image_path", "neg_text", "neg_image_path"} <= set(table.column_names)
        for row in table.to_pylist():
            pos = (row["pos_text"], row["pos_image_path"], row.get("pos_video_path", ""))
            neg = (row["neg_text"], row["neg_image_path"], row.get("neg_video_path", ""))
            assert pos != neg and any(neg)
        if subset["name"] == "SynT2I":  # the caption names the whole scene: no test caption reused
            assert not {r["qry"] for r in table.to_pylist()} & {r["qry_text"] for r in rows(bench, test["SynT2I"])}
        if subset["name"] == "SynT2V":
            captions = {r["qry"].split(": ", 1)[1].strip() for r in table.to_pylist()}
            assert not captions & {r["caption"] for r in video_rows(bench, test["SynT2V"])}
    assert "SynI2I" not in {s["name"] for s in meta["train"]}  # out-of-distribution task
    # no training picture is byte-identical to a test picture
    train_images = {hashlib.sha256(p.read_bytes()).digest() for p in (bench / "mmeb_train/images").rglob("*.png")}
    test_images = {hashlib.sha256(p.read_bytes()).digest() for p in (bench / "mmeb/images").rglob("*.png")}
    assert train_images and not train_images & test_images


def test_chance_levels_match_the_candidate_lists(bench):
    for task in metadata(bench)["tasks"]:
        if task["layout"] == "beir":
            expected = 100 * expected_random_ndcg([2, 1], task["num_candidates"], 5)
        elif task["layout"] == "mbeir":  # hit@5 with one relevant: 5 / pool
            expected = 500 / task["num_candidates"]
        elif task["ranking"] == "global":
            expected = 100 / task["num_candidates"]
        elif task["layout"] == "mmeb_v2_video":  # local video tasks: the reader's own lists
            from uniembed.eval.suites import SuiteOptions, get_suite

            read = get_suite("synthetic").load_tasks(bench, SuiteOptions(datasets=[task["name"]]))[0]
            expected = 100 * np.mean([1 / len(c) for c in read.candidate_lists])
        else:
            expected = 100 * np.mean([1 / len(r["tgt_text"]) for r in rows(bench, task)])
        assert task["chance_percent"] == pytest.approx(expected, abs=1e-3), task["name"]


def test_expected_random_ndcg_is_exact():
    # one relevant among 10: (1/10) * sum_{r=1..5} 1/log2(r+1)
    by_hand = 0.1 * (1 + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5) + 1 / math.log2(6))
    assert expected_random_ndcg([1], 10, 5) == pytest.approx(by_hand)
    # two items, gains 2 and 1: half the rankings are ideal, half put the gain-1 item first
    ideal2 = 2 + 1 / math.log2(3)
    assert expected_random_ndcg([2, 1], 2, 5) == pytest.approx(0.5 * 1 + 0.5 * (1 + 2 / math.log2(3)) / ideal2)
    rng = np.random.default_rng(0)  # graded gains: compare with a simulation of random rankings
    gains, pool, trials = np.zeros(20), 20, 40000
    gains[:2] = [2, 1]
    ideal = 2 + 1 / math.log2(3)
    top5 = np.argsort(rng.random((trials, pool)), axis=1)[:, :5]  # random rankings, their first five items
    sims = (gains[top5] / np.log2(np.arange(2, 7))).sum(axis=1) / ideal
    assert expected_random_ndcg([2, 1], pool, 5) == pytest.approx(float(sims.mean()), rel=0.02)
    assert chance_local_hit1([10, 20]) == pytest.approx(7.5)


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path):
    small = SizeConfig(test_queries=4, train_rows=4)
    generate(tmp_path / "a", small, seed=1, workers=2, progress=False)
    generate(tmp_path / "b", small, seed=1, workers=1, progress=False)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


def test_different_seeds_give_different_examples():
    task = next(t for t in ALL_TASKS if t.name == "SynT2I")
    first = [task.build(random.Random("a")).query_text for _ in range(3)]
    second = [task.build(random.Random("b")).query_text for _ in range(3)]
    assert first != second


def test_cli_writes_and_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "cli"
    (out).mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli_main(["synth", "--out", str(out), "--size", "tiny", "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="unknown size"):
        generate(tmp_path / "x", "huge")


def test_pick_distractors_keeps_the_easy_share_in_every_prefix():
    """Builders over-draw then truncate after de-duplication: every prefix must keep the mix (a bug once put
    all easy distractors after the hard ones, so truncation silently removed them)."""
    from uniembed.data.synth.examples import pick_distractors

    hard, easy = [f"H{i}" for i in range(40)], [f"e{i}" for i in range(40)]
    chosen = pick_distractors(hard, easy, 30, easy_share=0.5)
    assert chosen[0] == "H0"  # the training split's hard negative is the first distractor
    for length in range(2, 31):
        share = sum(c.startswith("e") for c in chosen[:length]) / length
        assert abs(share - 0.5) <= 0.5 / length + 1e-9, (length, chosen[:length])
    few_easy = pick_distractors(hard, easy[:2], 11, easy_share=0.5)
    assert len(few_easy) == 11 and sum(c.startswith("e") for c in few_easy) == 2
    few_hard = pick_distractors(hard[:2], easy, 11, easy_share=0.25)
    assert len(few_hard) == 11 and sum(c.startswith("H") for c in few_hard) == 2
