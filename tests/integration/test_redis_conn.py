"""The Redis clients reconnect by themselves after a Redis restart (no failed command) and after a failover
demoted the primary they were talking to."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from jobengine.redis_conn import EmbeddedRedis, async_client, sync_client
from jobengine.scripts import Scripts
from jobengine.settings import Settings

from .test_api_submit import PRIMES, assert_problem


def test_clients_survive_a_redis_restart(tmp_path):
    server = EmbeddedRedis(directory=str(tmp_path)).start()
    try:
        settings = Settings(redis_url=server.url)
        sync = sync_client(settings)
        sync.set("k", "v")

        async def use_async() -> list[bytes | None]:
            client = async_client(settings)
            await client.get("k")
            server.restart()  # graceful: AOF keeps the key
            got = [await client.get("k") for _ in range(2)]
            await client.aclose()
            return got

        assert asyncio.run(use_async()) == [b"v", b"v"]
        server.restart()
        assert sync.get("k") == b"v"
        sync.close()
    finally:
        server.stop()


def client_ids(server: EmbeddedRedis) -> set[int]:
    with redis.Redis(port=server.port) as admin:
        me = admin.client_id()
        return {c["id"] for c in admin.client_list()} - {me}


def test_a_demoted_primary_drops_the_connection_and_gives_a_retryable_error(tmp_path):
    """A managed Redis's failover demotes the old primary while its endpoint name moves on: its READONLY
    replies must close the connection (the next command resolves the name again) and be retryable."""
    primary = EmbeddedRedis(directory=str(tmp_path / "a")).start()
    other = EmbeddedRedis(directory=str(tmp_path / "b")).start()
    try:
        settings = Settings(redis_url=primary.url)
        sync = sync_client(settings)
        scripts = Scripts.register(sync)

        async def async_write() -> None:
            client = async_client(settings)
            try:
                await client.set("k", "v")
            finally:
                await client.aclose()

        sync.set("k", "v")
        before = client_ids(primary)
        with redis.Redis(port=primary.port) as admin:
            admin.replicaof("127.0.0.1", other.port)  # read-only from now on
        with pytest.raises(redis.ConnectionError, match="no longer the primary"):
            sync.set("k", "w")
        with pytest.raises(redis.ConnectionError, match="no longer the primary"):  # a script too (the worker's path)
            scripts.claim(args=["1", "now", "w", "e", "1", "0", "default"])  # LPOP: refused on a replica
        with pytest.raises(redis.ConnectionError, match="no longer the primary"):
            asyncio.run(async_write())
        assert before and not before & client_ids(primary), "the connection to the demoted primary was kept"
        with redis.Redis(port=primary.port) as admin:
            admin.replicaof("no", "one")
        assert sync.set("k", "w") and sync.get("k") == b"w"
        asyncio.run(async_write())
        sync.close()
    finally:
        primary.stop()
        other.stop()


@pytest.fixture
def own_redis(tmp_path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(directory=str(tmp_path / "own")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(own_redis: EmbeddedRedis) -> str:
    """The API and worker of the test below use a Redis of their own, which it demotes and promotes."""
    return own_redis.url


def test_api_and_worker_ride_out_a_demotion_of_their_redis(own_redis, tmp_path, api, worker):  # type: ignore[no-untyped-def]
    other = EmbeddedRedis(directory=str(tmp_path / "other")).start()
    try:
        first = api.client.post("/v1/jobs", json=PRIMES)
        assert api.client.get(first.headers["location"], params={"wait": 10}).json()["status"] == "finished"
        with redis.Redis(port=own_redis.port) as admin:
            admin.replicaof("127.0.0.1", other.port)  # demoted: every write is refused (READONLY)
        problem = assert_problem(api.client.post("/v1/jobs", json=PRIMES), 503)
        assert problem["title"] and api.client.post("/v1/jobs", json=PRIMES).headers.get("retry-after")
        time.sleep(2)  # the worker's claims and heartbeats meet the refusals meanwhile
        assert worker.alive(), worker.log()[-2000:]
        with redis.Redis(port=own_redis.port) as admin:
            admin.replicaof("no", "one")  # promoted again (its data now the other's: empty)
        deadline = time.monotonic() + 15
        while (resp := api.client.post("/v1/jobs", json=PRIMES)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert resp.status_code == 202, resp.text
        got = api.client.get(resp.headers["location"], params={"wait": 15}).json()
        assert got["status"] == "finished" and got["result"]["count"] == 3
        assert worker.alive() and api.proc.alive()
    finally:
        other.stop()


def test_api_and_worker_wait_out_a_busy_redis(own_redis, api, worker):  # type: ignore[no-untyped-def]
    """A script past Redis's time limit makes it answer BUSY to everyone (a disk that cannot take the AOF,
    MISCONF, likewise): a retryable 503 and a worker that waits, not a 500 and a worker that stops."""
    admin = redis.Redis(port=own_redis.port)
    admin.config_set("busy-reply-threshold", 100)  # ms
    first = api.client.post("/v1/jobs", json=PRIMES)
    assert api.client.get(first.headers["location"], params={"wait": 10}).json()["status"] == "finished"

    def spin() -> None:
        with redis.Redis(port=own_redis.port) as client, contextlib.suppress(redis.ResponseError):
            client.eval("while true do end", 0)  # ends with an error once SCRIPT KILL stops it

    blocker = threading.Thread(target=spin)
    blocker.start()
    try:
        time.sleep(0.5)
        problem = assert_problem(api.client.post("/v1/jobs", json=PRIMES), 503)
        assert problem["status"] == 503
        time.sleep(1.5)  # the worker's claims and heartbeats meet BUSY meanwhile
        assert worker.alive(), worker.log()[-2000:]
    finally:
        admin.script_kill()
        blocker.join(10)
        admin.close()
    deadline = time.monotonic() + 15
    while (resp := api.client.post("/v1/jobs", json=PRIMES)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert resp.status_code == 202, resp.text
    assert api.client.get(resp.headers["location"], params={"wait": 15}).json()["status"] == "finished"
    assert worker.alive() and api.proc.alive()
