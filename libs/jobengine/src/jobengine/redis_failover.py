"""Connection classes that turn a Redis refusing work for a while into errors every caller here retries.

A demoted primary answers writes with READONLY, and a client blocked in BLPOP on it with UNBLOCKED
("instance state changed"). redis-py's plain connections keep the socket, so every later write fails
the same way until the process restarts; its Sentinel connections hang up on READONLY only. These
close the connection and raise ConnectionError: the next command connects again, resolving the
endpoint's name anew or asking the sentinels for the new primary.

A Redis that cannot persist (MISCONF: its disk is full or failing) or runs a script past its time limit
(BUSY) refuses commands until that passes. redis-py raises a bare ResponseError, which reads as a bug
(the worker stopped, the API answered 500); these raise Refusing, a transient error (503, retry).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel


class Refusing(redis.ResponseError):
    """Redis refuses commands for now (MISCONF, BUSY): retry later."""


def demoted(exc: redis.ResponseError) -> bool:
    """The reply of a server that stopped being the primary."""
    return isinstance(exc, redis.exceptions.ReadOnlyError) or str(exc).startswith("UNBLOCKED")


def refusing(exc: redis.ResponseError) -> bool:
    return str(exc).startswith(("MISCONF", "BUSY "))


def lost(exc: redis.ResponseError) -> redis.ConnectionError:
    return redis.ConnectionError(f"Redis is no longer the primary (failover?), reconnecting: {exc}")


class _HangUp:
    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.ResponseError as exc:
            if refusing(exc):
                raise Refusing(str(exc)) from exc
            if not demoted(exc):
                raise
            self.disconnect()  # type: ignore[attr-defined]
            raise lost(exc) from exc


class _AsyncHangUp:
    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.ResponseError as exc:
            if refusing(exc):
                raise Refusing(str(exc)) from exc
            if not demoted(exc):
                raise
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
            raise lost(exc) from exc


class Connection(_HangUp, redis.Connection): ...
class SSLConnection(_HangUp, redis.SSLConnection): ...
class UnixConnection(_HangUp, redis.UnixDomainSocketConnection): ...
class SentinelConnection(_HangUp, redis.sentinel.SentinelManagedConnection): ...
class SentinelSSLConnection(_HangUp, redis.sentinel.SentinelManagedSSLConnection): ...
class AsyncConnection(_AsyncHangUp, aioredis.Connection): ...
class AsyncSSLConnection(_AsyncHangUp, aioredis.SSLConnection): ...
class AsyncUnixConnection(_AsyncHangUp, aioredis.UnixDomainSocketConnection): ...
class AsyncSentinelConnection(_AsyncHangUp, aiosentinel.SentinelManagedConnection): ...
class AsyncSentinelSSLConnection(_AsyncHangUp, aiosentinel.SentinelManagedSSLConnection): ...


# by URL scheme: redis-py picks SSL or Unix from the scheme unless given a class, so these keep that choice
SYNC = {"redis": Connection, "rediss": SSLConnection, "unix": UnixConnection,
        "redis+sentinel": SentinelConnection, "rediss+sentinel": SentinelSSLConnection}
ASYNC = {"redis": AsyncConnection, "rediss": AsyncSSLConnection, "unix": AsyncUnixConnection,
         "redis+sentinel": AsyncSentinelConnection, "rediss+sentinel": AsyncSentinelSSLConnection}
