"""A warm `uniembed eval` (every vector cached) builds no model, runs no forward and imports neither torch nor
transformers: the model id comes from the record the cold run left in the cache (issue 26.1)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from eval_fakes import colour_image

from uniembed.cli.main import main
from uniembed.models import deferred
from uniembed.models.embedder import Embedder, EmbeddingModule


def write_data(root: Path) -> Path:
    (root / "data").mkdir()
    for colour in ("red", "blue"):
        colour_image(root / "data" / f"{colour}.png", colour)
    folder = root / "data" / "tasks" / "t1"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"qry_text": ["<|image_1|>\nRepresent the given image\n"] * 2,
                             "qry_img_path": ["red.png", "blue.png"],
                             "tgt_text": [["red", "blue", "green"], ["blue", "red", "green"]],
                             "tgt_img_path": [["", "", ""], ["", "", ""]]}),
                   folder / "test-00000-of-00001.parquet")
    (root / "data" / "metadata.json").write_text(json.dumps({"tasks": [
        {"name": "t1", "layout": "mmeb", "path": "tasks/t1", "image_root": ".", "chance": 1 / 3}]}))
    return root / "data"


def eval_args(root: Path, model: str) -> list[str]:
    return ["eval", "--model", model, "--suite", "synthetic", "--data", str(root / "data"), "--out", str(root / "out"),
            "--batch-size", "2", "--device", "cpu"]


def results(root: Path) -> dict:
    return json.loads((root / "out" / "results.json").read_text())


def refuse_the_model(patch: pytest.MonkeyPatch) -> None:
    """Fails the test on any model build, weight load or forward pass."""
    def refuse(*args, **kwargs):
        raise AssertionError("a warm run built or ran the model")

    patch.setattr(Embedder, "from_pretrained", classmethod(refuse))
    patch.setattr(Embedder, "tiny", classmethod(refuse))
    patch.setattr(EmbeddingModule, "forward", refuse)


def test_a_warm_run_builds_no_model_and_scores_the_same(tmp_path, monkeypatch):
    write_data(tmp_path)
    assert main(eval_args(tmp_path, "tiny")) == 0
    cold = results(tmp_path)
    assert cold["encoding"]["encoded"] == 5
    with monkeypatch.context() as patch:
        refuse_the_model(patch)
        assert main(eval_args(tmp_path, "tiny")) == 0
    warm = results(tmp_path)
    assert warm["encoding"]["encoded"] == 0 and warm["encoding"]["from_cache"] == 5
    assert warm["scores"] == cold["scores"] and warm["model"] == cold["model"]


def test_a_warm_multi_vector_run_builds_no_model_and_scores_the_same(tmp_path, monkeypatch):
    write_data(tmp_path)
    Embedder.tiny(seed=0, multi_vector_dim=16).save_pretrained(tmp_path / "model")
    args = [*eval_args(tmp_path, str(tmp_path / "model")), "--multi-vector", "--pool-factor", "2"]
    assert main(args) == 0
    cold = results(tmp_path)
    assert cold["encoding"]["encoded"] == 5 and cold["multi_vector"]["pool_factor"] == 2
    with monkeypatch.context() as patch:
        refuse_the_model(patch)
        assert main(args) == 0
    warm = results(tmp_path)
    assert warm["encoding"]["encoded"] == 0 and warm["encoding"]["from_cache"] == 5
    assert warm["scores"] == cold["scores"] and warm["metrics"] == cold["metrics"]
    # the single-vector vectors of the same model are another table: a plain eval still encodes them
    assert main(eval_args(tmp_path, str(tmp_path / "model"))) == 0 and results(tmp_path)["encoding"]["encoded"] == 5


def test_a_warm_run_imports_neither_torch_nor_transformers(tmp_path):
    write_data(tmp_path)
    assert main(eval_args(tmp_path, "tiny")) == 0
    code = ("import sys\nfrom uniembed.cli.main import main\n"
            f"assert main({eval_args(tmp_path, 'tiny')!r}) == 0\n"
            "print(sorted(m for m in sys.modules if m in ('torch', 'transformers') or m.startswith('transformers.')))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True, env=env)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_missing_vector_builds_the_model_under_the_task_options(tmp_path, tiny_embedder):
    recorded = deferred.deferred_model("tiny", tmp_path, lambda: tiny_embedder)
    assert recorded is tiny_embedder and (tmp_path / deferred.RECORD_FILE).exists()
    built = []

    def build():
        built.append(1)
        return tiny_embedder

    stand_in = deferred.deferred_model("tiny", tmp_path, build)
    assert isinstance(stand_in, deferred.DeferredEmbedder) and not built
    assert stand_in.model_id == tiny_embedder.model_id and stand_in.config == tiny_embedder.config
    other = stand_in.with_options(pooling="mean")
    expected = tiny_embedder.with_options(pooling="mean")
    assert other.model_id == expected.model_id != stand_in.model_id and not built
    assert other.dimension == tiny_embedder.dimension and built == [1]  # built on the first real need, once
    assert other.built().config == expected.config and other.built().model_id == expected.model_id
    assert stand_in.built() is tiny_embedder and built == [1]


def test_a_changed_checkpoint_file_is_loaded_again(tmp_path, tiny_embedder):
    tiny_embedder.save_pretrained(tmp_path / "model")
    spec = str(tmp_path / "model")
    key = deferred.load_key(spec)
    assert deferred.load_key(spec) == key and deferred.load_key(spec, dtype="bfloat16") != key
    assert deferred.load_key(spec, profile="none") != key
    weights = next(p for p in (tmp_path / "model").iterdir() if p.suffix == ".safetensors")
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert deferred.load_key(spec) != key


def test_the_across_ranks_path_asks_a_cached_run_nothing_of_the_model(tmp_path):
    from uniembed.encoding import EmbeddingCache
    from uniembed.encoding.exchange import encode_across_ranks
    from uniembed.inputs import Item
    from uniembed.models.config import EmbeddingConfig
    from uniembed.parallel import World

    def build():
        raise AssertionError("the model was built for a run whose every vector is cached")

    encoder = deferred.DeferredEmbedder(build, EmbeddingConfig(), "digest", "tiny")
    items = [Item(text="a red circle"), Item(text="two blue squares")]
    cache = EmbeddingCache(tmp_path / "cache", encoder.model_id)
    cache.put([item.content_key() for item in items], np.eye(2, dtype=np.float32))
    table, stats = encode_across_ranks(encoder, items, World(), cache=cache, progress=False)
    assert stats.from_cache == 2 and table is not None and table.vectors.shape == (2, 2)
