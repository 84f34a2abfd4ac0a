"""MMEB-V2 as users download it: one folder per hub repository under the data root, the reference's
columns and frame folders (TIGER-AI-Lab/VLM2Vec src/data/eval_dataset/*.py, experiments/public/eval/*.yaml),
scored with fake encoders whose answers are known in advance."""
from __future__ import annotations

import json
from math import log2

import numpy as np
import pytest
from data_fixtures import frames, parquet, png_bytes
from eval_fakes import COLOURS, FakeEncoder, colour_image, colour_name, word_slot

from uniembed.frames import FramePolicy
from uniembed.cli.main import main
from uniembed.data.readers.catalog import MMEB_V2_SOURCES, video_labels
from uniembed.errors import InputError
from uniembed.eval.evaluate import evaluate
from uniembed.eval.suites import SuiteOptions, get_suite

MEDIA = "TIGER-Lab/MMEB-V2"
# experiments/report_score_v2.py:63-82 (modality2dataset): the leaderboard's task names, letter for letter
LEADERBOARD_VIDEO = ["K700", "SmthSmthV2", "HMDB51", "UCF101", "Breakfast", "MVBench", "Video-MME", "NExTQA",
                     "EgoSchema", "ActivityNetQA", "DiDeMo", "MSR-VTT", "MSVD", "VATEX", "YouCook2", "QVHighlight",
                     "Charades-STA", "MomentSeeker"]
LEADERBOARD_VISDOC = [
    "ViDoRe_arxivqa", "ViDoRe_docvqa", "ViDoRe_infovqa", "ViDoRe_tabfquad", "ViDoRe_tatdqa", "ViDoRe_shiftproject",
    "ViDoRe_syntheticDocQA_artificial_intelligence", "ViDoRe_syntheticDocQA_energy",
    "ViDoRe_syntheticDocQA_government_reports", "ViDoRe_syntheticDocQA_healthcare_industry",
    "ViDoRe_esg_reports_human_labeled_v2", "ViDoRe_biomedical_lectures_v2_multilingual",
    "ViDoRe_economics_reports_v2_multilingual", "ViDoRe_esg_reports_v2_multilingual", "VisRAG_ArxivQA",
    "VisRAG_ChartQA", "VisRAG_MP-DocVQA", "VisRAG_SlideVQA", "VisRAG_InfoVQA", "VisRAG_PlotQA", "ViDoSeek-page",
    "ViDoSeek-doc", "MMLongBench-page", "MMLongBench-doc"]


class VideoWords(FakeEncoder):
    """Texts as bags of words; a video as the weighted words its frames' colour stands for."""

    model_id = "fake-video-words"

    def __init__(self, words: dict[str, dict[str, float]]) -> None:
        super().__init__()
        self.words = words

    def vector(self, item):
        if item.video is None:
            return super().vector(item)
        v = np.zeros(64)
        colour = colour_name(item.load_video(FramePolicy(num_frames=1))[0])
        for word, weight in self.words[colour].items():
            v[word_slot(word)] += weight
        return (v / np.linalg.norm(v)).astype(np.float32)


def rgb(colour: str):
    return COLOURS[colour]


def frame_root(root, task):
    return root / MEDIA / MMEB_V2_SOURCES[task].frame_root


def run(encoder, root, datasets, **kw):
    return evaluate(encoder, "mmeb-v2", root, datasets=datasets, progress=False, **kw).payload


def test_task_names_and_groups_are_the_leaderboards():
    video = [n for n, s in MMEB_V2_SOURCES.items() if s.group == "video"]
    visdoc = [n for n, s in MMEB_V2_SOURCES.items() if s.group == "visdoc"]
    assert video == LEADERBOARD_VIDEO and sorted(visdoc) == sorted(LEADERBOARD_VISDOC)
    assert len(MMEB_V2_SOURCES) == 78 and "QVHighlight" in MMEB_V2_SOURCES
    assert len(video_labels("Kinetics-700")) == 700 and len(video_labels("SmthSmthV2")) == 174


def breakfast(root):
    """Breakfast (video_classification_datasets.py:21-44): columns video_id, pos_text; frames <frame_root>/<id>/."""
    parquet(root / "VLM2Vec/Breakfast/data/test-00000-of-00001.parquet",
            {"video_id": ["v_red", "v_green", "v_blue"], "pos_text": ["pancake", "cereal", "juice"]})
    for colour in ("red", "green", "blue"):
        frames(frame_root(root, "Breakfast") / f"v_{colour}", 3, rgb(colour))


