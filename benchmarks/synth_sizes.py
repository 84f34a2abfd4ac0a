"""How long each size of the synthetic benchmark takes to generate and how big it is on disk.

Usage: .venv/bin/python benchmarks/synth_sizes.py [--sizes tiny small full] [--workers 2] [--keep DIR]
Writes benchmarks/results/synth_sizes.json (the markdown note is written by hand from it).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from uniembed.data.synth import generate


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def allocated_bytes(folder: Path) -> int:
    """Space the files take on the file system (du), which counts a block per small file."""
    return int(subprocess.run(["du", "-sb", "--apparent-size", str(folder)], capture_output=True, text=True).stdout.split()[0]), \
        int(subprocess.run(["du", "-sk", str(folder)], capture_output=True, text=True).stdout.split()[0]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "full"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {"date": "2026-11-22", "machine": "2-core CPU, no GPU", "workers": args.workers,
               "load_average_at_start": os.getloadavg()[0], "sizes": {}}
    for size in args.sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"synth_{size}_"))
        try:
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            meta = generate(folder / "bench", size, seed=args.seed, workers=args.workers, progress=False)
            wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
            apparent, on_disk = allocated_bytes(folder / "bench")
            results["sizes"][size] = {
                "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "files": meta["num_files"] + 1,
                "bytes": apparent, "bytes_on_disk": on_disk, "test_queries": meta["num_test_queries"],
                "train_rows": meta["num_train_rows"], "tasks": len(meta["tasks"]),
                "load_average_after": os.getloadavg()[0],
            }
            print(size, results["sizes"][size], flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    out = Path(__file__).parent / "results" / "synth_sizes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
