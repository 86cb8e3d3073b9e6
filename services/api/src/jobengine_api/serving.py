"""How the API process serves HTTP: the request-head deadline, and /metrics on a port of its own.

uvicorn times out idle keep-alive connections only: a client that opens a connection and sends half a
request head (slowloris) holds it forever. HeadDeadlineProtocol closes a connection that has not sent a
whole head within JOBENGINE_HTTP_HEADER_TIMEOUT_SECONDS of connecting or of starting the request. A
slow body is bounded by BodyLimitMiddleware (408 after JOBENGINE_HTTP_BODY_TIMEOUT_SECONDS).

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


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head stalls."""

    head_timeout = 10.0  # set by protocol_class()
    _head_timer: TimerHandle | None = None

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # a further request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol_class(head_timeout: float) -> type[HeadDeadlineProtocol]:
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_timeout": head_timeout})


class MetricsServer:
    """GET /metrics on its own port, in the API's event loop; `refresh` runs before each scrape.

    A second uvicorn Server driven by the API's lifespan (startup/shutdown, no main loop or signal
    handlers of its own: the API's server owns those)."""

    def __init__(self, host: str, port: int, refresh: Callable[[], Awaitable[None]], head_timeout: float) -> None:
        self.refresh = refresh
        config = uvicorn.Config(self._app, host=host, port=port, lifespan="off", access_log=False, log_config=None,
                                server_header=False, timeout_keep_alive=30, loop="none", interface="asgi3",
                                http=protocol_class(head_timeout))
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