def test_video_classification_ranks_the_full_label_list(tmp_path):
    breakfast(tmp_path)
    # the blue video looks most like "tea", a label no test video has, and a little like its gold "juice"
    encoder = VideoWords({"red": {"pancake": 1}, "green": {"cereal": 1}, "blue": {"tea": 1.0, "juice": 0.8}})
    payload = run(encoder, tmp_path, ["Breakfast"])
    # the reference ranks all 10 Breakfast labels: "tea" beats "juice" -> 2 of 3. Ranking only the labels
    # that occur as answers (pancake, cereal, juice) would give 100.
    assert payload["scores"]["Breakfast"] == pytest.approx(200 / 3, abs=1e-3)
    assert payload["chance"]["Breakfast"] == pytest.approx(10.0)  # 1 of 10 labels
    assert payload["groups"]["meta-task/video_classification"] == pytest.approx(200 / 3, abs=1e-3)


def test_ssv2_local_lists_and_msrvtt_subset_and_global_pool(tmp_path):
    # SmthSmthV2 (ssv2_dataset.py:20-40): neg_text is the candidate list, pos_text the gold
    parquet(tmp_path / "VLM2Vec/SmthSmthV2/data/test-00000-of-00001.parquet", {
        "video_id": ["1", "2"], "pos_text": ["pushing red", "pulling green"],
        "neg_text": [["pushing blue", "pushing red"], ["pulling green", "pulling red"]]})
    frames(frame_root(tmp_path, "SmthSmthV2") / "1", 2, rgb("red"))
    frames(frame_root(tmp_path, "SmthSmthV2") / "2", 2, rgb("red"))  # looks red: the gold says green -> miss
    # MSR-VTT (msrvtt_dataset.py:21-41), subset test_1k (dataset_hf_path.py:4); another subset is not read
    parquet(tmp_path / "VLM2Vec/MSR-VTT/test_1k/test-00000-of-00001.parquet", {
        "video_id": ["video7", "video8"], "video": ["video7.mp4", "video8.mp4"], "caption": ["a red car", "green grass"]})
    parquet(tmp_path / "VLM2Vec/MSR-VTT/test_9k/test-00000-of-00001.parquet", {
        "video_id": ["video9"], "video": ["video9.mp4"], "caption": ["blue sky"]})
    frames(frame_root(tmp_path, "MSR-VTT") / "video7", 2, rgb("red"))
    frames(frame_root(tmp_path, "MSR-VTT") / "video8", 2, rgb("green"))
    payload = run(FakeEncoder(), tmp_path, ["SmthSmthV2", "MSR-VTT"])
    assert payload["scores"] == {"SmthSmthV2": 50.0, "MSR-VTT": 100.0}
    assert payload["num_queries"]["MSR-VTT"] == 2 and payload["chance"]["MSR-VTT"] == 50.0
    tasks = get_suite("mmeb-v2").load_tasks(tmp_path, SuiteOptions(datasets=["MSR-VTT"]))
    assert tasks[0].queries[0].instruction == "Find a video that contains the following visual content:"
    assert tasks[0].candidates[0].instruction == "Understand the content of the provided video."
    assert tasks[0].video_sampling == {"num_frames": 8, "max_source_frames": 64, "rounding": "floor"}


