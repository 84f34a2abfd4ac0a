"""Row numbers in data errors count from 1 in every format: "row 3" is the third data row of a parquet
table and line 3 of a JSONL file (issue 19, point 9: parquet used to say "row 2" for the third row)."""
from __future__ import annotations

import pytest

from data_fixtures import jsonl, parquet, png
from uniembed.data.readers import ReadReport, read_mmeb_train
from uniembed.errors import InputError

COLUMNS = {
    "qry": ["<|image_1|>\nRepresent the given image\n"] * 3,
    "qry_image_path": ["s/a.jpg", "s/a.jpg", "s/missing.jpg"],  # the third row is the bad one
    "pos_text": ["one", "two", "three"],
    "pos_image_path": ["", "", ""],
}


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_the_third_row_is_row_3_in_parquet_and_jsonl(tmp_path, suffix):
    png(tmp_path / "images" / "s" / "a.jpg")
    path = tmp_path / "S" / f"original.{suffix}"
    if suffix == "parquet":
        parquet(path, COLUMNS)
    else:
        jsonl(path, [dict(zip(COLUMNS, values)) for values in zip(*COLUMNS.values())])
    with pytest.raises(InputError) as error:
        read_mmeb_train(path, tmp_path / "images")
    assert f"original.{suffix}', row 3: " in str(error.value) and "missing.jpg" in str(error.value)
    report = ReadReport()
    read_mmeb_train(path, tmp_path / "images", skip_bad_rows=True, report=report)
    assert [bad.row for bad in report.bad_rows] == [3]
    assert f"original.{suffix}', row 3: " in report.summary()
