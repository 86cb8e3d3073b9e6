"""Long-poll support: one pub/sub connection per process, subscribed once to the pattern
jobengine:done:*, fanning terminal statuses out to the futures of waiting requests.

One permanent pattern subscription instead of a SUBSCRIBE/UNSUBSCRIBE pair per request: no round
trip before the first read, and no subscribe/unsubscribe churn on a shared connection (that design
lost about one wake-up in thirty, each costing the 1 s safety-net re-read). The price is that every
API process receives every job's end message (a few dozen bytes each), waited for or not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from jobengine import keys

log = logging.getLogger(__name__)

PATTERN = (keys.DONE_CHANNEL_PREFIX + "*").encode()
PREFIX_LEN = len(keys.DONE_CHANNEL_PREFIX)


class DoneWaiter:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None  # resolved when the pattern subscription is confirmed
        self._waiters: dict[str, set[asyncio.Future[str]]] = {}
        self._connecting = asyncio.Lock()
        self._closing = False  # (the reader's cancel can be swallowed inside redis-py: see periodic.py)

    @asynccontextmanager
    async def subscription(self, job_id: str) -> AsyncIterator[asyncio.Future[str]]:
        """Yields a future resolved with the job's terminal status once it is published.

        On entry the subscription is active (confirmed by Redis), so a read made after entering cannot
        miss an end; raises a Redis error when it cannot be made active.
        """
        ready = await self._ensure_subscribed()
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, set()).add(future)
        try:
            await asyncio.shield(ready)
            yield future
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[job_id]
            if not future.done():
                future.cancel()

    async def _ensure_subscribed(self) -> asyncio.Future[None]:
        if self._ready is not None and self._reader is not None and not self._reader.done():
            return self._ready
        async with self._connecting:
            if self._ready is not None and self._reader is not None and not self._reader.done():
                return self._ready
            pubsub = self._client.pubsub()
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            try:
                await pubsub.psubscribe(PATTERN)
            except BaseException:
                await pubsub.aclose()
                raise
            self._pubsub, self._ready = pubsub, ready
            self._reader = asyncio.get_running_loop().create_task(self._read(pubsub, ready))
            return ready

    async def _read(self, pubsub: aioredis.client.PubSub, ready: asyncio.Future[None]) -> None:
        try:
            while not self._closing:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "pmessage":
                    waiters = self._waiters.get(message["channel"][PREFIX_LEN:].decode(errors="replace"))
                    if waiters:
                        status = message["data"].decode(errors="replace")
                        for future in waiters:
                            if not future.done():
                                future.set_result(status)
                elif kind == "psubscribe" and not ready.done():
                    ready.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection lost: fail every waiter (they re-read or answer 503), start afresh
            log.warning("pub/sub connection lost", extra={"error": repr(exc)})
            self._reset(exc, ready)
            try:
                await pubsub.aclose()
            except Exception:
                pass

    def _reset(self, exc: BaseException, ready: asyncio.Future[None] | None) -> None:
        self._pubsub, self._ready = None, None
        if ready is not None and not ready.done():
            ready.set_exception(exc)
            ready.exception()  # mark retrieved: no "never retrieved" warning
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()

    async def close(self) -> None:
        self._closing = True
        pubsub, reader = self._pubsub, self._reader
        if reader is not None:
            reader.cancel()
            await asyncio.wait({reader}, timeout=1.0)  # a swallowed cancel: the reader ends as its connection closes
        self._reset(ConnectionError("API shutting down"), self._ready)
        self._reader = None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:
                pass
        if reader is not None:
            await asyncio.wait({reader}, timeout=1.0)
            if reader.done() and not reader.cancelled():
                reader.exception()  # retrieved: no "never retrieved" warning
