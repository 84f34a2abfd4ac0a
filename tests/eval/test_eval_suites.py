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
