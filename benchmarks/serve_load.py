"""Load test of `uniembed serve`: a real server process on 127.0.0.1, bounded concurrent clients.

Two servers are started with the tiny model on CPU, dynamic batching on and off, and for 1, 8 and 32
concurrent clients (measured back to back on both servers) a fixed number of requests is sent (each client sends its next
request when the previous one returns). Reports throughput and p50/p99 latency per workload, plus the
mean model batch size read from the server's /metrics.

    .venv/bin/python benchmarks/serve_load.py --requests 256 --out benchmarks/results/serve_load_cpu
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image_uri(seed: int) -> str:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse((seed % 32, 8, seed % 32 + 24, 40), fill=("red", "green", "blue")[seed % 3])
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


WORKLOADS = {
    "text": lambda i: {"input": [f"query number {i}: a small {('red', 'green', 'blue')[i % 3]} circle on white"]},
    "text+image": lambda i: {"input": [{"text": f"photo {i}", "image": image_uri(i)}]},
}


def start_server(batching: bool, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "uniembed.cli.main", "serve", "--model", "tiny", "--device", "cpu",
               "--host", "127.0.0.1", "--port", str(port), "--threads", str(threads), "--log-level", "warning",
               "--max-concurrency", "256"]
    if not batching:
        command.append("--no-batching")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not become healthy in 120 s")


async def run_load(url: str, workload: str, concurrency: int, requests: int) -> dict:
    make = WORKLOADS[workload]
    bodies = [make(i) for i in range(requests)]
    latencies: list[float] = []
    server_ms: list[float] = []
    errors = 0
    cursor = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        # warm-up: opens every keep-alive connection first, so TCP connects do not count as latency
        await asyncio.gather(*(client.post("/v1/embeddings", json=make(10_000 + i)) for i in range(concurrency)))
        async def worker() -> None:
            nonlocal errors
            for index in cursor:
                started = time.perf_counter()
                response = await client.post("/v1/embeddings", json=bodies[index])
                latencies.append(time.perf_counter() - started)
                server_ms.append(float(response.headers.get("x-process-time-ms", "nan")))
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    values = np.array(latencies) * 1000
    return {"workload": workload, "concurrency": concurrency, "requests": requests, "errors": errors,
            "seconds": round(wall, 3), "throughput_rps": round(requests / wall, 1),
            "p50_ms": round(float(np.percentile(values, 50)), 2), "p99_ms": round(float(np.percentile(values, 99)), 2),
            "server_p50_ms": round(float(np.percentile(server_ms, 50)), 2),
            "server_p99_ms": round(float(np.percentile(server_ms, 99)), 2)}


def batch_stats(url: str) -> dict:
    text = httpx.get(f"{url}/metrics").text
    total = float(re.search(r"^uniembed_batch_items_sum (\S+)$", text, re.M).group(1))
    count = float(re.search(r"^uniembed_batch_items_count (\S+)$", text, re.M).group(1))
    return {"batches": count, "items": total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=256, help="requests per (workload, concurrency)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--out", default="benchmarks/results/serve_load_cpu", help="writes OUT.json and OUT.md")
    args = parser.parse_args()
    rows = []
    servers = {mode: start_server(mode == "on", args.threads) for mode in ("on", "off")}
    try:  # both servers run side by side and are measured back to back, so machine load drifts equally
        for workload in args.workloads:
            for concurrency in args.concurrency:
                for mode, (_, url) in servers.items():
                    before = batch_stats(url)
                    row = asyncio.run(run_load(url, workload, concurrency, args.requests))
                    after = batch_stats(url)
                    batches = int(after["batches"] - before["batches"])
                    items = after["items"] - before["items"]
                    row.update(batching=mode, model_batches=batches, mean_batch_items=round(items / max(batches, 1), 2))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)
    write_results(rows, args)
    return 0


def write_results(rows: list[dict], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/serve_load.py " + " ".join(sys.argv[1:])
    meta = {"date": "2026-11-22", "machine": "2-core CPU, no GPU", "model": "tiny (random tiny Qwen2-VL)",
            "server_torch_threads": args.threads, "python": platform.python_version(), "command": command,
            "note": "client and server share the same 2 cores (other jobs were running on the machine); "
                    "warm-up requests (one per client, opening its connection) excluded"}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [f"# serve_load: `uniembed serve` under concurrent load ({meta['date']})", "",
             f"Machine: {meta['machine']}. Model: {meta['model']}, server with {args.threads} torch thread(s), "
             "client on the same machine (loopback). One item per request; each client sends its next request when "
             "the previous returns; warm-up excluded.", "", f"Command: `{command}`", "",
             "p50/p99 are seen by the client; server p50/p99 are the server's own time per request "
             "(`x-process-time-ms` header), which excludes time the client or the loaded machine kept a "
             "response waiting. Model batches and items/batch come from the server's /metrics and include the "
             "warm-up requests (one per client).", "",
             "| workload | batching | clients | requests | req/s | p50 ms | p99 ms | server p50 ms | server p99 ms "
             "| model batches | items/batch | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['batching']} | {r['concurrency']} | {r['requests']} | {r['throughput_rps']} "
                     f"| {r['p50_ms']} | {r['p99_ms']} | {r['server_p50_ms']} | {r['server_p99_ms']} "
                     f"| {r['model_batches']} | {r['mean_batch_items']} | {r['errors']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
