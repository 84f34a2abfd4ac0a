"""Worker for tests/test_distributed_eval.py: the CLI verbs under torchrun, or in one plain process.

    torchrun --nproc_per_node 2 cli_worker.py DATA OUT     # 2 ranks
    python cli_worker.py DATA OUT                          # the one-process reference
runs `uniembed eval` (tiny model, 3 synthetic data sets), `uniembed encode` (a JSONL with a PDF) and
`uniembed mine` on the same inputs into OUT/eval, OUT/encode and OUT/mine.
"""
from __future__ import annotations

import sys
from pathlib import Path

from uniembed.cli.main import main


def run(data: Path, out: Path) -> None:
    common = ["--model", "tiny", "--device", "cpu", "--batch-size", "4"]
    codes = [
        main(["eval", *common, "--suite", "synthetic", "--data", str(data), "--out", str(out / "eval"),
              "--datasets", "SynParaphrase,SynDocs,SynI2T"]),
        main(["encode", *common, "--input", str(data / "encode.jsonl"), "--out", str(out / "encode"),
              "--shard-size", "5", "--no-progress"]),
        main(["mine", *common, "--queries", str(data / "text_train" / "SynParaphrase.jsonl"), "--out",
              str(out / "mine"), "--top", "8", "--num-negatives", "2"]),
    ]
    if codes != [0, 0, 0]:
        raise SystemExit(f"exit codes {codes}")


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]))
