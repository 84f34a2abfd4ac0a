"""`uniembed encode --processes N` and `uniembed mine --processes N`: the launcher of `uniembed.launch` starts the
ranks (2 gloo ranks on CPU here), as `uniembed eval --processes N` does.

The output folders equal one process's (encode: every file, bit for bit; mine: the data, negatives and mixture,
and the report but for its shard count and timing); the launching process imports no torch; a failing rank makes
the command fail with the rank named; under torchrun the option is refused, and so is mine's with explicit
shard flags."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from uniembed.cli.main import main

COMMON = ["--model", "tiny", "--device", "cpu", "--batch-size", "4"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def make_inputs(folder: Path) -> dict[str, Path]:
    """An encode JSONL (texts of several lengths and an image, 4 shards of 4) and corpus-plus-ids mining data."""
    folder.mkdir()
    Image.new("RGB", (40, 32), "red").save(folder / "red.png")
    rows = [{"id": f"t{i}", "text": "caption " * (1 + i % 5) + str(i)} for i in range(13)]
    rows.insert(5, {"id": "img", "image": "red.png", "metadata": {"colour": "red"}})
    topics = ["fox", "tower", "mural", "river", "garden", "engine"]
    corpus = [{"docid": f"{topic}{k}", "text": f"a note on the {topic}, part {k}" + "!" * k}
              for topic in topics for k in range(3)]
    queries = [{"query_id": f"q{n}", "query_text": f"tell me about the {topic}",
                "positive_document_ids": [f"{topic}0"], "negative_document_ids": []} for n, topic in enumerate(topics)]
    return {"encode": write_jsonl(folder / "encode.jsonl", rows),
            "corpus": write_jsonl(folder / "corpus.jsonl", corpus),
            "queries": write_jsonl(folder / "queries.jsonl", queries)}


def encode_args(inputs: dict[str, Path], out: Path) -> list[str]:
    return ["encode", *COMMON, "--input", str(inputs["encode"]), "--out", str(out), "--shard-size", "4",
            "--no-progress"]


def mine_args(inputs: dict[str, Path], out: Path) -> list[str]:
    return ["mine", *COMMON, "--queries", str(inputs["queries"]), "--corpus", str(inputs["corpus"]),
            "--out", str(out), "--top", "8", "--num-negatives", "3", "--save-ranking"]


def folder_files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def mined_outputs(out: Path) -> dict[str, object]:
    """What a user reads from a mining folder, with the folder's own path (named in the report) left out."""
    report = json.loads((out / "report.json").read_text())
    outputs = {name: path.replace(str(out), "OUT") for name, path in report.pop("outputs").items()}
    mixture = (out / "mixture.yaml").read_text().replace(str(out), "OUT")
    return {"report": report, "outputs": outputs, "mixture": mixture,
            **{name: (out / name).read_text() for name in ("queries.jsonl", "negatives.jsonl")}}


