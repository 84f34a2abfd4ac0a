"""A multi-vector encode (`Options.multi_vector`: the model's `encode_multi` token matrices) writes the ragged store
and resumes after a kill like a single-vector one: finished shards are kept, damaged or missing ones redone."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from uniembed.corpus import Options, encode_corpus
from uniembed.index.multistore import read_multi_embeddings
from uniembed.index.store import read_embeddings


class FakeMultiModel:
    """Deterministic per-text token matrices (1 + len(text) % 4 tokens of 8 dims); can die after some calls."""

    model_id = "fake-multi"
    dimension = 16
    multi_vector_dimension = 8

    def __init__(self, die_after: int | None = None) -> None:
        self.calls, self.die_after, self.encoded = 0, die_after, []

    def encode_multi(self, items, batch_size=32, instruction=None, prompt_name=None, show_progress_bar=False):
        self.calls += 1
        if self.die_after is not None and self.calls > self.die_after:
            raise KeyboardInterrupt("killed")
        out = []
        for item in items:
            self.encoded.append(item.text)
            seed = int(hashlib.sha256(item.text.encode()).hexdigest()[:8], 16)
            tokens = np.random.default_rng(seed).standard_normal((1 + len(item.text) % 4, 8)).astype(np.float32)
            out.append(tokens / np.linalg.norm(tokens, axis=1, keepdims=True))
        return out


def test_multi_vector_encode_resumes_after_a_kill(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{i}", "text": "x" * i}) + "\n" for i in range(1, 7)))
    out = tmp_path / "emb"
    options = Options(shard_size=2, batch_size=2, progress=False, multi_vector=True)
    with pytest.raises(KeyboardInterrupt):
        encode_corpus(FakeMultiModel(die_after=2), path, out, options)  # shards 0 and 1 done, then killed
    assert not (out / "manifest.jsonl").exists()
    model = FakeMultiModel()
    summary = encode_corpus(model, path, out, options)
    assert summary.resumed == 4 and summary.encoded == 2 and model.encoded == ["x" * 5, "x" * 6]
    ids, items = read_multi_embeddings(out)
    reference = FakeMultiModel().encode_multi([type("I", (), {"text": "x" * i})() for i in range(1, 7)])
    assert ids == [f"t{i}" for i in range(1, 7)]
    assert [len(t) for t in items] == [1 + i % 4 for i in range(1, 7)]
    for got, want in zip(items, reference):
        np.testing.assert_array_equal(got, want)
    info = json.loads((out / "info.json").read_text())
    assert info["kind"] == "multi_vector" and info["dimension"] == 8 and info["tokens"] == sum(map(len, items))
    shard = out / "shard-00001.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # same size, damaged content: redone
    shard.write_bytes(bytes(data))
    model = FakeMultiModel()
    assert encode_corpus(model, path, out, options).resumed == 4 and model.encoded == ["x" * 3, "x" * 4]
    assert [len(t) for t in read_multi_embeddings(out)[1]] == [len(t) for t in items]


def test_a_single_vector_rerun_redoes_multi_vector_shards(tmp_path):
    """Shards of the other kind never count as done: the kinds never mix in one directory."""
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{i}", "text": "x" * i}) + "\n" for i in range(1, 3)))
    out = tmp_path / "emb"
    encode_corpus(FakeMultiModel(), path, out, Options(progress=False, multi_vector=True))

    class Single(FakeMultiModel):
        dimension = 8

        def encode(self, items, **kwargs):
            return np.ones((len(items), 8), np.float32) / np.sqrt(8)

    assert encode_corpus(Single(), path, out, Options(progress=False)).resumed == 0
    assert read_embeddings(out)[1].shape == (2, 8)
