"""The one JSONL reader (`uniembed.jsonl.iter_json_lines`): data readers, manifests and metadata read through it."""
from __future__ import annotations

import pytest

from uniembed.errors import InputError
from uniembed.jsonl import iter_json_lines


def test_lines_numbered_blank_lines_skipped_and_a_cut_last_line_tolerated(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n[2]\n{"cut": ')
    assert list(iter_json_lines(path, allow_cut_last_line=True)) == [(1, {"a": 1}), (3, [2])]
    with pytest.raises(InputError, match=r"rows\.jsonl.*row 4.*invalid JSON"):
        list(iter_json_lines(path))
    path.write_text('{"a": 1}\n{"cut": \n{"b": 2}\n')  # a bad line that is not the last one always fails
    with pytest.raises(InputError, match="row 2"):
        list(iter_json_lines(path, allow_cut_last_line=True))


def test_objects_and_bad_lines_handed_to_the_caller(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n"text"\nnot json\n{"b": 2}\n')
    bad = []
    rows = list(iter_json_lines(path, objects=True, on_bad_line=lambda error, number: bad.append((number, error))))
    assert rows == [(1, {"a": 1}), (4, {"b": 2})]
    assert [number for number, _ in bad] == [2, 3] and "expected a JSON object" in str(bad[0][1])
