"""The submit hot path's Redis calls: packed in one go and auto-pipelined.

redis-py's generic path costs more than all the rest of a submit: it encodes the ~50 arguments of
an enqueue one by one, takes a locked and instrumented pool, and pays a full socket round trip of
asyncio machinery per command. Here a command is packed in one C call, and the commands
issued by concurrent requests during one event-loop tick go out in one write on one connection,
their replies read back in order (what ioredis calls auto-pipelining). Alone, a request still goes
out at once; under load, one round trip serves many requests. Errors are redis-py's exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = bytes | str | int | float
MAX_BATCH = 256  # commands per write: keeps one slow batch from holding too many requests


def pack(args: Sequence[Arg]) -> bytes:
    """One RESP array of bulk strings, ints and floats in decimal as redis-py writes them (hiredis's packer,
    in C: a Python loop over an enqueue's ~50 arguments was a fifth of the batch endpoint's CPU). Any
    other type (None, bool) raises TypeError, as redis-py refuses them too."""
    return hiredis.pack_command(tuple(args))


async def _stale(conn: AbstractConnection) -> bool:
    """An idle connection with bytes to read or at EOF (no I/O: looks at the buffers only)."""
    try:
        return await conn.can_read()
    except (OSError, ConnectionError):
        return True


class FastLane:
    def __init__(self, client: aioredis.Redis, timeout: float, max_connections: int = 16) -> None:
        pool = client.connection_pool
        # no socket timeout (one asyncio.timeout bounds a batch instead) and no health-check PINGs
        kwargs = {**pool.connection_kwargs, "socket_timeout": None, "health_check_interval": 0}
        self._new = lambda: pool.connection_class(**kwargs)
        self._idle: list[AbstractConnection] = []
        self._open = 0
        self._max = max_connections
        self._timeout = timeout
        self._pending: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def execute(self, packed: bytes) -> Any:
        """Queue one packed command for this tick's batch and return its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((packed, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    async def execute_many(self, packed: list[bytes]) -> list[Any]:
        """Send the commands in one write on one connection; replies (or ResponseErrors) in order."""
        loop = asyncio.get_running_loop()
        batch = [(command, loop.create_future()) for command in packed]
        self._start(batch)
        replies: list[Any] = []
        for _, future in batch:
            try:
                replies.append(await future)
            except ResponseError as exc:
                replies.append(exc)
        return replies

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending:
            if not self._idle and self._open >= self._max:
                return  # every connection is busy: the next batch to finish flushes what is left
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._start(batch)

    def _start(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        conn = self._idle.pop() if self._idle else self._connection()
        task = asyncio.get_running_loop().create_task(self._send(conn, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _connection(self) -> AbstractConnection:
        self._open += 1
        return self._new()

    async def _send(self, conn: AbstractConnection, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        done = 0
        try:
            async with asyncio.timeout(self._timeout):
                if conn.is_connected and await _stale(conn):
                    await conn.disconnect(nowait=True)  # closed by a Redis restart while idle
                if not conn.is_connected:
                    await conn.connect()
                await conn.send_packed_command([packed for packed, _ in batch], check_health=False)
                for _, future in batch:
                    try:
                        reply = await conn.read_response()
                    except ResponseError as exc:  # an error reply: the connection stays in step
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(reply)
                    done += 1
        except BaseException as exc:
            self._open -= 1  # replies may still be on their way: drop the connection
            await conn.disconnect(nowait=True)
            error = RedisTimeoutError("Redis did not answer in time") if isinstance(exc, TimeoutError) else exc
            for _, future in batch[done:]:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        else:
            self._idle.append(conn)
        if self._pending and not self._flush_scheduled:
            self._flush()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect(nowait=True)
