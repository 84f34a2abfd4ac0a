"""Profile `load_tasks` on a generated MMEB-V1 folder: how loading cost grows with media references.

Writes 6 MMEB-V1-layout tasks (default: 250 queries x 100 image candidates each, drawn from 1,500 distinct
4x4 PNGs: 150,000 candidate references), then runs `get_suite("mmeb-v1").load_tasks` under cProfile and
prints the wall time, the top functions and the number of `Path.resolve` / `os.stat` calls. Issue 26.

    python benchmarks/load_tasks_profile.py [--images 1500 --queries 250 --candidates 100 --top 15]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import shutil
import tempfile
import time
from pathlib import Path

TASKS = ("VisDial", "CIRR", "VisualNews_t2i", "MSCOCO_t2i", "NIGHTS", "WebQA")  # MMEB-V1 tasks with image targets


def write_folder(root: Path, images: int, queries: int, candidates: int) -> None:
    """MMEB-V1 layout: <root>/<Task>/test-00000-of-00001.parquet, images under <root>/images/."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    names = [f"shared/{index:05d}.png" for index in range(images)]
    for index, name in enumerate(names):
        path = root / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (index % 256, index // 256 % 256, 7)).save(path)
    rng = random.Random(0)
    for task in TASKS:
        rows = [rng.sample(names, candidates) for _ in range(queries)]
        table = pa.table({"qry_text": [f"query {i} of {task}" for i in range(queries)], "qry_img_path": [""] * queries,
                          "tgt_text": [[""] * candidates] * queries, "tgt_img_path": rows})
        (root / task).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / task / "test-00000-of-00001.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--queries", type=int, default=250)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    from uniembed.eval.suites import get_suite

    work = Path(tempfile.mkdtemp(prefix="uniembed-load-tasks-"))
    try:
        write_folder(work, args.images, args.queries, args.candidates)
        suite = get_suite("mmeb-v1")
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        tasks = suite.load_tasks(work)
        profiler.disable()
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        suite.load_tasks(work)
        plain = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    references = sum(len(lst) for task in tasks for lst in task.candidate_lists)
    print(f"{len(tasks)} tasks, {references} candidate references, {sum(len(t.candidates) for t in tasks)} pooled "
          f"candidates: {plain:.2f} s unprofiled, {seconds:.2f} s under cProfile")
    stats = pstats.Stats(profiler)
    calls = {f"{Path(file).name}:{name}": count for (file, _, name), (_, count, *_) in stats.stats.items()}
    for wanted in ("pathlib.py:resolve", "~:<built-in method posix.stat>", "inputs.py:content_key",
                   "inputs.py:_source_fingerprint"):
        print(f"  calls {wanted}: {calls.get(wanted, 0)}")
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(args.top)
    print(buffer.getvalue())


if __name__ == "__main__":
    main()