def run_python(code: str, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
@pytest.mark.distributed  # encode, mine and a multi-vector encode in one process, then with 2 ranks: ~20 s
def test_two_processes_write_what_one_writes_and_the_launcher_imports_no_torch(tmp_path):
    from uniembed import Embedder

    inputs = make_inputs(tmp_path / "inputs")
    Embedder.tiny(seed=0, multi_vector_dim=16).save_pretrained(tmp_path / "multi-model")

    def multi_args(out: Path) -> list[str]:  # a late-interaction model: token matrices per shard
        argv = encode_args(inputs, out)
        return [*argv[:2], str(tmp_path / "multi-model"), *argv[3:]]

    one = [encode_args(inputs, tmp_path / "one" / "encode"), mine_args(inputs, tmp_path / "one" / "mine"),
           multi_args(tmp_path / "one" / "multi")]
    two = [[*argv, "--processes", "2"] for argv in (encode_args(inputs, tmp_path / "two" / "encode"),
                                                    mine_args(inputs, tmp_path / "two" / "mine"),
                                                    multi_args(tmp_path / "two" / "multi"))]
    reference = run_python(f"from uniembed.cli.main import main\nassert [main(a) for a in {one!r}] == [0, 0, 0]\n", 240)
    assert reference.returncode == 0, reference.stderr[-3000:]
    launcher = ("import sys\nfrom uniembed.cli.main import main\n"
                f"for argv in {two!r}:\n"
                "    code = main(argv)\n"
                "    print('exit', code, 'heavy modules in the launcher:', sorted(m for m in ('torch', 'transformers', "
                "'uniembed.models.embedder') if m in sys.modules), flush=True)\n")
    run = run_python(launcher, 400)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("exit 0 heavy modules in the launcher: []") == 3, run.stdout + run.stderr[-3000:]
    summaries = [line for line in run.stdout.splitlines() if line.startswith("encoded ")]
    assert len(summaries) == 2 and all(line.startswith("encoded 14 items, 0 already done") for line in summaries)

    encoded = folder_files(tmp_path / "two" / "encode")
    assert encoded == folder_files(tmp_path / "one" / "encode")  # vectors, records, manifest, metadata: bit for bit
    assert sum(name.endswith(".npy") for name in encoded) == 4
    multi = folder_files(tmp_path / "two" / "multi")
    assert multi == folder_files(tmp_path / "one" / "multi")  # token matrices and their lengths, bit for bit
    assert json.loads(multi["info.json"])["kind"] == "multi_vector" and sum(n.endswith(".npy") for n in multi) == 4

    mined, reference_mined = mined_outputs(tmp_path / "two" / "mine"), mined_outputs(tmp_path / "one" / "mine")
    assert (mined["report"].pop("shards"), reference_mined["report"].pop("shards")) == (2, 1)
    for report in (mined["report"], reference_mined["report"]):
        assert report.pop("encoding_seconds") >= 0
    assert mined == reference_mined
    assert sorted(path.name for path in (tmp_path / "two" / "mine" / "shards").glob("*.json")) == \
        ["shard-00000-of-00002.json", "shard-00001-of-00002.json"]


@pytest.mark.parametrize("verb", ["encode", "mine"])
def test_a_failing_rank_fails_the_command_and_is_named(tmp_path, capsys, verb):
    # no such input: every rank fails reading it; the first to fail is named, the others stopped
    missing = {name: tmp_path / "missing.jsonl" for name in ("encode", "queries", "corpus")}
    argv = (encode_args if verb == "encode" else mine_args)(missing, tmp_path / "out")
    assert main([*argv, "--processes", "2"]) == 1
    error = capsys.readouterr().err
    assert f"uniembed {verb}: error: rank " in error and "the other ranks were stopped" in error
    assert str(tmp_path / "missing.jsonl") in error.split("last stderr lines:")[1]  # the rank's own error, quoted


@pytest.mark.parametrize("verb", ["encode", "mine"])
def test_processes_under_torchrun_is_refused(tmp_path, monkeypatch, capsys, verb):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    argv = (encode_args if verb == "encode" else mine_args)(make_inputs(tmp_path / "inputs"), tmp_path / "out")
    assert main([*argv, "--processes", "2"]) == 2
    assert f"uniembed {verb}: error: --processes 2 starts its own ranks" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shard_flags", [["--shard-index", "0", "--num-shards", "2"], ["--num-shards", "2"]])
def test_mine_refuses_processes_with_explicit_shard_flags(tmp_path, capsys, shard_flags):
    argv = mine_args(make_inputs(tmp_path / "inputs"), tmp_path / "out")
    assert main([*argv, *shard_flags, "--processes", "2"]) == 2
    error = capsys.readouterr().err
    assert "uniembed mine: error: --processes 2" in error and "--shard-index/--num-shards" in error
    assert "--processes 2 alone, or --shard-index I --num-shards N" in error  # the fix
    assert not (tmp_path / "out").exists()  # refused before any rank started
