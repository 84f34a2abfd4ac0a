"""ASGI middleware run before any endpoint: API key, body deadline, concurrency cap, body size, metrics.

Refusals are cheap and early: a request without the key never takes a slot (401); the body is read
first, under a deadline (`body_timeout_s` plus one second per `min_body_rate` bytes: a slow or silent
client gets 408 and its connection closed) and the size limit (413, before the JSON is parsed); only
then does the request take one of `max_concurrency` slots (429 beyond), so slow uploads hold no slot.
While the endpoint runs, a client that disconnects cancels it: its queued items never reach the model.
"""
from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any, Awaitable, Callable

from .config import ServerConfig
from .errors import error_response
from .json_body import joined
from .metrics import ServerMetrics

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
PROTECTED_PREFIX = "/v1/"


class _BodyTooLarge(Exception):
    pass


class _BodyTooSlow(Exception):
    pass


class GuardMiddleware:
    def __init__(self, app: Any, config: ServerConfig, metrics: ServerMetrics) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = self.metrics.endpoint_label(scope["path"])
        status = {"code": 500}
        started = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                elapsed_ms = f"{(time.perf_counter() - started) * 1000:.2f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"x-process-time-ms", elapsed_ms)]}
            await send(message)

        try:
            await self._guarded(scope, receive, send_and_record)
        finally:
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        protected = scope["path"].startswith(PROTECTED_PREFIX)
        if protected and self.config.api_key and not self._authorized(scope):
            self.metrics.rejected.labels("unauthorized").inc()
            await error_response(401, "missing or invalid API key; send 'Authorization: Bearer <key>'",
                                 type="authentication_error", code="invalid_api_key")(scope, receive, send)
            return
        if not (protected and scope["method"] == "POST"):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
        except _BodyTooLarge:
            self.metrics.rejected.labels("too_large").inc()
            await error_response(413, f"request body over the limit of {self.config.max_body_bytes} bytes",
                                 code="body_too_large")(scope, receive, send)
            return
        except _BodyTooSlow:
            self.metrics.rejected.labels("slow_body").inc()
            await error_response(408, "request body not received in time", code="body_timeout",
                                 headers={"Connection": "close"})(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        if self.in_flight >= self.config.max_concurrency:
            self.metrics.rejected.labels("busy").inc()
            await error_response(429, f"server busy: {self.in_flight} requests in flight (limit "
                                      f"{self.config.max_concurrency}); retry shortly",
                                 type="rate_limit_error", code="server_busy",
                                 headers={"Retry-After": "1"})(scope, receive, send)
            return
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            await self._run_until_disconnect(scope, body, receive, send)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()

    async def _run_until_disconnect(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        """Run the endpoint on the read body; cancel it when the client disconnects first."""
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        endpoint = asyncio.ensure_future(self.app(scope, replay, send))
        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait({endpoint, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not endpoint.done():
                self.metrics.rejected.labels("disconnected").inc()
                endpoint.cancel()
            try:
                await endpoint
            except asyncio.CancelledError:
                if not disconnected.is_set():
                    raise
        finally:
            watcher.cancel()
            endpoint.cancel()

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        value = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = value.partition(" ")
        expected = str(self.config.api_key)
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, within the size limit and the deadline (which grows with the bytes received)."""
        limit = self.config.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _BodyTooLarge
        started = asyncio.get_running_loop().time()
        chunks: list[bytes] = []
        size = 0
        deadline = _Deadline(started + self.config.body_timeout_s)
        try:
            while True:
                try:
                    message = await receive()
                except asyncio.CancelledError:
                    if deadline.expired():
                        raise _BodyTooSlow from None
                    raise
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _BodyTooLarge
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
                deadline.at = started + self.config.body_timeout_s + size / self.config.min_body_rate
        finally:
            deadline.cancel()
        return await joined(chunks, size)


class _Deadline:
    """Cancels the current task once the loop's clock passes `at`, which may move later meanwhile: one timer per
    body, where `asyncio.wait_for` per chunk made a task per 64 KB (~480 for a 30 MB body, ~17 ms of loop)."""

    def __init__(self, at: float) -> None:
        self.at = at
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._fired = False
        self._timer = self._loop.call_at(at, self._check)

    def _check(self) -> None:
        if self._loop.time() < self.at:  # bytes arrived meanwhile: the deadline moved
            self._timer = self._loop.call_at(self.at, self._check)
            return
        self._fired = True
        assert self._task is not None
        self._task.cancel()

    def expired(self) -> bool:
        """Whether this deadline cancelled the task (then the cancellation is taken back: the caller answers 408)."""
        if self._fired and hasattr(self._task, "uncancel"):  # Python >= 3.11
            self._task.uncancel()  # type: ignore[union-attr]
        return self._fired

    def cancel(self) -> None:
        self._timer.cancel()
