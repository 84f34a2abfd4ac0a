"""Every suite on tiny fixtures in its layout, scored with the fake colour-word encoder (answers known)."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from eval_fakes import COLOURS, FakeEncoder, colour_image

from uniembed.errors import ConfigError, InputError
from uniembed.eval.evaluate import evaluate
from uniembed.eval.suites import SuiteOptions, get_suite


def scores(suite, data, **kw):
    return evaluate(FakeEncoder(), suite, data, progress=False, **kw)


def write_mmeb_task(root, name, rows):
    folder = root / name
    folder.mkdir(parents=True)
    table = pa.table({"qry_text": [r[0] for r in rows], "qry_img_path": [r[1] for r in rows],
                      "tgt_text": [r[2] for r in rows], "tgt_img_path": [r[3] for r in rows]})
    pq.write_table(table, folder / "test-00000-of-00001.parquet")


def test_mmeb_v1_scores_100_and_0_and_groups(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for colour in ("red", "blue", "green"):
        colour_image(images / f"{colour}.png", colour)
    inst = "<|image_1|>\nRepresent the given image for classification\n"
    # ImageNet-1K (ID): gold (index 0) is the colour of the image -> 100
    write_mmeb_task(tmp_path, "ImageNet-1K", [(inst, "red.png", ["red", "blue"], ["", ""]),
                                              (inst, "green.png", ["green", "blue", "red"], ["", "", ""])])
    # ImageNet-A (OOD): gold names a colour the image does not have -> 0
    write_mmeb_task(tmp_path, "ImageNet-A", [(inst, "red.png", ["blue", "red"], ["", ""])])
    evaluation = scores("mmeb-v1", tmp_path)
    payload = evaluation.payload
    assert payload["scores"] == {"ImageNet-1K": 100.0, "ImageNet-A": 0.0}
    assert payload["groups"]["distribution/ID"] == 100.0 and payload["groups"]["distribution/OOD"] == 0.0
    assert payload["groups"]["meta-task/classification"] == 50.0
    assert payload["chance"]["ImageNet-1K"] == pytest.approx(100 * (1 / 2 + 1 / 3) / 2, abs=1e-3)
    only = scores("mmeb-v1", tmp_path, datasets=["ImageNet-A"])
    assert list(only.payload["scores"]) == ["ImageNet-A"]
    with pytest.raises(ConfigError, match="ImageNet-B"):
        scores("mmeb-v1", tmp_path, datasets=["ImageNet-B"])


def test_sugarcrepe_accuracy_with_strict_ties(tmp_path):
    (tmp_path / "images").mkdir()
    colour_image(tmp_path / "images" / "red.png", "red")
    colour_image(tmp_path / "images" / "blue.png", "blue")
    entries = {"0": {"filename": "red.png", "caption": "red", "negative_caption": "blue"},
               "1": {"filename": "blue.png", "caption": "red", "negative_caption": "blue"},
               "2": {"filename": "blue.png", "caption": "green", "negative_caption": "yellow"}}  # tie -> wrong
    (tmp_path / "swap_obj.json").write_text(json.dumps(entries))
    payload = scores("sugarcrepe", tmp_path).payload
    assert payload["scores"] == {"swap_obj": pytest.approx(100 / 3, abs=1e-3)}
    assert payload["chance"] == {"swap_obj": 50.0}


def test_text_video_both_directions_and_median_rank(tmp_path):
    folder = tmp_path / "MSR-VTT"
    for colour in ("red", "blue", "green"):
        frames = folder / colour
        frames.mkdir(parents=True)
        for i in range(3):
            colour_image(frames / f"frame_{i:04d}.jpg", colour)
    rows = [{"video": "red", "captions": ["red", "yellow"]}, {"video": "blue", "captions": ["blue"]},
            {"video": "green", "caption": "green"}]
    (folder / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    evaluation = scores("text-video", tmp_path)
    metrics = evaluation.payload["metrics"]
    # t2v: "yellow" matches no video: ties broken by order -> red video (its own) is rank 1. All 4 hit.
    assert metrics["MSR-VTT t2v"]["hit@1"] == 100.0 and metrics["MSR-VTT t2v"]["median_rank"] == 1.0
    assert metrics["MSR-VTT v2t"]["hit@1"] == 100.0
    assert evaluation.payload["scores"]["MSR-VTT v2t"] == 100.0


def test_long_captions_must_score_zero_when_captions_are_swapped(tmp_path):
    folder = tmp_path / "Urban1K"
    folder.mkdir()
    colour_image(folder / "a.png", "red")
    colour_image(folder / "b.png", "blue")
    rows = [{"image": "a.png", "caption": "a long caption about blue things"},
            {"image": "b.png", "caption": "a long caption about red things"}]
    (folder / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    payload = scores("long-captions", tmp_path).payload
    assert payload["scores"] == {"Urban1K t2i": 0.0, "Urban1K i2t": 0.0}


def test_circo_map_at_k(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    names = {1: "red", 2: "blue", 3: "green", 4: "blue", 5: "yellow"}
    for image_id, colour in names.items():
        colour_image(images / f"{image_id:012d}.jpg", colour)
    (tmp_path / "annotations").mkdir()
    annotations = [{"id": 0, "reference_img_id": 1, "relative_caption": "blue blue", "gt_img_ids": [2, 4]},
                   {"id": 1, "reference_img_id": 3, "relative_caption": "yellow yellow", "gt_img_ids": [1]}]
    (tmp_path / "annotations" / "val.json").write_text(json.dumps(annotations))
    payload = scores("circo", tmp_path).payload
    # query 0: both blue images rank 1-2 -> AP 1; query 1: red image (1) ties with blue ones below yellow (5) and
    # green (3): ranking 5, 3, then 1 -> AP@5 = (1/3) / 1
    assert payload["metrics"]["CIRCO"]["map@5"] == pytest.approx(100 * (1 + 1 / 3) / 2, abs=1e-3)
    assert payload["scores"]["CIRCO"] == pytest.approx(100 * (1 + 1 / 3) / 2, abs=1e-3)
    assert "map@50" in payload["metrics"]["CIRCO"]


def test_fashioniq_per_category_and_average(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "captions").mkdir()
    (tmp_path / "image_splits").mkdir()
    for image_id, colour in {"d1": "red", "d2": "blue", "d3": "green"}.items():
        colour_image(tmp_path / "images" / f"{image_id}.png", colour)
    (tmp_path / "image_splits" / "split.dress.val.json").write_text(json.dumps(["d1", "d2", "d3"]))
    (tmp_path / "captions" / "cap.dress.val.json").write_text(json.dumps([
        {"candidate": "d1", "target": "d2", "captions": ["is blue", "blue blue"]}]))
    evaluation = scores("fashioniq", tmp_path)
    assert evaluation.payload["scores"] == {"FashionIQ-dress": 100.0}
    assert evaluation.payload["groups"]["average of R@10 and R@50"] == 100.0
    assert evaluation.payload["overall"] == 100.0


def test_mbeir_local_and_global_pool(tmp_path):
    (tmp_path / "mbeir_images").mkdir()
    for colour in ("red", "blue", "green"):
        colour_image(tmp_path / "mbeir_images" / f"{colour}.png", colour)
    for sub in ("query/test", "cand_pool/local", "cand_pool/global", "qrels/test"):
        (tmp_path / sub).mkdir(parents=True)
    pool = [{"did": f"9:{c}", "txt": "", "img_path": f"mbeir_images/{c}.png", "modality": "image"} for c in ("red", "blue", "green")]
    (tmp_path / "cand_pool/local/mbeir_mscoco_task0_test_cand_pool.jsonl").write_text("\n".join(json.dumps(r) for r in pool))
    (tmp_path / "cand_pool/global/mbeir_union_test_cand_pool.jsonl").write_text(
        "\n".join(json.dumps(r) for r in [{"did": "9:text", "txt": "red", "img_path": "", "modality": "text"}] + pool))
    queries = [{"qid": f"9:{i}", "query_txt": c, "query_img_path": "", "query_modality": "text",
                "pos_cand_list": [f"9:{c}"], "neg_cand_list": []} for i, c in enumerate(("red", "blue"))]
    (tmp_path / "query/test/mbeir_mscoco_task0_test.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    local = scores("mbeir", tmp_path).payload
    assert local["scores"] == {"mscoco_task0": 100.0} and local["main_metric"]["mscoco_task0"] == "hit@5"
    assert local["groups"]["meta-task/t->i"] == 100.0
    glob = scores("mbeir", tmp_path, pool="global").payload
    # the text candidate "red" ties with the red image and comes first in the pool: hit@1 drops, hit@5 does not
    assert glob["metrics"]["mscoco_task0"]["hit@1"] == 50.0 and glob["scores"]["mscoco_task0"] == 100.0
    # a data root holding the repository folder TIGER-Lab/M-BEIR reads the same
    import shutil

    for sub in ("query", "cand_pool", "mbeir_images"):
        shutil.copytree(tmp_path / sub, tmp_path / "root/TIGER-Lab/M-BEIR" / sub)
    assert scores("mbeir", tmp_path / "root").payload["scores"] == {"mscoco_task0": 100.0}
    with pytest.raises(InputError, match="looked for .*TIGER-Lab/M-BEIR/query/test"):
        scores("mbeir", tmp_path / "root" / "TIGER-Lab")
    with pytest.raises(ConfigError, match="pool"):
        get_suite("sugarcrepe").load_tasks(tmp_path, SuiteOptions(pool="global"))


def test_synthetic_reads_metadata(tmp_path):
    colour_image(tmp_path / "red.png", "red")
    write_mmeb_task(tmp_path / "tasks", "colour-cls", [("<|image_1|>\nRepresent the given image\n", "red.png",
                                                        ["red", "blue"], ["", ""])])
    write_mmeb_task(tmp_path / "tasks", "colour-pool", [("red", "", ["", "", ""], ["blue.png", "red.png", "green.png"]),
                                                         ("blue", "", ["", ""], ["red.png", "blue.png"])])
    for colour in ("blue", "green"):
        colour_image(tmp_path / f"{colour}.png", colour)
    # the generator's metadata.json shape: parquet path, media_root, chance in percent, ranking
    metadata = {"name": "uniembed-synth", "tasks": [
        {"name": "colour-cls", "layout": "mmeb_v1", "path": "tasks/colour-cls/test-00000-of-00001.parquet",
         "media_root": "", "meta_task": "classification", "modality_group": "image", "ranking": "local",
         "metric": "hit@1", "chance_percent": 50.0, "in_distribution": True},
        {"name": "colour-pool", "layout": "mmeb_v1", "path": "tasks/colour-pool/test-00000-of-00001.parquet",
         "media_root": "", "meta_task": "retrieval", "modality_group": "image", "ranking": "global",
         "metric": "hit@1", "chance_percent": 33.3333, "in_distribution": False}]}
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    evaluation = scores("synthetic", tmp_path)
    payload = evaluation.payload
    # colour-pool as a local task would score 0 (gold first is the wrong colour); ranked against the pool
    # {blue, red, green} each query's gold is still wrong -> 0, while its own colour is found at rank 1
    assert payload["scores"] == {"colour-cls": 100.0, "colour-pool": 0.0}
    assert payload["chance"] == {"colour-cls": 50.0, "colour-pool": pytest.approx(33.3333, abs=1e-3)}
    pool_task = evaluation.tasks[1]
    assert not pool_task.is_local and len(pool_task.candidates) == 3 and pool_task.qrels == [{0: 1.0}, {1: 1.0}]
    assert payload["groups"]["distribution/ID"] == 100.0
    (tmp_path / "metadata.json").write_text(json.dumps({"tasks": [{"name": "x", "layout": "nope", "path": "x"}]}))
    with pytest.raises(InputError, match="unknown layout"):
        scores("synthetic", tmp_path)


def test_missing_data_names_the_layout(tmp_path):
    with pytest.raises(InputError, match="annotations"):
        scores("circo", tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        scores("text-video", tmp_path / "nope")
    with pytest.raises(ConfigError, match="unknown suite"):
        get_suite("mmeb-v3")
    assert len(COLOURS) >= 4
