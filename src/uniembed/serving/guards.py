"""ASGI middleware run before any endpoint: API key, concurrency cap, body size limit, request metrics.

Refusals are cheap and early: a request without the key never takes a slot (401), a request beyond
`max_concurrency` is answered 429 at once instead of queueing without bound, and a body over
`max_body_bytes` is refused (413) before the JSON is parsed.
"""
from __future__ import annotations

import hmac
import time
from typing import Any, Awaitable, Callable

from .config import ServerConfig
from .errors import error_response
from .metrics import ServerMetrics

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
PROTECTED_PREFIX = "/v1/"


class _BodyTooLarge(Exception):
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
            try:
                body = await self._read_body(scope, receive)
            except _BodyTooLarge:
                self.metrics.rejected.labels("too_large").inc()
                await error_response(413, f"request body over the limit of {self.config.max_body_bytes} bytes",
                                     code="body_too_large")(scope, receive, send)
                return
            if body is None:  # the client went away
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        value = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = value.partition(" ")
        expected = str(self.config.api_key)
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        limit = self.config.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
