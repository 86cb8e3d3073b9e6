"""The submit hot path's Redis calls: packed in one go and auto-pipelined.

redis-py's generic path costs more than all the rest of a submit: it encodes the ~50 arguments of
an enqueue one by one, takes a locked and instrumented pool, and pays a full socket round trip of
asyncio machinery per command. Here a command is packed in one C call, and the commands
issued by concurrent requests during one event-loop tick go out in one write on one connection,
their replies read back in order (what ioredis calls auto-pipelining). Alone, a request still goes
out at once; under load, one round trip serves many requests. Errors are redis-py's exceptions.

At most `max_connections` connections: when all are busy, commands wait in order for the next free one, at
most `wait_timeout` seconds (then PoolExhausted, and they were never sent). A group of commands
(execute_many) is one entry: it goes out whole, in one write on one connection, so a MULTI ... EXEC in it
stays together.
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

from jobengine import redis_failover
from jobengine.redis_conn import PoolExhausted

Arg = bytes | str | int | float
MAX_BATCH = 256  # entries per write: keeps one slow batch from holding too many requests
# one queued entry: its packed bytes, the future of its reply, and its size: 0 for a single command, whose
# future gets the reply or the error; n for a group of n commands, whose future gets the list of their n
# replies, error replies in place
Entry = tuple[bytes, asyncio.Future[Any], int]


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
    def __init__(self, client: aioredis.Redis, timeout: float, max_connections: int = 16,
                 wait_timeout: float | None = None) -> None:
        pool = client.connection_pool
        # no socket timeout (one asyncio.timeout bounds a batch instead) and no health-check PINGs
        kwargs = {**pool.connection_kwargs, "socket_timeout": None, "health_check_interval": 0}
        self._new = lambda: pool.connection_class(**kwargs)
        self._idle: list[AbstractConnection] = []
        self._open = 0
        self._max = max_connections
        self._timeout = timeout
        self._wait_timeout = wait_timeout  # None: wait as long as it takes
        self._pending: list[Entry] = []
        self._taken = 0  # entries ever taken off _pending (sent or expired): positions for the wait bound
        self._expiry: asyncio.TimerHandle | None = None
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def open_connections(self) -> int:
        return self._open

    async def execute(self, packed: bytes) -> Any:
        """Queue one packed command for this tick's batch and return its reply."""
        return await self._queue(packed, 0)

    async def execute_many(self, packed: list[bytes]) -> list[Any]:
        """Send the commands together, in one write on one connection; replies (or ResponseErrors) in order.
        A connection error or timeout raises, whatever came back before it."""
        if not packed:
            return []
        return await self._queue(b"".join(packed), len(packed))  # type: ignore[no-any-return]

    def _queue(self, packed: bytes, replies: int) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((packed, future, replies))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending:
            if not self._idle and self._open >= self._max:
                self._arm_expiry()  # every connection is busy: the next batch to finish flushes what is left
                return
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._taken += len(batch)
            self._start(batch)

    def _arm_expiry(self) -> None:
        """Fail the entries waiting now if they still wait after wait_timeout (each waits wait_timeout to
        twice that): only armed while every connection is busy, so a free-flowing lane pays nothing."""
        if self._expiry is None and self._wait_timeout is not None:
            upto = self._taken + len(self._pending)
            self._expiry = asyncio.get_running_loop().call_later(self._wait_timeout, self._expire, upto)

    def _expire(self, upto: int) -> None:
        self._expiry = None
        count = upto - self._taken
        if count > 0:
            expired, self._pending = self._pending[:count], self._pending[count:]
            self._taken += count
            error = PoolExhausted(f"no free Redis connection within {self._wait_timeout:g} s: all {self._max} "
                                  "connections of the API's fast lane are busy")
            for _, future, _ in expired:
                if not future.done():
                    future.set_exception(error)
        if self._pending and not self._idle and self._open >= self._max:
            self._arm_expiry()

    def _start(self, batch: list[Entry]) -> None:
        conn = self._idle.pop() if self._idle else self._connection()
        task = asyncio.get_running_loop().create_task(self._send(conn, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _connection(self) -> AbstractConnection:
        self._open += 1
        return self._new()

    async def _send(self, conn: AbstractConnection, batch: list[Entry]) -> None:
        done = 0
        try:
            async with asyncio.timeout(self._timeout):
                if conn.is_connected and await _stale(conn):
                    await conn.disconnect(nowait=True)  # closed by a Redis restart while idle
                if not conn.is_connected:
                    await conn.connect()
                await conn.send_packed_command([packed for packed, _, _ in batch], check_health=False)
                for _, future, replies in batch:
                    if replies == 0:
                        try:
                            reply = await conn.read_response()
                        except ResponseError as exc:  # an error reply: the connection stays in step
                            if not future.done():
                                future.set_exception(exc)
                        else:
                            if not future.done():
                                future.set_result(reply)
                    else:
                        group = [await _reply(conn) for _ in range(replies)]
                        if not future.done():
                            future.set_result(group)
                    done += 1
        except BaseException as exc:
            self._open -= 1  # replies may still be on their way: drop the connection
            await conn.disconnect(nowait=True)
            error = RedisTimeoutError("Redis did not answer in time") if isinstance(exc, TimeoutError) else exc
            for _, future, _ in batch[done:]:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        else:
            self._idle.append(conn)
        if self._pending and not self._flush_scheduled:
            self._flush()

    async def aclose(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for task in list(self._tasks):
            task.cancel()
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect(nowait=True)


async def _reply(conn: AbstractConnection) -> Any:
    """One reply of a group; an error reply in its place. A READONLY inside EXEC's replies (a demoted
    primary) hangs up as one outside does (redis_failover.py), or every batch would fail on this connection."""
    try:
        reply = await conn.read_response()
    except ResponseError as exc:
        return exc
    if type(reply) is list:
        for item in reply:
            if isinstance(item, ResponseError) and redis_failover.demoted(item):
                raise redis_failover.lost(item)
    return reply
