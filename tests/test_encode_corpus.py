"""`uniembed encode` as a new user meets it (issue 19): PDF pages streamed, the model id carried to the index,
resume that verifies shards, and error rows, bad rows and metadata that name the right things."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from uniembed.cli.main import main
from uniembed.index.store import read_embeddings


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


PEAK_SCRIPT = """
import json, resource, sys
from pathlib import Path
import pypdfium2 as pdfium
from uniembed.cli.main import main

folder = Path(sys.argv[1])
peaks = []
for pages in (2, 12):
    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(2500, 2500)  # at 72 dpi one page is 2500 x 2500 RGB = 18.75 MB
    pdf.save(folder / f"doc{pages}.pdf")
    (folder / f"rows{pages}.jsonl").write_text(json.dumps({"id": "manual", "pdf": f"doc{pages}.pdf"}) + "\\n")
    code = main(["encode", "--model", "tiny", "--input", str(folder / f"rows{pages}.jsonl"), "--out",
                 str(folder / f"out{pages}"), "--pdf-dpi", "72", "--batch-size", "2", "--no-progress"])
    assert code == 0
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
print(json.dumps(peaks))
"""


def test_pdf_pages_are_encoded_as_a_stream_with_bounded_memory(tmp_path):
    """Peak memory after a 12-page PDF stays near the peak after a 2-page one (holding the pages would add 190 MB+)."""
    run = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    small, large = json.loads(run.stdout.strip().splitlines()[-1])
    assert large - small < 120, f"peak RSS grew from {small} MB to {large} MB with 10 more pages"
    ids, _ = read_embeddings(tmp_path / "out12")
    assert ids == [f"manual#page={n}" for n in range(12)]


def test_encode_writes_the_model_id_that_index_build_records(tmp_path, tiny_embedder):
    write_jsonl(tmp_path / "rows.jsonl", [{"id": f"t{i}", "text": f"text {i}"} for i in range(3)])
    assert main(["encode", "--model", "tiny", "--input", str(tmp_path / "rows.jsonl"), "--out", str(tmp_path / "emb"),
                 "--no-progress"]) == 0
    info = json.loads((tmp_path / "emb" / "info.json").read_text())
    assert info["model_id"] == tiny_embedder.model_id and info["model"] == "tiny" and info["count"] == 3
    assert main(["index", "build", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "index")]) == 0
    assert json.loads((tmp_path / "index" / "index.json").read_text())["model_id"] == tiny_embedder.model_id


def test_resume_verifies_shards_and_redoes_damaged_ones(tmp_path, capsys):
    write_jsonl(tmp_path / "rows.jsonl", [{"id": f"t{i}", "text": f"caption {i} " * (1 + i)} for i in range(8)])
    out = tmp_path / "emb"
    args = ["encode", "--model", "tiny", "--input", str(tmp_path / "rows.jsonl"), "--out", str(out), "--shard-size", "2",
            "--no-progress"]
    assert main(args) == 0
    ids, vectors = read_embeddings(out)
    capsys.readouterr()
    (out / "shard-00001.npy").unlink()                                           # deleted
    shard = out / "shard-00002.npy"
    shard.write_bytes(shard.read_bytes()[:-16])                                  # truncated
    shard = out / "shard-00003.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF                                                             # same size, damaged content
    shard.write_bytes(bytes(data))
    with open(out / "manifest.jsonl", "ab") as handle:                           # invalid UTF-8 at the end
        handle.write(b'{"id": "t\xff\xfe')
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("encoded 6 items, 2 already done (resumed)")
    resumed_ids, resumed = read_embeddings(out)
    assert resumed_ids == ids
    np.testing.assert_allclose(resumed, vectors, atol=1e-6)
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("encoded 0 items, 8 already done")


def test_encode_rows_bad_pdfs_and_metadata_name_the_right_things(tmp_path, media_dir, capsys):
    (media_dir / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    rows = [{"id": "ok", "text": "fine", "metadata": {"title": "First", "url": "https://example.org/1"}},
            {"id": "manual", "pdf": "broken.pdf"},
            {"id": "doc", "pdf": "doc.pdf", "metadata": {"title": "Two pages"}},
            {"id": "gone", "image": "missing.png"}]
    path = media_dir / "rows.jsonl"
    write_jsonl(path, rows)
    out = tmp_path / "emb"
    assert main(["encode", "--model", "tiny", "--input", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "row 2" in err and "'manual'" in err  # 1-based, as the JSONL line
    assert main(["encode", "--model", "tiny", "--input", str(path), "--out", str(out), "--skip-bad", "--no-progress"]) == 0
    bad = [json.loads(line) for line in (out / "bad_rows.jsonl").read_text().splitlines()]
    assert [(entry["line"], entry["id"]) for entry in bad] == [(2, "manual"), (4, "gone")]
    missing = bad[1]["error"]
    assert "data root" not in missing and f"input file's folder {media_dir}" in missing
    metadata = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert metadata == [{"id": "ok", "text": "fine", "title": "First", "url": "https://example.org/1"},
                        {"id": "doc#page=0", "pdf": "doc.pdf", "title": "Two pages", "page": 0},
                        {"id": "doc#page=1", "pdf": "doc.pdf", "title": "Two pages", "page": 1}]
    from uniembed.serving.search import read_metadata

    assert read_metadata(out / "metadata.jsonl")["doc#page=1"]["title"] == "Two pages"