def test_moment_retrieval_and_video_qa_layouts(tmp_path):
    # QVHighlight (moment_retrieval_datasets.py:25-76): <frames>/<video name>/query/ and clip folders beside it
    parquet(tmp_path / "VLM2Vec/QVHighlight/data/test-00000-of-00001.parquet",
            {"query": ["green"], "video_path": ["videos/abc.mp4"]})
    clips = frame_root(tmp_path, "QVHighlight") / "abc"
    frames(clips / "query", 2, rgb("white"))
    frames(clips / "positive_3", 2, rgb("green"))
    frames(clips / "negative_0", 2, rgb("red"))
    frames(clips / "negative_1", 2, rgb("blue"))
    # NExTQA (nextqa_dataset.py:30-77): a0..a4, answer an index; the query carries "Options:" lines
    parquet(tmp_path / "VLM2Vec/NExTQA/MC/test-00000-of-00001.parquet", {
        "video": ["11", "12"], "question": ["which colour", "which colour"], "answer": [1, 0], "qid": [0, 1],
        "type": ["CW", "CW"], "a0": ["blue", "blue"], "a1": ["red", "red"], "a2": ["green", "green"],
        "a3": ["black", "black"], "a4": ["white", "white"]})
    frames(frame_root(tmp_path, "NExTQA") / "11", 2, rgb("red"))
    frames(frame_root(tmp_path, "NExTQA") / "12", 2, rgb("red"))  # gold a0 "blue" is wrong for a red video
    # ActivityNetQA (activitynetqa_dataset.py:34-78): frames under v_<video_name>, candidates yes/no
    # (as a JSON array: repositories that keep JSON files are read as they are)
    anet = tmp_path / "VLM2Vec/ActivityNetQA/test.json"
    anet.parent.mkdir(parents=True)
    anet.write_text(json.dumps([{"video_name": "xyz", "question": "is it red", "answer": "no", "question_id": "q1"}]))
    frames(frame_root(tmp_path, "ActivityNetQA") / "v_xyz", 2, rgb("red"))
    payload = run(FakeEncoder(), tmp_path, ["QVHighlight", "NExTQA", "ActivityNetQA"])
    assert payload["scores"]["QVHighlight"] == 100.0 and payload["scores"]["NExTQA"] == 50.0
    assert payload["groups"]["meta-task/moment_retrieval"] == 100.0
    tasks = {t.name: t for t in get_suite("mmeb-v2").load_tasks(
        tmp_path, SuiteOptions(datasets=["NExTQA", "ActivityNetQA"]))}
    nextqa = tasks["NExTQA"]
    assert nextqa.queries[0].text == "which colour\nOptions:\n(A) blue\n(B) red\n(C) green\n(D) black\n(E) white"
    assert [nextqa.candidates[c].text for c in nextqa.candidate_lists[0]] == ["blue", "red", "green", "black", "white"]
    assert nextqa.qrels == [{1: 1.0}, {0: 1.0}]
    anet = tasks["ActivityNetQA"]
    assert anet.queries[0].text == "is it red? (A) yes; (B) no." and anet.qrels == [{1: 1.0}]
    assert anet.queries[0].video.endswith("video_qa/ActivityNetQA/v_xyz")


def vidore_v2(root, name="vidore/esg_reports_v2"):
    """A ViDoRe-v2 BEIR repository: queries with `language`, int corpus ids, graded qrels."""
    folder = root / name
    parquet(folder / "corpus/test-00000-of-00001.parquet", {
        "corpus-id": [3, 10, 4], "image": [{"bytes": png_bytes(rgb(c)), "path": None} for c in ("red", "blue", "green")]})
    parquet(folder / "queries/test-00000-of-00001.parquet", {
        "query-id": [1, 2], "query": ["red red blue", "green"], "language": ["english", "french"]})
    # query 1: page 3 (red) has grade 2, page 10 (blue) grade 1, in that order
    parquet(folder / "qrels/test-00000-of-00001.parquet", {
        "query-id": [1, 1, 2], "corpus-id": [3, 10, 4], "score": [2, 1, 1]})
    return folder


def test_vidore_v2_english_filter_and_the_published_grade_pairing(tmp_path):
    vidore_v2(tmp_path)
    payload = run(FakeEncoder(), tmp_path, ["ViDoRe_esg_reports_v2", "ViDoRe_esg_reports_v2_multilingual"])
    assert payload["num_queries"] == {"ViDoRe_esg_reports_v2": 1, "ViDoRe_esg_reports_v2_multilingual": 2}
    # The model ranks page 3 then page 10: the ideal order, nDCG 1 with the true grades. The reference pairs
    # list(set([3, 10])) = [10, 3] with grades [2, 1] (metrics.py:214, 183): page 10 gets 2, page 3 gets 1.
    assert list({3, 10}) == [10, 3]
    published = (1 / log2(2) + 2 / log2(3)) / (2 / log2(2) + 1 / log2(3))
    assert payload["scores"]["ViDoRe_esg_reports_v2"] == pytest.approx(100 * published, abs=1e-3)
    assert payload["scores"]["ViDoRe_esg_reports_v2_multilingual"] == pytest.approx(100 * (published + 1) / 2, abs=1e-3)
    assert payload["groups"]["meta-task/vidore_v2"] == pytest.approx(
        (payload["scores"]["ViDoRe_esg_reports_v2"] + payload["scores"]["ViDoRe_esg_reports_v2_multilingual"]) / 2)


