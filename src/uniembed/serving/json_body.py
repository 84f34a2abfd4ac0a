"""JSON request bodies parsed off the event loop when they are large.

FastAPI parses a body with `json.loads` on the event loop: a 30 MB text item takes 170-400 ms to parse on the
2-core machine, and every other request waits meanwhile (issue 26.6: two such bodies in flight raised the p99 of
small requests from 31 ms to 284 ms). A worker thread alone does not help: `json.loads` holds the GIL for the
whole string, so the loop still stalls (measured: 220-240 ms of 330-360 ms). `OffLoopJSONRoute` hands bodies of
`LARGE_BODY_BYTES` or more to a worker thread that parses them with pydantic-core's Rust parser (`from_json`,
already installed with FastAPI): 16-40 ms, the loop stalled no longer than that. Small bodies are parsed in
place with `json.loads` (a thread hop costs more than they do). A body `from_json` refuses is parsed again with
`json.loads`, so errors (`json.JSONDecodeError`, answered 400 by FastAPI) and its leniencies stay as they were.

Copies: the guard middleware joins a large body's chunks in a worker thread (`joined`: `bytes.join` releases the
GIL on large inputs, the loop copies nothing), and `OffLoopJSONRequest.body` takes the one replayed chunk as it is
(Starlette's own `body()` joins it with a trailing empty chunk: a second 30 MB copy on the loop).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

LARGE_BODY_BYTES = 256 * 1024


async def joined(chunks: list[bytes], size: int) -> bytes:
    """The body of `chunks` (`size` bytes in all): one chunk as it is, a large body joined in a worker thread."""
    if len(chunks) == 1:
        return chunks[0]
    if size >= LARGE_BODY_BYTES:
        return await asyncio.to_thread(b"".join, chunks)
    return b"".join(chunks)


class OffLoopJSONRequest(Request):
    """A request whose `json()` parses a large body in a worker thread, and whose `body()` copies no chunk."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            chunks: list[bytes] = []
            async with contextlib.aclosing(self.stream()) as stream:
                async for chunk in stream:
                    if chunk:
                        chunks.append(chunk)
            self._body = await joined(chunks, sum(map(len, chunks))) if chunks else b""
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = await asyncio.to_thread(parse_large, body) if len(body) >= LARGE_BODY_BYTES else json.loads(body)
        return self._json


def parse_large(body: bytes) -> Any:
    """`json.loads(body)`'s value, parsed by pydantic-core (several times faster on long strings); a body it
    refuses goes through `json.loads`, which raises the error FastAPI reports (or accepts what it accepts)."""
    try:
        return from_json(body)
    except ValueError:
        return json.loads(body)


class OffLoopJSONRoute(APIRoute):
    """An `APIRoute` whose endpoint sees an `OffLoopJSONRequest` (set as the router's `route_class`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(OffLoopJSONRequest(request.scope, request.receive))

        return route
