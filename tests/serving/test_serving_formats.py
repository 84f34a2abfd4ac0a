"""`encoding_format` int8/uint8/binary/ubinary: quantised vectors from the real app, equal to a hand computation."""
from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import vectors

from uniembed.errors import ConfigError
from uniembed.serving import ServerConfig, create_app

TEXTS = ["a red square", "the blue sea", "grey cat on a mat", "x y z"]


@pytest.fixture(scope="module")
def ranges_file(tiny_embedder, tmp_path_factory):
    """Ranges calibrated on other texts than the requests', so some request values fall outside and are clipped."""
    sample = tiny_embedder.encode(["calibration one", "two words", "a third sentence here"])
    path = tmp_path_factory.mktemp("ranges") / "ranges.npy"
    np.save(path, np.stack([sample.min(axis=0), sample.max(axis=0)]).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def client(tiny_embedder, ranges_file):
    with TestClient(create_app(tiny_embedder, ServerConfig(ranges=ranges_file))) as c:
        yield c


def post(client, encoding_format: str, **extra):
    return client.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": encoding_format, **extra})


def hand_codes(floats: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """uint8 codes by hand: each dimension's [min, max] in 255 steps, rounded to the nearest, clipped."""
    step = (ranges[1].astype(np.float64) - ranges[0]) / 255
    return np.clip(np.rint((floats - ranges[0]) / step), 0, 255).astype(np.int64)


def test_int8_and_uint8_quantise_the_float_vectors_on_the_servers_ranges(client, ranges_file):
    floats = vectors(post(client, "float"))
    ranges = np.load(ranges_file)
    codes = hand_codes(floats, ranges)
    assert 0 in codes and 255 in codes  # some values were outside the calibrated range: clipped
    for name, want in (("uint8", codes), ("int8", codes - 128)):
        response = post(client, name)
        assert response.status_code == 200, response.text
        got = np.array([row["embedding"] for row in response.json()["data"]])
        assert got.shape == floats.shape and got.dtype.kind == "i"
        np.testing.assert_array_equal(got, want)


def test_binary_and_ubinary_pack_the_sign_bits(client):
    floats = vectors(post(client, "float", dimensions=32))
    bits = (floats > 0).astype(np.int64).reshape(len(TEXTS), 4, 8)
    packed = (bits * (1 << np.arange(7, -1, -1))).sum(axis=2)  # first dimension = the high bit, as np.packbits
    for name, want in (("ubinary", packed), ("binary", packed - 128)):
        response = post(client, name, dimensions=32)
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal([row["embedding"] for row in response.json()["data"]], want)


@pytest.mark.parametrize("body, needle", [
    ({"encoding_format": "int8", "dimensions": 32}, "the server's ranges are 64-d but the vectors are 32-d"),
    ({"encoding_format": "binary", "dimensions": 12}, "packs 8 dimensions per byte, but the vectors are 12-d"),
])
def test_formats_the_width_cannot_give_are_400(client, body, needle):
    response = client.post("/v1/embeddings", json={"input": TEXTS, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "encoding_format" and needle in error["message"]


def test_int8_without_ranges_is_refused_naming_the_option(tiny_embedder):
    with TestClient(create_app(tiny_embedder, ServerConfig())) as client:
        response = post(client, "int8")
        assert response.status_code == 400
        assert "start it with `uniembed serve --ranges DIR/ranges.npy`" in response.json()["error"]["message"]
        assert post(client, "ubinary").status_code == 200  # binary needs no ranges


def test_bad_ranges_files_fail_at_start(tiny_embedder, tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(64, np.float32))
    with pytest.raises(ConfigError, match="not 2 x D per-dimension"):
        create_app(tiny_embedder, ServerConfig(ranges=tmp_path / "flat.npy"))
    np.save(tmp_path / "wide.npy", np.zeros((2, 128), np.float32))
    with pytest.raises(ConfigError, match="is 128-d but the model gives 64 dimensions"):
        create_app(tiny_embedder, ServerConfig(ranges=tmp_path / "wide.npy"))
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(ConfigError, match="cannot be read as a .npy array"):
        create_app(tiny_embedder, ServerConfig(ranges=tmp_path / "text.npy"))


def test_cli_flag_maps_onto_the_config():
    import argparse

    from uniembed.cli import serve

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    assert serve.build_config(parser.parse_args(["serve", "--model", "m", "--ranges", "r.npy"])).ranges == "r.npy"
    assert serve.build_config(parser.parse_args(["serve", "--model", "m"])).ranges is None