def test_image_tasks_read_mmeb_test_instruct_with_images_from_mmeb_v2(tmp_path):
    # image_cls_dataset.py:15-31 (qry_inst, qry_text, qry_img_path, tgt_text), image.yaml image_root image-tasks/
    parquet(tmp_path / "ziyjiang/MMEB_Test_Instruct/VOC2007/test-00000-of-00001.parquet", {
        "qry_inst": ["<|image_1|> Represent the given image for classification"], "qry_text": [""],
        "qry_img_path": ["VOC2007/red.png"], "tgt_inst": ["<|image_1|> Represent the given image."],
        "tgt_text": [["red", "blue"]], "tgt_img_path": [["", ""]]})
    images = tmp_path / MEDIA / "image-tasks" / "VOC2007"
    images.mkdir(parents=True)
    colour_image(images / "red.png", "red")
    assert run(FakeEncoder(), tmp_path, ["VOC2007"])["scores"] == {"VOC2007": 100.0}
    task = get_suite("mmeb-v2").load_tasks(tmp_path, SuiteOptions(datasets=["VOC2007"]))[0]
    assert task.queries[0].instruction == "Represent the given image for classification"
    assert task.candidates[0].instruction is None  # image_cls ranks the raw tgt_text (image_cls_dataset.py:26)
    other = tmp_path / "elsewhere"
    (other / "VOC2007").mkdir(parents=True)
    colour_image(other / "VOC2007" / "red.png", "blue")  # --image-root wins over the default
    payload = run(FakeEncoder(), tmp_path, ["VOC2007"], data_options={"image_root": str(other)})
    assert payload["scores"] == {"VOC2007": 0.0}


def test_check_lists_a_missing_data_set_and_a_wrong_column(tmp_path, capsys):
    breakfast(tmp_path)
    parquet(tmp_path / "VLM2Vec/HMDB51/data/test-00000-of-00001.parquet", {"video_id": ["1"], "label": ["wave"]})
    vidore_v2(tmp_path)
    code = main(["eval", "--suite", "mmeb-v2", "--data", str(tmp_path), "--check",
                 "--datasets", "Breakfast,HMDB51,DiDeMo,ViDoRe_esg_reports_v2"])
    out = capsys.readouterr().out
    assert code == 1
    assert "[ok] Breakfast  <- VLM2Vec/Breakfast, split test" in out
    assert "columns: video_id, pos_text" in out and "video-tasks/frames/video_cls/Breakfast (found)" in out
    assert "[PROBLEM] HMDB51" in out and "lacks column(s) ['pos_text']" in out
    assert "video-tasks/frames/video_cls/HMDB51 (NOT FOUND)" in out
    assert "[MISSING] DiDeMo  <- VLM2Vec/DiDeMo" in out and str(tmp_path / "VLM2Vec" / "DiDeMo") in out
    assert "[ok] ViDoRe_esg_reports_v2" in out and "queries.language" in out
    assert "2 of 4 data sets ready" in out


def test_wrong_roots_say_what_was_looked_for(tmp_path):
    with pytest.raises(InputError, match=r"no MMEB-V2 repository folder.*VLM2Vec/Breakfast.*--check"):
        get_suite("mmeb-v2").load_tasks(tmp_path, SuiteOptions(datasets=["Breakfast"]))
    parquet(tmp_path / "VLM2Vec/Breakfast/data/test-00000-of-00001.parquet", {"video_id": ["1"], "pos_text": ["tea"]})
    with pytest.raises(InputError, match=r"frame folder .*not found; tried .*TIGER-Lab/MMEB-V2/video-tasks"):
        get_suite("mmeb-v2").load_tasks(tmp_path, SuiteOptions(datasets=["Breakfast"]))
    with pytest.raises(InputError, match=r"tried '.*nowhere/video-tasks'.*--video-root"):
        get_suite("mmeb-v2").load_tasks(tmp_path, SuiteOptions(datasets=["Breakfast"],
                                                               extra={"video_root": str(tmp_path / "nowhere")}))
    with pytest.raises(InputError, match=r"no MMEB-V1 data set folder.*MMEB-eval"):
        get_suite("mmeb-v1").load_tasks(tmp_path, SuiteOptions(datasets=["ImageNet-1K"]))


