"""How the API process serves HTTP: the request-head deadline, and /metrics on a port of its own.

uvicorn times out idle keep-alive connections only: a client that opens a connection and sends half a
request head (slowloris) holds it forever, and one that sends half a body holds a request. DeadlineProtocol
closes a connection that has not sent a whole head within JOBENGINE_HTTP_HEADER_TIMEOUT_SECONDS of connecting
or of starting the request, and answers 408 to a body not in within JOBENGINE_HTTP_BODY_TIMEOUT_SECONDS
(BodyLimitMiddleware writes the answer).

/metrics names every tenant's queues and job types, so it is not on the API port (which the ingress
exposes) but on JOBENGINE_API_METRICS_PORT, as the worker's: scraped in-cluster, never routed.
"""

from __future__ import annotations

import logging
from asyncio import TimerHandle, Transport
from collections.abc import Awaitable, Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


HEAD, BODY = "head", "body"
BODY_LATE = "jobengine.body_late"  # scope key: set when the body missed its deadline (BodyLimitMiddleware: 408)


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines on each request's head and body.

    Nothing is done per request: one timer a connection looks, now and then, at the state uvicorn keeps
    anyway (the scope of the request being parsed, the cycle of the one being served) to tell whether a
    head or a body is in progress, and clocks it from the first look that sees it (per-request timers or
    callback overrides cost 5-7 % of a submit's CPU). So a deadline is enforced within one to three times
    its length. A late head closes the connection; a late body is flagged in the request's scope and the
    app woken, so BodyLimitMiddleware answers 408 (counted in the HTTP metrics); if it is still not in at
    the next look, the connection is closed."""

    head_timeout = 10.0  # set by protocol_class()
    body_timeout = 30.0
    _look: TimerHandle | None = None
    _watched: tuple[object, str] | None = None  # (scope, phase) being clocked, and since when
    _since = 0.0

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._since = self.loop.time()
        self._watched = (None, HEAD)  # the first request's head is clocked from the connection
        self._look = self.loop.call_at(self._since + self.head_timeout, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._look is not None:
            self._look.cancel()
        super().connection_lost(exc)

    def _phase(self) -> str | None:
        """HEAD: a request's head is being received; BODY: its body; None: neither."""
        cycle = self.cycle
        if cycle is None or cycle.scope is not self.scope:
            return HEAD  # (or no request yet: the connection's first head)
        return BODY if cycle.more_body and not cycle.response_complete else None

    def _check(self) -> None:
        self._look = None
        if self.transport.is_closing():
            return
        now, phase = self.loop.time(), self._phase()
        if phase is None:  # idle (uvicorn's keep-alive timeout applies) or the app is answering
            self._watched = None
            self._rearm(now + self.head_timeout)
            return
        limit = self.head_timeout if phase == HEAD else self.body_timeout
        watched = (self.scope, phase)
        if self._watched != watched:  # first seen: its clock starts now
            self._watched, self._since = watched, now
            self._rearm(now + limit)
        elif now < self._since + limit:
            self._rearm(self._since + limit)
        elif phase == BODY and BODY_LATE not in self.scope:
            self.scope[BODY_LATE] = True  # type: ignore[literal-required]
            self.cycle.message_event.set()  # wakes a receive() waiting for more body
            self._rearm(now + limit)
        else:
            self.transport.close()

    def _rearm(self, when: float) -> None:
        self._look = self.loop.call_at(when, self._check)


def protocol_class(head_timeout: float, body_timeout: float = 30.0) -> type[DeadlineProtocol]:
    return type("DeadlineProtocol", (DeadlineProtocol,), {"head_timeout": head_timeout, "body_timeout": body_timeout})


class MetricsServer:
    """GET /metrics on its own port, in the API's event loop; `refresh` runs before each scrape.

    A second uvicorn Server driven by the API's lifespan (startup/shutdown, no main loop or signal
    handlers of its own: the API's server owns those)."""

    def __init__(self, host: str, port: int, refresh: Callable[[], Awaitable[None]], head_timeout: float,
                 body_timeout: float) -> None:
        self.refresh = refresh
        config = uvicorn.Config(self._app, host=host, port=port, lifespan="off", access_log=False, log_config=None,
                                server_header=False, timeout_keep_alive=30, loop="none", interface="asgi3",
                                http=protocol_class(head_timeout, body_timeout))
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)

    async def start(self) -> None:
        await self.server.startup()
        log.info("metrics served", extra={"port": self.server.config.port})

    async def stop(self) -> None:
        if self.server.started:
            await self.server.shutdown()

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics" or scope["method"] != "GET":
            await _send(send, 404, b"text/plain; charset=utf-8", b"not found: GET /metrics\n")
            return
        await self.refresh()
        await _send(send, 200, CONTENT_TYPE_LATEST.encode(), generate_latest())


async def _send(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
