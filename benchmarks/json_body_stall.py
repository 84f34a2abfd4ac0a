"""How long a large JSON body stalls the server's event loop while it is parsed (issue 26.6).

A ticker task sleeps 1 ms in a loop and records the longest gap while one body of `--mb` MB (one text item, as
`serve_load.py --hostile`'s huge_text case) is parsed: on the loop with `json.loads` (FastAPI's default), in a
worker thread with `json.loads` (which holds the GIL for the whole string), and in a worker thread with
`uniembed.serving.json_body.parse_large` (pydantic-core's parser, what the server does now). Best of `--repeats`.

    python benchmarks/json_body_stall.py [--mb 30] [--repeats 5]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from uniembed.serving.json_body import parse_large


async def stall(parse, raw: bytes, thread: bool) -> tuple[float, float]:
    """(seconds the parse took, longest gap between the ticker's wake-ups) in seconds."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    start = time.perf_counter()
    if thread:
        await asyncio.to_thread(parse, raw)
    else:
        parse(raw)
    took = time.perf_counter() - start
    done.set()
    await ticker
    return took, max(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    text = "tokens of a very long document " * (args.mb * 2**20 // 31)
    raw = json.dumps({"input": [text]}).encode()
    ways = {"json.loads on the loop (before)": (json.loads, False), "json.loads in a thread": (json.loads, True),
            "parse_large in a thread (now)": (parse_large, True)}
    print(f"load average {os.getloadavg()[0]:.2f}; body {len(raw) / 2**20:.1f} MB; best of {args.repeats}")
    print("| parse | parse ms | longest loop stall ms |\n|---|---:|---:|")
    for name, (parse, thread) in ways.items():
        runs = [asyncio.run(stall(parse, raw, thread)) for _ in range(args.repeats)]
        print(f"| {name} | {min(r[0] for r in runs) * 1000:.0f} | {min(r[1] for r in runs) * 1000:.0f} |")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
