"""Where a served request's time goes: `uniembed serve` run with timing hooks, and a report of the trace.

`serve_load.py --trace FILE` starts its server through this script, which wraps (without changing what they do)
the body middleware, the JSON parse, item parsing, the batcher (submit, batch formation, the model call, the
decode thread) and every event-loop callback, and records the garbage collector's runs; at shutdown it writes
FILE. `--analyze FILE` then splits each normal request (body under 10 KB) into stages, for all of them and for
the slowest tenth, beside the loop's busiest callbacks and the collections (issue 26.6):

    python benchmarks/serve_load.py --hostile --cases huge_text --seconds 8 --trace /tmp/trace.json
    python benchmarks/serve_breakdown.py --analyze /tmp/trace.json
"""
from __future__ import annotations

import asyncio
import asyncio.events
import collections
import contextvars
import gc
import json
import os
import signal
import sys
import threading
import time

now = time.perf_counter
STAGES = [("body read", "t0", "t_body"), ("to the endpoint", "t_body", "t_json0"), ("JSON parse", "t_json0", "t_json1"),
          ("to item parsing", "t_json1", "t_parse0"), ("item parsing", "t_parse0", "t_parse1"),
          ("to submit", "t_parse1", "t_submit"), ("waiting for a batch", "t_submit", "formed"),
          ("to the model thread", "formed", "model0"), ("model call", "model0", "model1"),
          ("back to the endpoint", "model1", "t_result"), ("response", "t_result", "t_send")]


def serve(argv: list[str], out: str) -> None:
    """Run `uniembed serve ARGV` with the hooks; write the trace to `out` at shutdown."""
    record = contextvars.ContextVar("record", default=None)
    records: list[dict] = []
    batches: list[dict] = []
    callbacks: dict[str, list] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    collections_run: list[tuple] = []
    main_thread = threading.get_ident()
    original_run = asyncio.events.Handle._run

    def label(handle) -> str:
        owner = getattr(handle._callback, "__self__", None)
        if isinstance(owner, asyncio.Task):
            return "task " + getattr(owner.get_coro(), "__qualname__", "?")
        return getattr(handle._callback, "__qualname__", type(handle._callback).__name__)

    def timed_run(handle) -> None:
        if threading.get_ident() != main_thread:
            return original_run(handle)
        name, started = label(handle), now()
        original_run(handle)
        entry = callbacks[name]
        took = now() - started
        entry[0], entry[1], entry[2] = entry[0] + 1, entry[1] + took, max(entry[2], took)

    asyncio.events.Handle._run = timed_run
    gc_started: dict[str, float] = {}

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started["t"] = now()
        else:
            collections_run.append((gc_started["t"], now() - gc_started["t"], info["generation"]))

    gc.callbacks.append(on_gc)

    from uniembed.serving import app as app_module
    from uniembed.serving import batcher as batcher_module
    from uniembed.serving import guards, json_body

    def wrap_async(owner, name, before=None, after=None):
        original = getattr(owner, name)

        async def wrapped(*args, **kwargs):
            rec = record.get()
            if rec is not None and before:
                rec[before] = now()
            result = await original(*args, **kwargs)
            if rec is not None and after:
                rec[after] = now()
            return result
        setattr(owner, name, wrapped)

    original_call = guards.GuardMiddleware.__call__

    async def call(self, scope, receive, send):
        if scope["type"] != "http":
            return await original_call(self, scope, receive, send)
        rec = {"t0": now(), "path": scope["path"]}
        record.set(rec)

        async def timed_send(message):
            if message["type"] == "http.response.start":
                rec["t_send"] = now()
            await send(message)
        try:
            await original_call(self, scope, receive, timed_send)
        finally:
            records.append(rec)

    guards.GuardMiddleware.__call__ = call
    original_read = guards.GuardMiddleware._read_body

    async def read(self, scope, receive):
        body = await original_read(self, scope, receive)
        rec = record.get()
        rec["t_body"], rec["bytes"] = now(), len(body or b"")
        return body

    guards.GuardMiddleware._read_body = read
    wrap_async(json_body.OffLoopJSONRequest, "json", "t_json0", "t_json1")
    wrap_async(batcher_module.DynamicBatcher, "submit", "t_submit", "t_result")
    original_parse_items = app_module.parse_items

    def parse_items(*args, **kwargs):
        rec = record.get()
        rec["t_parse0"] = now()
        items = original_parse_items(*args, **kwargs)
        rec["t_parse1"] = now()
        return items

    app_module.parse_items = parse_items
    original_post_init = batcher_module._Job.__post_init__

    def post_init(job) -> None:
        original_post_init(job)
        job.record = record.get()

    batcher_module._Job.__post_init__ = post_init
    model_times: dict[int, tuple[float, float]] = {}  # id of a batch's first input -> (start, end) of its model call
    original_init = batcher_module.DynamicBatcher.__init__

    def init(self, encode_batch, *args, **kwargs):
        def timed_encode(items):
            started = now()
            output = encode_batch(items)
            model_times[id(items[0])] = (started, now())
            return output
        original_init(self, timed_encode, *args, **kwargs)

    batcher_module.DynamicBatcher.__init__ = init
    original_execute = batcher_module.DynamicBatcher._execute

    async def execute(self, batch):
        formed = now()
        first = self._inputs(batch)[0]
        await original_execute(self, batch)
        model0, model1 = model_times.pop(id(first), (None, None))
        info = {"formed": formed, "model0": model0, "model1": model1, "items": len(batch),
                "long": any(e.prepared is not None for e in batch)}
        batches.append(info)
        for entry in batch:
            rec = getattr(entry.job, "record", None)
            if rec is not None and "formed" not in rec:
                rec.update(formed=formed, model0=model0, model1=model1, batch_items=len(batch))

    batcher_module.DynamicBatcher._execute = execute
    signal.raise_signal = lambda sig: None  # uvicorn re-raises SIGTERM after its shutdown: write the trace first
    from uniembed.cli.main import main

    try:
        main(argv)
    finally:
        with open(out, "w") as file:
            json.dump({"records": records, "batches": batches, "callbacks": dict(callbacks),
                       "collections": collections_run}, file)