def test_data_map_points_a_task_at_any_folder(tmp_path):
    breakfast(tmp_path / "root")
    moved = tmp_path / "disk" / "breakfast"
    (tmp_path / "root" / "VLM2Vec" / "Breakfast").rename(moved.parent.mkdir(parents=True) or moved)
    (tmp_path / "map.yaml").write_text("Breakfast: disk/breakfast\n")
    code = main(["eval", "--suite", "mmeb-v2", "--data", str(tmp_path / "root"), "--check", "--datasets", "Breakfast",
                 "--data-map", str(tmp_path / "map.yaml")])
    assert code == 0
    encoder = VideoWords({"red": {"pancake": 1}, "green": {"cereal": 1}, "blue": {"juice": 1}})
    from uniembed.eval.suites.layout import read_data_map

    payload = run(encoder, tmp_path / "root", ["Breakfast"],
                  data_options={"data_map": read_data_map(tmp_path / "map.yaml")})
    assert payload["scores"] == {"Breakfast": 100.0}


def test_published_figures_only_beside_a_whole_suite_and_model_path_in_results(tmp_path):
    breakfast(tmp_path)
    encoder = VideoWords({"red": {"pancake": 1}, "green": {"cereal": 1}, "blue": {"juice": 1}})
    evaluation = evaluate(encoder, "mmeb-v2", tmp_path, tmp_path / "out", datasets=["Breakfast"], progress=False,
                          model_path="models/my-model")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "(published)" not in report
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["model_path"] == "models/my-model" and results["model"] == "fake-video-words"
    assert evaluation.payload["scores"] == {"Breakfast": 100.0}


def test_an_empty_root_names_the_layout_it_looked_for(tmp_path):
    from uniembed.errors import ConfigError

    with pytest.raises(ConfigError, match=r"found no data set under --data, so not \['Digits'\]; it looks for DIR/"):
        get_suite("long-captions").load_tasks(tmp_path, SuiteOptions(datasets=["Digits"]))


def test_mbeir_check_lists_the_uniir_files(tmp_path, capsys):
    (tmp_path / "query/test").mkdir(parents=True)
    (tmp_path / "query/test/mbeir_mscoco_task0_test.jsonl").write_text(json.dumps(
        {"qid": "9:1", "query_txt": "a dog", "query_img_path": None, "query_modality": "text", "pos_cand_list": ["9:2"]}))
    assert main(["eval", "--suite", "mbeir", "--data", str(tmp_path), "--check", "--datasets", "mscoco_task0"]) == 1
    out = capsys.readouterr().out
    assert "cand_pool/local/mbeir_mscoco_task0_test_cand_pool.jsonl not found" in out and "mbeir_images" in out


def test_mmeb_v1_repository_folder_and_image_root_order(tmp_path):
    repo = tmp_path / "TIGER-Lab/MMEB-eval"
    parquet(repo / "VOC2007/test-00000-of-00001.parquet", {
        "qry_text": ["<|image_1|>\nRepresent the given image for classification\n"], "qry_img_path": ["VOC2007/x.png"],
        "tgt_text": [["red", "blue"]], "tgt_img_path": [["", ""]]})
    with pytest.raises(InputError, match=r"image root not found; tried '.*MMEB-eval/eval_images', '.*MMEB-eval/images'"):
        get_suite("mmeb-v1").load_tasks(tmp_path, SuiteOptions())
    (repo / "eval_images/VOC2007").mkdir(parents=True)
    colour_image(repo / "eval_images/VOC2007/x.png", "red")
    assert evaluate(FakeEncoder(), "mmeb-v1", tmp_path, progress=False).payload["scores"] == {"VOC2007": 100.0}
    (tmp_path / "mine/VOC2007").mkdir(parents=True)
    colour_image(tmp_path / "mine/VOC2007/x.png", "blue")
    payload = evaluate(FakeEncoder(), "mmeb-v1", tmp_path, progress=False,
                       data_options={"image_root": str(tmp_path / "mine")}).payload
    assert payload["scores"] == {"VOC2007": 0.0}


def test_mmeb_v1_check_reports_a_missing_data_set(tmp_path, capsys):
    parquet(tmp_path / "TIGER-Lab/MMEB-eval/VOC2007/test-00000-of-00001.parquet", {
        "qry_text": ["q"], "qry_img_path": [""], "tgt_text": [["a"]], "tgt_img_path": [[""]]})
    (tmp_path / "TIGER-Lab/MMEB-eval/eval_images").mkdir()
    assert main(["eval", "--suite", "mmeb-v1", "--data", str(tmp_path), "--check",
                 "--datasets", "VOC2007,ImageNet-1K"]) == 1
    out = capsys.readouterr().out
    assert "[ok] VOC2007" in out and "[PROBLEM] ImageNet-1K" in out and "1 of 2 data sets ready" in out
