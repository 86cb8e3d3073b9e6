"""Long-poll support: one shared pub/sub connection per process, fanning jobengine:done:<id> out to futures.

A waiter subscribes and waits for Redis to confirm the subscription before it re-reads the job, so a
job that ends in between is seen either by that read or by the message. A channel is unsubscribed
when its last waiter leaves, but never before its subscription was confirmed (an old confirmation
could otherwise be mistaken for a new one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from jobengine import keys

log = logging.getLogger(__name__)


class _Channel:
    __slots__ = ("confirmed", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.confirmed: asyncio.Future[None] = loop.create_future()
        self.waiters: set[asyncio.Future[str]] = set()


class DoneWaiter:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[bytes, _Channel] = {}
        self._connecting = asyncio.Lock()

    @asynccontextmanager
    async def subscription(self, job_id: str) -> AsyncIterator[asyncio.Future[str]]:
        """Yields a future resolved with the job's terminal status once it is published.

        On entry the subscription is active (confirmed by Redis); raises a Redis error when it cannot be.
        """
        loop = asyncio.get_running_loop()
        name = keys.done_channel(job_id).encode()
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(loop)
            try:
                pubsub = await self._ensure_pubsub()
                await pubsub.subscribe(name)
            except BaseException as exc:
                if self._channels.get(name) is channel:
                    del self._channels[name]
                if not channel.confirmed.done():
                    channel.confirmed.set_exception(exc if isinstance(exc, Exception) else ConnectionError("canceled"))
                    channel.confirmed.exception()
                raise
        future: asyncio.Future[str] = loop.create_future()
        channel.waiters.add(future)
        try:
            await asyncio.shield(channel.confirmed)
            yield future
        finally:
            channel.waiters.discard(future)
            if not future.done():
                future.cancel()
            self._maybe_unsubscribe(name, channel)

    def _maybe_unsubscribe(self, name: bytes, channel: _Channel) -> None:
        if channel.waiters or self._channels.get(name) is not channel or not channel.confirmed.done():
            return
        del self._channels[name]
        if self._pubsub is not None and channel.confirmed.exception() is None:
            asyncio.get_running_loop().create_task(self._unsubscribe(self._pubsub, name))

    async def _unsubscribe(self, pubsub: aioredis.client.PubSub, name: bytes) -> None:
        try:
            await pubsub.unsubscribe(name)
        except Exception:  # the reader notices a broken connection and resets everything
            pass

    async def _ensure_pubsub(self) -> aioredis.client.PubSub:
        if self._pubsub is not None and self._reader is not None and not self._reader.done():
            return self._pubsub
        async with self._connecting:
            if self._pubsub is None:
                self._pubsub = self._client.pubsub()
            if self._reader is None or self._reader.done():
                pubsub = self._pubsub
                try:
                    await pubsub.connect()  # before the reader starts: it needs a connection to read from
                except BaseException:
                    self._pubsub = None
                    await pubsub.aclose()
                    raise
                self._reader = asyncio.get_running_loop().create_task(self._read(pubsub))
            return self._pubsub

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = message["type"]
                channel = self._channels.get(message["channel"])
                if channel is None:
                    continue
                if kind == "message":
                    status = message["data"].decode(errors="replace")
                    for future in channel.waiters:
                        if not future.done():
                            future.set_result(status)
                elif kind == "subscribe" and not channel.confirmed.done():
                    channel.confirmed.set_result(None)
                    self._maybe_unsubscribe(message["channel"], channel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection lost: fail every waiter (they re-read or answer 503), start afresh
            log.warning("pub/sub connection lost", extra={"error": repr(exc)})
            self._reset(exc)
            try:
                await pubsub.aclose()
            except Exception:
                pass

    def _reset(self, exc: BaseException) -> None:
        channels, self._channels = self._channels, {}
        self._pubsub = None
        for channel in channels.values():
            if not channel.confirmed.done():
                channel.confirmed.set_exception(exc)
                channel.confirmed.exception()  # mark retrieved: no "never retrieved" warning
            for future in channel.waiters:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()

    async def close(self) -> None:
        pubsub, reader = self._pubsub, self._reader
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except (asyncio.CancelledError, Exception):
                pass
        self._reset(ConnectionError("API shutting down"))
        self._reader = None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:
                pass