def analyze(path: str) -> str:
    """A Markdown report of a trace: stages of the normal requests (all, and the slowest tenth), loop, GC."""
    import numpy as np

    trace = json.load(open(path))
    done = [r for r in trace["records"] if r["path"] == "/v1/embeddings" and "t_send" in r]
    normal = [r for r in done if r.get("bytes", 0) < 10_000]
    if not normal:
        return "no normal requests in the trace"
    start, end = min(r["t0"] for r in done), max(r["t_send"] for r in done)
    total = np.array([r["t_send"] - r["t0"] for r in normal])
    slow = [r for r in normal if r["t_send"] - r["t0"] >= np.percentile(total, 90)]
    lines = [f"{len(normal)} normal requests, {len(done) - len(normal)} large ones, over {end - start:.1f} s; "
             f"server time p50 {np.percentile(total, 50) * 1000:.1f} ms, p99 {np.percentile(total, 99) * 1000:.1f} ms",
             "", "| stage | mean ms (all) | p90 ms (all) | mean ms (slowest 10%) |", "|---|---:|---:|---:|"]
    for name, a, b in STAGES:
        every = np.array([r[b] - r[a] for r in normal if a in r and b in r and r[a] and r[b]]) * 1000
        tail = np.array([r[b] - r[a] for r in slow if a in r and b in r and r[a] and r[b]]) * 1000
        if len(every):
            lines.append(f"| {name} | {every.mean():.2f} | {np.percentile(every, 90):.2f} "
                         f"| {tail.mean() if len(tail) else float('nan'):.2f} |")
    lines += ["", f"Event loop, busiest callbacks ({end - start:.1f} s):", "",
              "| callback | calls | total s | longest ms |", "|---|---:|---:|---:|"]
    for name, (count, seconds, longest) in sorted(trace["callbacks"].items(), key=lambda kv: -kv[1][1])[:8]:
        lines.append(f"| {name} | {count} | {seconds:.2f} | {longest * 1000:.1f} |")
    runs = [c for c in trace["collections"] if start <= c[0] <= end]
    lines.append("")
    for generation in (0, 1, 2):
        took = [c[1] * 1000 for c in runs if c[2] == generation]
        lines.append(f"GC generation {generation} while serving: {len(took)} runs, {sum(took):.0f} ms in all, "
                     f"longest {max(took, default=0):.1f} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--analyze"]:
        print(analyze(sys.argv[2]))
    else:
        serve(sys.argv[1:], os.environ["SERVE_TRACE_OUT"])
