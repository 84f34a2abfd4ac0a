"""`uniembed encode` and `uniembed info`: shards + manifest, resume, PDFs, bad rows."""
from __future__ import annotations

import json

import numpy as np

from uniembed.cli.main import main
from uniembed.index.store import read_embeddings


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_encode_writes_shards_resumes_and_expands_pdfs(media_dir, tiny_embedder, tmp_path, capsys):
    rows = [{"id": f"t{i}", "text": f"caption number {i}"} for i in range(5)]
    rows += [{"id": "img", "image": "red.png", "text": "a red shape"}, {"id": "doc", "pdf": "doc.pdf"},
             {"id": "vid", "video": "clip"}]
    write_jsonl(media_dir / "items.jsonl", rows)
    out = tmp_path / "emb"
    args = ["encode", "--model", "tiny", "--input", str(media_dir / "items.jsonl"), "--out", str(out), "--shard-size", "3"]
    assert main(args) == 0
    ids, vectors = read_embeddings(out)
    assert ids == ["t0", "t1", "t2", "t3", "t4", "img", "doc#page=0", "doc#page=1", "vid"]
    assert vectors.shape == (9, tiny_embedder.dimension)
    np.testing.assert_allclose(vectors[:5], tiny_embedder.encode([r["text"] for r in rows[:5]]), atol=1e-5)
    shards_before = sorted(p.name for p in out.glob("shard-*.npy"))
    # a second run finds everything done and redoes nothing
    assert main(args) == 0
    assert "0 items" in capsys.readouterr().out.splitlines()[-1]
    assert sorted(p.name for p in out.glob("shard-*.npy")) == shards_before
    # an interrupted run (manifest holds only the first shard) resumes with the rest
    manifest = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(manifest[:3]) + "\n")
    for extra in shards_before[1:]:
        (out / extra).unlink()
    assert main(args) == 0
    resumed_ids, resumed = read_embeddings(out)
    assert resumed_ids == ids
    np.testing.assert_allclose(resumed, vectors, atol=1e-6)


def test_encode_bad_rows_fail_or_skip(media_dir, tmp_path, capsys):
    rows = [{"id": "ok", "text": "fine"}, {"id": "gone", "image": "missing.png"}, {"id": "empty"}, {"id": "ok2", "text": "also fine"}]
    path = media_dir / "bad.jsonl"
    write_jsonl(path, rows)
    with path.open("a") as handle:
        handle.write("{not json\n")
    out = tmp_path / "emb"
    code = main(["encode", "--model", "tiny", "--input", str(path), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "row 3" in err and "empty item" in err and "bad.jsonl" in err
    code = main(["encode", "--model", "tiny", "--input", str(path), "--out", str(out), "--skip-bad"])
    assert code == 0
    ids, _ = read_embeddings(out)
    assert ids == ["ok", "ok2"]
    bad = [json.loads(line) for line in (out / "bad_rows.jsonl").read_text().splitlines()]
    assert sorted(entry["line"] for entry in bad) == [2, 3, 5]
    assert any("missing.png" in entry["error"] and "file not found" in entry["error"] for entry in bad)


def test_info(capsys):
    assert main(["info", "--model", "tiny", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backbone"] == "Qwen2VLBackbone" and info["embedding_config"]["pooling"] == "last"


def test_encode_resumes_after_a_kill_cut_the_manifest_mid_line(tmp_path):
    rows = [{"id": f"t{i}", "text": f"caption {i}"} for i in range(4)]
    write_jsonl(tmp_path / "items.jsonl", rows)
    out = tmp_path / "emb"
    args = ["encode", "--model", "tiny", "--input", str(tmp_path / "items.jsonl"), "--out", str(out), "--shard-size", "2"]
    assert main(args) == 0
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:9])  # killed while appending
    (out / "shard-00001.npy").unlink()
    assert main(args) == 0
    ids, vectors = read_embeddings(out)
    assert ids == ["t0", "t1", "t2", "t3"] and vectors.shape[0] == 4
