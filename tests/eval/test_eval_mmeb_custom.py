"""A data set of one's own in the MMEB layout (scikit-learn's 8x8 digits, or digits drawn with PIL) read by
the mmeb-v1 and mmeb-v2 suites when --datasets names its folder: scored exactly, grouped as "custom", and
left out of the overall and the published comparison."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from eval_fakes import FakeEncoder, colour_image, word_slot

from uniembed.cli.main import main
from uniembed.data.readers.catalog import MMEB_V1_TASKS
from uniembed.data.synth.digits import INSTRUCTION, LABELS, digit_images, write_digits_mmeb
from uniembed.errors import ConfigError, InputError
from uniembed.eval.evaluate import evaluate
from uniembed.media import load_image

IMAGES, TARGETS = digit_images()  # LABELS are ten distinct slots of the fake encoder
CENTROIDS = np.stack([IMAGES[TARGETS == label].reshape(-1, 64).astype(np.float64).mean(axis=0) for label in range(10)])


def nearest_label(pixels: np.ndarray) -> int:
    return int(np.argmin(((CENTROIDS - pixels.reshape(1, 64).astype(np.float64)) ** 2).sum(axis=1)))


class DigitEncoder(FakeEncoder):
    """The colour-word encoder, but an 8x8 grey image embeds as the word of its nearest digit centroid."""

    model_id = "fake-digit-words"

    def vector(self, item):
        image = load_image(item.image_sources[0]) if item.image_sources and not item.text else None
        if image is None or image.size != (8, 8):
            return super().vector(item)
        v = np.zeros(64, dtype=np.float32)
        v[word_slot(LABELS[nearest_label(np.asarray(image.convert("L")))])] = 1.0
        return v


def write_digits(root, name="Digits", images_under="eval_images"):
    """An MMEB-layout classification task: each digit image ranks the ten label words, gold first."""
    write_digits_mmeb(root, name, images_under, IMAGES, TARGETS)


def expected_hit1() -> float:
    """Nearest-centroid accuracy, computed without the suite: what hit@1 must be."""
    return 100.0 * float(np.mean([nearest_label(p) == t for p, t in zip(IMAGES, TARGETS)]))


def test_labels_do_not_collide():
    assert len({word_slot(word) for word in LABELS}) == 10
    assert expected_hit1() > 50.0  # far above chance (10): the ranking is the encoder's, not the ties'


def test_mmeb_v1_reads_a_folder_of_ones_own(tmp_path):
    write_digits(tmp_path)
    evaluation = evaluate(DigitEncoder(), "mmeb-v1", tmp_path, datasets=["Digits"], progress=False)
    assert evaluation.payload["scores"] == {"Digits": pytest.approx(expected_hit1())}
    assert evaluation.payload["groups"] == {"meta-task/custom": pytest.approx(expected_hit1()),
                                            "modality/custom": pytest.approx(expected_hit1())}
    assert evaluation.payload["overall"] == pytest.approx(expected_hit1())  # nothing else was scored
    with pytest.raises(ConfigError, match=r"no data set\(s\) \['Letters'\].*no folder of that name"):
        evaluate(DigitEncoder(), "mmeb-v1", tmp_path, datasets=["Digits", "Letters"], progress=False)
    with pytest.raises(InputError, match=r"e.g. ImageNet-1K/, Letters/\) found"):
        evaluate(DigitEncoder(), "mmeb-v1", tmp_path, datasets=["Letters"], progress=False)


def test_custom_task_is_left_out_of_overall_and_published_comparison(tmp_path):
    write_digits(tmp_path)
    colour_image(tmp_path / "eval_images" / "red.png", "red")
    for name in MMEB_V1_TASKS:  # every benchmark data set, one row each, gold = the image's colour -> 100
        (tmp_path / name).mkdir()
        pq.write_table(pa.table({"qry_text": [INSTRUCTION], "qry_img_path": ["red.png"], "tgt_text": [["red", "blue"]],
                                 "tgt_img_path": [["", ""]]}), tmp_path / name / "test-00000-of-00001.parquet")
    evaluation = evaluate(DigitEncoder(), "mmeb-v1", tmp_path, tmp_path / "out",
                          datasets=[*MMEB_V1_TASKS, "Digits"], progress=False)
    payload = evaluation.payload
    assert len(payload["scores"]) == 37 and payload["scores"]["Digits"] == pytest.approx(expected_hit1())
    assert payload["overall"] == 100.0  # the 36 benchmark data sets only
    assert payload["groups"]["meta-task/custom"] == pytest.approx(expected_hit1())
    assert payload["groups"]["modality/image"] == 100.0 and payload["groups"]["meta-task/classification"] == 100.0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "RzenEmbed 7B (published)" in report  # the whole benchmark was scored: set beside published figures


def test_mmeb_v2_reads_a_folder_of_ones_own_and_check_lists_it(tmp_path, capsys):
    write_digits(tmp_path, images_under="Digits/images")
    evaluation = evaluate(DigitEncoder(), "mmeb-v2", tmp_path, datasets=["Digits"], progress=False)
    assert evaluation.payload["scores"] == {"Digits": pytest.approx(expected_hit1())}
    assert evaluation.results[0].meta_task == "custom" and evaluation.results[0].modality_group == "custom"
    for suite in ("mmeb-v1", "mmeb-v2"):
        data = tmp_path if suite == "mmeb-v2" else tmp_path / "v1"
        if suite == "mmeb-v1":
            write_digits(data)
        assert main(["eval", "--suite", suite, "--data", str(data), "--datasets", "Digits", "--check"]) == 0
        out = capsys.readouterr().out
        assert "[ok] Digits  <- a data set of one's own" in out and "1 of 1 data sets ready" in out, out


def test_cli_mmeb_v1_digits_on_the_tiny_model(tmp_path, tiny_embedder):
    """The command of the issue: `uniembed eval --suite mmeb-v1 --datasets Digits --data DIR`."""
    write_digits(tmp_path / "data")
    tiny_embedder.save_pretrained(tmp_path / "model")
    assert main(["eval", "--model", str(tmp_path / "model"), "--suite", "mmeb-v1", "--datasets", "Digits",
                 "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--batch-size", "16"]) == 0
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(payload["scores"]) == ["Digits"] and payload["groups"] == {
        "meta-task/custom": payload["scores"]["Digits"], "modality/custom": payload["scores"]["Digits"]}
