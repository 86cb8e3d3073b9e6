"""Pure ASGI middleware (BaseHTTPMiddleware costs a task and a stream per request): body limit and
deadline, HTTP metrics."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobengine.metrics import HTTP_DURATION, HTTP_REQUESTS

from .problems import BodyTimeout, BodyTooLarge, Problem, too_large
from .serving import BODY_LATE

KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class BodyLimitMiddleware:
    """413 before parsing: by Content-Length at once, and by counting the bytes of a streamed body.
    408 when the server flags the body as late (serving.DeadlineProtocol: a client that stalls must not
    hold a request, its memory and a connection for ever)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_problem(Problem(400, "bad-request", "Invalid Content-Length header."), scope, send)
                    return
                if declared > limit:
                    await _send_problem(too_large(limit), scope, send)
                    return
                break
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                if BODY_LATE in scope:  # the server's body deadline passed (serving.DeadlineProtocol)
                    raise BodyTimeout()  # turned into a 408 problem by the exception handler
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()  # turned into a 413 problem by the exception handler
            return message

        await self.app(scope, counting_receive, send)


async def _send_problem(problem: Problem, scope: Scope, send: Send) -> None:
    response = problem.response(scope.get("path", ""))
    response.headers["Connection"] = "close"  # the unread body must not be taken for the next request
    await response(scope, _drain, send)


async def _drain() -> Message:
    return {"type": "http.disconnect"}


class MetricsMiddleware:
    """Counts and times requests by route template (never the raw URL: it holds job ids)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            self._observe(template, method, str(status), time.perf_counter() - start)

    def _observe(self, route: str, method: str, status: str, seconds: float) -> None:
        # labels() takes a lock and builds a tuple each call: cache the children
        counter: Counter | None = self._counters.get((route, method, status))
        if counter is None:
            counter = self._counters[(route, method, status)] = HTTP_REQUESTS.labels(route, method, status)
        timer: Histogram | None = self._timers.get((route, method))
        if timer is None:
            timer = self._timers[(route, method)] = HTTP_DURATION.labels(route, method)
        counter.inc()
        timer.observe(seconds)
