"""MMEB-train's image root: the reference's versions disagree (MMEB-train/image vs MMEB-train/), so the
default is the first that holds the table's images, and a miss lists every folder tried."""
import pytest
from data_fixtures import parquet, png

from uniembed.data.readers import read_mmeb_train
from uniembed.errors import InputError


def subset(tmp_path):
    return parquet(tmp_path / "MMEB-train" / "ImageNet_1K" / "original-00000-of-00001.parquet", {
        "qry": ["<|image_1|>\nRepresent the given image for classification\n"], "qry_image_path": ["ImageNet_1K/a.jpg"],
        "pos_text": ["tench"], "pos_image_path": [""]})


@pytest.mark.parametrize("folder", ["image", "images", ""])
def test_default_image_root_is_the_first_folder_holding_the_images(tmp_path, folder):
    table = subset(tmp_path)
    image = png(tmp_path / "MMEB-train" / folder / "ImageNet_1K" / "a.jpg")
    examples = read_mmeb_train(table)
    assert examples[0].query.image == str(image) and examples[0].positives[0].text == "tench"


def test_missing_images_list_the_roots_tried(tmp_path):
    table = subset(tmp_path)
    with pytest.raises(InputError, match=r"tried '.*MMEB-train/image', '.*MMEB-train/images', '.*MMEB-train'"):
        read_mmeb_train(table)
