"""Load test of `uniembed serve`: a real server process on 127.0.0.1, bounded concurrent clients.

Two servers are started with the tiny model on CPU, dynamic batching on and off, and for 1, 8 and 32
concurrent clients (measured back to back on both servers) a fixed number of requests is sent (each client sends its next
request when the previous one returns). Reports throughput and p50/p99 latency per workload, plus the
mean model batch size read from the server's /metrics.

    .venv/bin/python benchmarks/serve_load.py --requests 256 --out benchmarks/results/serve_load_cpu

`--hostile` instead runs one server (default limits) through hostile cases, each for `--seconds`: none
(baseline), bomb (24 PNGs of 49 megapixels per request, refused from their headers), big images (4 such
PNGs, within the pixel budget, decoded), long video (a static 720p MP4 of 2,100 frames), huge text
(one 30 MB text item) and slow body (64 clients sending 2 bytes/s). Alongside, normal clients send
small text requests; reported: the server's peak RSS (from /proc) and the normal requests' latency
and status codes.

    .venv/bin/python benchmarks/serve_load.py --hostile --out benchmarks/results/serve_hostile_cpu

The hostile bodies are sent from a child process (`--same-loop`: from the normal clients' event loop, as before
2026-12-06, where each 30 MB upload stalled the loop that times the normal requests).

Side by side with another tree (`--before-src DIR/src`, or `--before-ref REF`: this repository's REF, from git
archive) and optionally this tree with other server flags (`--variant '--long-item-tokens 0'`), `--rounds` rounds
rotate which runs first; each run starts its own server and reports the load average at its start, beside the
`none` case (the normal requests alone):

    .venv/bin/python benchmarks/serve_load.py --hostile --cases none huge_text --seconds 8 --rounds 3 \
        --before-ref 906a9eb --variant '--long-item-tokens 0' --out benchmarks/results/serve_hostile_lanes_run4
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
import tarfile
import tempfile
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


def start_server(batching: bool, threads: int, extra: tuple[str, ...] = ("--max-concurrency", "256"),
                 src: Path = ROOT / "src") -> tuple[subprocess.Popen, str]:
    port = free_port()
    launcher = [str(ROOT / "benchmarks" / "serve_breakdown.py")] if os.environ.get("SERVE_TRACE_OUT") else [
        "-m", "uniembed.cli.main"]  # --trace: the server runs with serve_breakdown.py's timing hooks
    command = [sys.executable, *launcher, "serve", "--model", "tiny", "--device", "cpu",
               "--host", "127.0.0.1", "--port", str(port), "--threads", str(threads), "--log-level", "warning",
               *extra]
    if not batching:
        command.append("--no-batching")
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
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
    parser.add_argument("--hostile", action="store_true", help="run the hostile cases instead (see above)")
    parser.add_argument("--seconds", type=float, default=10.0, help="--hostile: seconds per case")
    parser.add_argument("--cases", nargs="+", default=list(HOSTILE_CASES), help="--hostile: which cases")
    parser.add_argument("--before-src", help="--hostile: also run the server from this src/ folder, alternating")
    parser.add_argument("--before-ref", help="--hostile: also run the server from this git ref's src/ (git archive)")
    parser.add_argument("--rounds", type=int, default=1, help="--hostile: rounds (alternating trees side by side)")
    parser.add_argument("--variant", help="--hostile: also run this tree's server with these extra flags, e.g. "
                                          "'--long-item-tokens 0' (one lane)")
    parser.add_argument("--same-loop", action="store_true",
                        help="--hostile: send the hostile bodies from the normal clients' event loop (before "
                             "2026-12-06: the 30 MB uploads then stall the loop that times the normal requests)")
    parser.add_argument("--trace", help="run the server with benchmarks/serve_breakdown.py's hooks, trace to TRACE "
                                        "(the last server started writes it)")
    args = parser.parse_args()
    if args.trace:
        os.environ["SERVE_TRACE_OUT"] = str(Path(args.trace).resolve())
    if args.hostile:
        return run_hostile(args)
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


# ---- hostile cases ----------------------------------------------------------------------------------
def _png_uri(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 160, 90)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _static_video_uri(frames: int = 2100, width: int = 1280, height: int = 720) -> str:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt, stream.gop_size = width, height, "yuv420p", 600
        frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 90, np.uint8), format="rgb24")
        for _ in range(frames):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return "data:video/mp4;base64," + base64.b64encode(buffer.getvalue()).decode()


HOSTILE_CASES = ("none", "bomb", "big_images", "long_video", "huge_text", "slow_body")


def _hostile_body(case: str, media: dict) -> dict | None:
    if case == "bomb":
        return {"input": [{"image": media["png49"]}] * 24}
    if case == "big_images":
        return {"input": [{"image": media["png49"]}] * 4}
    if case == "long_video":
        return {"input": [{"video": media["video"]}]}
    if case == "huge_text":
        return {"input": [media["text"]]}
    return None


async def _slow_body_client(port: int, stop: asyncio.Event, statuses: list) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n")
        while not stop.is_set() and not reader.at_eof():
            writer.write(b"  ")
            await writer.drain()
            try:
                line = await asyncio.wait_for(reader.readline(), 1.0)
                if line:
                    statuses.append(int(line.split()[1]))
                    break
            except asyncio.TimeoutError:
                pass
        writer.close()
    except (OSError, IndexError, ValueError):
        statuses.append("closed")


class _HostileSenders:
    """Two clients posting `raw` in a loop: in a child process of their own, so that sending 30 MB bodies does not
    stall the event loop that times the normal requests (or, with `client`, on that loop, as before 2026-12-06)."""

    def __init__(self, url: str, raw: bytes, client: httpx.AsyncClient | None) -> None:
        self.statuses: list = []
        self.stopping = asyncio.Event()
        if client:
            self.tasks = [asyncio.create_task(self._loop(client, raw, self.stopping.is_set, self.statuses.append))
                          for _ in range(2)]
            return
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self.flag, self.queue = context.Event(), context.Queue()
        self.process = context.Process(target=self._child, args=(url, raw, self.flag, self.queue), daemon=True)
        self.process.start()

    @staticmethod
    async def _loop(client, raw: bytes, stopped, report) -> None:
        while not stopped():
            response = await client.post("/v1/embeddings", content=raw, headers={"content-type": "application/json"})
            report(response.status_code)

    @classmethod
    def _child(cls, url: str, raw: bytes, flag, queue) -> None:
        async def main() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=120) as client:
                await asyncio.gather(*(cls._loop(client, raw, flag.is_set, queue.put) for _ in range(2)))
        asyncio.events._set_running_loop(None)  # forked from inside the parent's running loop
        asyncio.run(main())
        queue.put(None)

    async def stop(self) -> list:
        """Stop sending (the requests under way finish); the statuses of every hostile request."""
        if hasattr(self, "tasks"):
            self.stopping.set()
            await asyncio.wait(self.tasks, timeout=180)
            return self.statuses
        self.flag.set()
        statuses = []
        while (status := await asyncio.to_thread(self.queue.get, True, 180)) is not None:
            statuses.append(status)
        await asyncio.to_thread(self.process.join, 30)
        return statuses


async def _hostile_case(url: str, pid: int, case: str, media: dict, seconds: float,
                        args: argparse.Namespace) -> dict:
    stop = asyncio.Event()
    peak = {"rss": 0}
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    baseline = _rss(pid)

    async def sample() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], _rss(pid))
            await asyncio.sleep(0.02)

    hostile_statuses: list = []
    latencies: list[float] = []
    server_ms: list[float] = []  # the server's own time per normal request (without the client's stalls)
    normal_statuses: list[int] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        body = _hostile_body(case, media)
        raw = json.dumps(body).encode() if body is not None else None  # encoded once: the client's loop stays free

        async def normal(worker: int) -> None:
            index = 0
            while not stop.is_set():
                started = time.perf_counter()
                response = await client.post("/v1/embeddings", json={"input": f"normal {worker} {index}"})
                latencies.append(time.perf_counter() - started)
                server_ms.append(float(response.headers.get("x-process-time-ms", "nan")))
                normal_statuses.append(response.status_code)
                index += 1

        port = int(url.rsplit(":", 1)[1])
        tasks = [asyncio.create_task(sample()), *(asyncio.create_task(normal(w)) for w in range(4))]
        if case == "slow_body":
            tasks += [asyncio.create_task(_slow_body_client(port, stop, hostile_statuses)) for _ in range(64)]
        seconds = max(seconds, 14.0) if case == "slow_body" else seconds  # slow bodies: past the 10 s body timeout
        senders = None if raw is None else _HostileSenders(url, raw, args.same_loop and client)
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait(tasks, timeout=180)
        if senders is not None:
            hostile_statuses += await senders.stop()
    hwm = _status_kb(pid, "VmHWM") * 1024
    values = np.array(latencies) * 1000
    codes = {str(code): normal_statuses.count(code) for code in sorted(set(normal_statuses))}
    hostile_codes = {str(code): hostile_statuses.count(code) for code in sorted(set(hostile_statuses), key=str)}
    return {"case": case, "seconds": seconds, "baseline_rss_mb": round(baseline / 2**20),
            "peak_rss_mb": round(max(hwm, peak["rss"]) / 2**20),
            "normal_requests": len(latencies), "normal_status": codes,
            "normal_p50_ms": round(float(np.percentile(values, 50)), 1) if len(values) else None,
            "normal_p99_ms": round(float(np.percentile(values, 99)), 1) if len(values) else None,
            "normal_max_ms": round(float(values.max()), 1) if len(values) else None,
            "normal_server_p50_ms": round(float(np.nanpercentile(server_ms, 50)), 1) if server_ms else None,
            "normal_server_p99_ms": round(float(np.nanpercentile(server_ms, 99)), 1) if server_ms else None,
            "hostile_status": hostile_codes}


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _rss(pid: int) -> int:
    return _status_kb(pid, "VmRSS") * 1024


def _hostile_media(cases: list[str]) -> dict:
    """The hostile bodies' media, only those the cases need (the video takes a while to encode)."""
    media = {"text": "tokens of a very long document " * (30 * 2**20 // 31)}
    if {"bomb", "big_images"} & set(cases):
        media["png49"] = _png_uri(7000, 7000)
    if "long_video" in cases:
        media["video"] = _static_video_uri()
    return media


def _trees(args: argparse.Namespace, scratch: Path) -> list[tuple[str, Path, tuple[str, ...]]]:
    """(name, src folder, extra server flags) of the runs: the `--before-*` tree ("base"), this one ("branch"), and
    this one with the `--variant` flags."""
    before = Path(args.before_src).resolve() if args.before_src else None
    if args.before_ref:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", args.before_ref, "src"],
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(scratch)
        before = scratch / "src"
    return ([("base", before, ())] if before else []) + [("branch", ROOT / "src", ())] + (
        [(f"branch {args.variant}", ROOT / "src", tuple(args.variant.split()))] if args.variant else [])


def run_hostile(args: argparse.Namespace) -> int:
    media = _hostile_media(args.cases)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        trees = _trees(args, Path(scratch))
        for number in range(args.rounds):
            for tree, src, extra in trees[number % len(trees):] + trees[:number % len(trees)]:  # rotate the order
                load = os.getloadavg()[0]
                process, url = start_server(True, args.threads, extra=extra, src=src)
                try:
                    asyncio.run(run_load(url, "text", 4, 16))  # warm-up
                    for case in args.cases:
                        row = asyncio.run(_hostile_case(url, process.pid, case, media, args.seconds, args))
                        row.update(tree=tree, round=number + 1, load_at_start=round(load, 2))
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                finally:
                    process.terminate()
                    process.wait(timeout=30)
    _write_hostile(rows, args, [name for name, _, _ in trees])
    return 0


def _write_hostile(rows: list[dict], args: argparse.Namespace, trees: list[str]) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/serve_load.py " + " ".join(sys.argv[1:])
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()}-core CPU ({platform.machine()}), no GPU; client and server on the same "
                       "cores, beside whatever else the machine runs (see the load averages)",
            "model": "tiny (random tiny Qwen2-VL), default server limits", "server_torch_threads": args.threads,
            "python": platform.python_version(), "command": command, "trees": trees,
            "load_average_at_end": round(os.getloadavg()[0], 2)}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [f"# serve_load --hostile: `uniembed serve` under hostile input ({meta['date']})", "",
             f"Machine: {meta['machine']}; load average {meta['load_average_at_end']} at the end. "
             f"Model: {meta['model']}. Command: `{command}`", "",
             f"Each case runs for {args.seconds:g} s (slow_body at least 14 s, past the 10 s body timeout): 2 hostile "
             "clients looping (64 for slow_body) beside 4 normal clients sending one short text each. Peak RSS is the "
             "server process's (VmHWM, reset per case). Each run starts its own server; `load` is the 1-minute load "
             "average at its start.", "",
             "Client p50/p99 are seen by the client (which shares the cores; the hostile bodies are sent from "
             + ("the same event loop" if args.same_loop else "a child process")
             + "); server p50/p99 are the normal requests' `x-process-time-ms` (the server's own time).", "",
             "| tree | round | load | case | peak RSS MB (baseline) | normal requests | normal status | client p50 ms "
             "| client p99 ms | max ms | server p50 ms | server p99 ms | hostile status |",
             "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['tree']} | {r['round']} | {r['load_at_start']} | {r['case']} | {r['peak_rss_mb']} "
                     f"({r['baseline_rss_mb']}) | {r['normal_requests']} | {r['normal_status']} | {r['normal_p50_ms']} "
                     f"| {r['normal_p99_ms']} | {r['normal_max_ms']} | {r['normal_server_p50_ms']} "
                     f"| {r['normal_server_p99_ms']} | {r['hostile_status']} |")
    if args.rounds > 1 or len(trees) > 1:
        lines += ["", "Medians over the rounds:", "",
                  "| tree | case | client p50 ms | client p99 ms | server p50 ms | server p99 ms | normal requests |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for tree in trees:
            for case in args.cases:
                runs = [r for r in rows if r["tree"] == tree and r["case"] == case]
                median = {key: round(float(np.median([r[key] for r in runs if r[key] is not None] or [np.nan])), 1)
                          for key in ("normal_p50_ms", "normal_p99_ms", "normal_server_p50_ms",
                                      "normal_server_p99_ms", "normal_requests")}
                lines.append(f"| {tree} | {case} | {median['normal_p50_ms']} | {median['normal_p99_ms']} "
                             f"| {median['normal_server_p50_ms']} | {median['normal_server_p99_ms']} "
                             f"| {median['normal_requests']:g} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")

if __name__ == "__main__":
    sys.exit(main())
