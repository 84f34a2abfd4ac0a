"""The zero-shot suites read each benchmark's official release as it unpacks (file and key names from the
reference loaders, see each reader in data/readers/), scored with the fake colour-word encoder: answers known."""
import csv
import json
import pickle
from collections import OrderedDict

import av
import numpy as np
import pytest
from eval_fakes import COLOURS, FakeEncoder, colour_image

from uniembed.errors import InputError
from uniembed.eval.evaluate import evaluate
from uniembed.eval.suites import SuiteOptions, get_suite
from uniembed.eval.suites.layout import format_checks
from uniembed.eval.suites.zeroshot import (CIRCO_INSTRUCTION, I2T_INSTRUCTION, SUGARCREPE_INSTRUCTION,
                                           T2I_INSTRUCTION, T2V_INSTRUCTION)


def scores(suite, data, **kw):
    return evaluate(FakeEncoder(), suite, data, progress=False, **kw)


def colour_video(path, colour, frames=4):
    """A real video file (mp4 or avi, by suffix) whose every frame is one colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        pixels = np.full((32, 32, 3), COLOURS[colour], dtype=np.uint8)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


# ---- CIRCO: annotations/val.json + COCO2017_unlabeled/{annotations/image_info_unlabeled2017.json,unlabeled2017/}

def circo_root(root):
    colours = {1: "red", 2: "blue", 3: "green", 4: "blue", 5: "yellow"}
    images = root / "COCO2017_unlabeled" / "unlabeled2017"
    images.mkdir(parents=True)
    for image_id, colour in colours.items():
        colour_image(images / f"{image_id:012d}.jpg", colour)
    write_json(root / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json",
               {"images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in colours]})
    write_json(root / "annotations" / "val.json", [
        {"id": 0, "reference_img_id": 1, "target_img_id": 2, "relative_caption": "blue blue", "shared_concept": "x",
         "gt_img_ids": [2, 4]},
        {"id": 1, "reference_img_id": 3, "target_img_id": 1, "relative_caption": "yellow yellow",
         "shared_concept": "x", "gt_img_ids": [1]}])
    write_json(root / "annotations" / "test.json", [{"id": 0, "reference_img_id": 1, "relative_caption": "red",
                                                     "shared_concept": "x"}])
    return root


def test_circo_reads_the_official_clone_and_scores_map(tmp_path):
    root = circo_root(tmp_path / "CIRCO")
    payload = scores("circo", tmp_path).payload  # ROOT/CIRCO found under the data root
    # query 0: both blue images rank 1-2 -> AP 1; query 1: yellow (5), green (3, the reference stays in the pool),
    # then red (1) -> AP@5 = (1/3) / min(1, 5)
    assert payload["metrics"]["CIRCO"]["map@5"] == pytest.approx(100 * (1 + 1 / 3) / 2, abs=1e-3)
    assert set(payload["metrics"]["CIRCO"]) >= {"map@10", "map@25", "map@50"}
    task, = get_suite("circo").load_tasks(root)
    assert len(task.candidates) == 5 and task.queries[0].instruction == CIRCO_INSTRUCTION
    assert task.candidates[0].instruction is None and task.query_ids == ["0", "1"]


def test_circo_without_ground_truth_or_image_info_says_what_is_missing(tmp_path):
    root = circo_root(tmp_path)
    (root / "annotations" / "test.json").replace(root / "annotations" / "val.json")
    with pytest.raises(InputError, match="no gt_img_ids.*scored by its server"):
        get_suite("circo").load_tasks(root)
    (root / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json").unlink()
    checks = get_suite("circo").check_data(root)
    text, ready = format_checks(checks)
    assert not ready and "image_info_unlabeled2017.json not found" in text and "gt_img_ids" in text


# ---- FashionIQ: captions/cap.<cat>.val.json, image_splits/split.<cat>.val.json, images/<name>.jpg -------------

def test_fashioniq_reads_the_release_and_joins_captions_as_searle(tmp_path):
    root = tmp_path / "FashionIQ"
    for name, colour in {"d1": "red", "d2": "blue", "d3": "green", "s1": "red", "s2": "yellow"}.items():
        (root / "images").mkdir(parents=True, exist_ok=True)
        colour_image(root / "images" / f"{name}.jpg", colour)
    write_json(root / "image_splits" / "split.dress.val.json", ["d1", "d2", "d3"])
    write_json(root / "captions" / "cap.dress.val.json",
               [{"target": "d2", "candidate": "d1", "captions": ["is blue.", "has a blue collar?"]}])
    write_json(root / "image_splits" / "split.shirt.val.json", ["s1", "s2"])
    # shirt: the caption names a colour no pool image has, and the target is the other image -> R@10 still 100
    write_json(root / "captions" / "cap.shirt.val.json",
               [{"target": "s2", "candidate": "s1", "captions": ["black", "black"]}])
    evaluation = scores("fashioniq", tmp_path)
    assert evaluation.payload["scores"] == {"FashionIQ-dress": 100.0, "FashionIQ-shirt": 100.0}
    assert evaluation.payload["overall"] == 100.0
    dress, = get_suite("fashioniq").load_tasks(tmp_path, SuiteOptions(datasets=["dress"]))
    assert dress.queries[0].text == "is blue and has a blue collar"  # SEARLE validate.py:46 strips '.?, '
    assert dress.candidate_ids == ["d1", "d2", "d3"]


# ---- text-video: CLIP4Clip releases ------------------------------------------------------------------------

def msrvtt(root, sentences, columns=("key", "vid_key", "video_id", "sentence")):
    folder = root / "MSR-VTT"
    folder.mkdir(parents=True)
    (folder / "msrvtt_data").mkdir()  # as msrvtt_data.zip unpacks
    with (folder / "msrvtt_data" / "MSRVTT_JSFUSION_test.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i, (colour, sentence) in enumerate(sentences):
            writer.writerow([f"ret{i}", f"msr{7020 + i}", f"video{7020 + i}", sentence])
            colour_video(folder / "videos" / "all" / f"video{7020 + i}.mp4", colour)


def test_msrvtt_1ka_csv_both_directions(tmp_path):
    # video7020 is red but its sentence says blue; the others match -> 2 of 3 at rank 1 in both directions
    msrvtt(tmp_path, [("red", "a blue car"), ("blue", "the red sky"), ("green", "green grass")])
    metrics = scores("text-video", tmp_path).payload["metrics"]
    assert metrics["MSR-VTT t2v"]["hit@1"] == pytest.approx(100 / 3, abs=1e-3)
    assert metrics["MSR-VTT v2t"]["hit@1"] == pytest.approx(100 / 3, abs=1e-3)
    assert metrics["MSR-VTT t2v"]["hit@5"] == 100.0 and "median_rank" in metrics["MSR-VTT v2t"]
    t2v, v2t = get_suite("text-video").load_tasks(tmp_path)
    assert t2v.queries[0].instruction == T2V_INSTRUCTION and v2t.queries[0].instruction is None
    assert t2v.candidates[0].video.endswith("videos/all/video7020.mp4")
    assert t2v.video_sampling == {"fps": 2.0, "num_frames": 768}  # U-MARVEL: qwen-vl-utils defaults
    (tmp_path / "other").mkdir()  # --data-map: a data set's name -> its folder anywhere
    mapped = get_suite("text-video").load_tasks(tmp_path / "other",
                                                SuiteOptions(extra={"data_map": {"MSR-VTT": tmp_path / "MSR-VTT"}}))
    assert [t.name for t in mapped] == ["MSR-VTT t2v", "MSR-VTT v2t"]


def test_msvd_pickle_and_didemo_paragraphs(tmp_path):
    msvd = tmp_path / "MSVD"
    msvd.mkdir()
    (msvd / "test_list.txt").write_text("-4wsuPCjDBc_5_15\nclipB_1_2\n")
    (msvd / "raw-captions.pkl").write_bytes(pickle.dumps({"-4wsuPCjDBc_5_15": [["a", "red", "ball"], ["red"]],
                                                          "clipB_1_2": [["the", "blue", "sea"]], "train_x": [["x"]]}))
    colour_video(msvd / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi", "red")
    colour_video(msvd / "YouTubeClips" / "clipB_1_2.avi", "blue")
    didemo = tmp_path / "DiDeMo"
    didemo.mkdir()
    (didemo / "test_list.txt").write_text("v1.mp4\nv2.mp4\nv3.mp4\n")  # v3.mp4 has no file: left out
    write_json(didemo / "test_data.json", [
        {"video": "v1.mp4", "description": "green", "times": [[0, 1]], "annotation_id": 1},
        {"video": "v2.mp4", "description": "yellow", "times": [[0, 1]], "annotation_id": 2},
        {"video": "v1.mp4", "description": "green green field", "times": [[1, 2]], "annotation_id": 3},
        {"video": "v3.mp4", "description": "red", "times": [[0, 1]], "annotation_id": 4}])
    colour_video(didemo / "DiDeMo_Videos" / "v1.mp4", "green")
    colour_video(didemo / "DiDeMo_Videos" / "v2.mp4", "yellow")
    payload = scores("text-video", tmp_path).payload
    assert payload["scores"] == {"DiDeMo t2v": 100.0, "DiDeMo v2t": 100.0, "MSVD t2v": 100.0, "MSVD v2t": 100.0}
    tasks = {t.name: t for t in get_suite("text-video").load_tasks(tmp_path)}
    assert [q.text for q in tasks["MSVD t2v"].queries] == ["a red ball", "red", "the blue sea"]
    assert [q.text for q in tasks["DiDeMo t2v"].queries] == ["green green green field", "yellow"]
    (msvd / "raw-captions.pkl").write_bytes(pickle.dumps({"clipB_1_2": [["a"]], "-4wsuPCjDBc_5_15": OrderedDict()}))
    with pytest.raises(InputError, match="refusing to load collections.OrderedDict"):  # no code runs
        get_suite("text-video").load_tasks(tmp_path, SuiteOptions(datasets=["MSVD"]))


def test_text_video_check_lists_each_release(tmp_path):
    msrvtt(tmp_path, [("red", "red")], columns=("key", "vid_key", "video_id", "caption"))
    text, ready = format_checks(get_suite("text-video").check_data(tmp_path, SuiteOptions()))
    assert not ready
    assert "[PROBLEM] MSR-VTT" in text and "no column(s) ['sentence']" in text
    assert "[MISSING] MSVD" in text and "test_list.txt, raw-captions.pkl" in text and "[MISSING] DiDeMo" in text
    assert "0 of 3 data sets ready" in text


# ---- long captions: ShareGPT4V-1K and Urban1K as U-MARVEL reads them -----------------------------------------

def test_long_captions_sharegpt4v_json_and_urban1k_first_lines(tmp_path):
    share = tmp_path / "ShareGPT4V-1K"
    (share / "val_data").mkdir(parents=True)
    colour_image(share / "val_data" / "sa_1.jpg", "red")
    colour_image(share / "val_data" / "sa_2.jpg", "blue")
    write_json(share / "datas_for_validation.json", [{"image_name": "sa_1.jpg", "caption": "a long caption, blue"},
                                                     {"image_name": "sa_2.jpg", "caption": "a long caption, red"}])
    urban = tmp_path / "Urban1k"
    (urban / "image").mkdir(parents=True)
    (urban / "caption").mkdir()
    colour_image(urban / "image" / "1.jpg", "red")
    colour_image(urban / "image" / "2.jpg", "blue")
    # only the first line counts (datasets_urban1k.py:95-96): read whole, 1.txt would say blue
    (urban / "caption" / "1.txt").write_text("a red street\nblue blue blue blue\n")
    (urban / "caption" / "2.txt").write_text("a blue street\n")
    payload = scores("long-captions", tmp_path).payload
    assert payload["scores"] == {"ShareGPT4V-1K t2i": 0.0, "ShareGPT4V-1K i2t": 0.0,
                                 "Urban1K t2i": 100.0, "Urban1K i2t": 100.0}
    tasks = {t.name: t for t in get_suite("long-captions").load_tasks(tmp_path)}
    assert tasks["ShareGPT4V-1K t2i"].queries[0].instruction == T2I_INSTRUCTION
    assert tasks["ShareGPT4V-1K i2t"].queries[0].instruction is None
    assert tasks["Urban1K i2t"].queries[0].instruction == I2T_INSTRUCTION
    assert tasks["Urban1K t2i"].queries[0].instruction is None


# ---- SugarCrepe: data/<subset>.json + images/val2017/ ----------------------------------------------------------

def test_sugarcrepe_clone_layout_strict_ties_and_instructions(tmp_path):
    root = tmp_path / "sugar-crepe"
    (root / "images" / "val2017").mkdir(parents=True)
    colour_image(root / "images" / "val2017" / "000000000139.jpg", "red")
    colour_image(root / "images" / "val2017" / "000000000285.jpg", "blue")
    write_json(root / "data" / "swap_obj.json", {
        "0": {"filename": "000000000139.jpg", "caption": "red", "negative_caption": "blue"},
        "1": {"filename": "000000000285.jpg", "caption": "red", "negative_caption": "blue"},
        "2": {"filename": "000000000285.jpg", "caption": "green", "negative_caption": "yellow"}})  # tie -> wrong
    write_json(root / "data" / "add_att.json", {
        "7": {"filename": "000000000285.jpg", "caption": "a blue wall", "negative_caption": "a red wall"}})
    payload = scores("sugarcrepe", tmp_path).payload
    assert payload["scores"] == {"add_att": 100.0, "swap_obj": pytest.approx(100 / 3, abs=1e-3)}
    assert payload["chance"]["swap_obj"] == 50.0
    tasks = {t.name: t for t in get_suite("sugarcrepe").load_tasks(root)}
    assert tasks["add_att"].queries[0].instruction == SUGARCREPE_INSTRUCTION
    assert tasks["swap_obj"].queries[0].instruction is None
    text, _ = format_checks(get_suite("sugarcrepe").check_data(root))
    assert "[ok] add_att" in text and "[MISSING] replace_rel" in text and "data/replace_rel.json" in text
