"""The real platform for the SDK and CLI tests: the session's redis-server, the API (auth on) and a worker as
processes, started once per test module (each module leaves them as it found them, or has its own)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from jobengine.redis_conn import EmbeddedRedis, free_port
from tests.conftest import TEST_KEY, Proc, key_entry, service_env, write_key_file

# a key of the same tenant without the admin scope (for 403), and one of another tenant
USER_KEY = "test-user.user-secret-0123456789abcdef0123456789abcdef"


@dataclass
class Platform:
    url: str
    key: str
    redis_server: EmbeddedRedis
    api: Proc
    worker: Proc

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)


@pytest.fixture(scope="module")
def platform(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    tmp = tmp_path_factory.mktemp("clients")
    keys = write_key_file(tmp / "keys.json", [key_entry(TEST_KEY), key_entry(USER_KEY, scopes=("submit", "read"))])
    port = free_port()
    api_env = service_env(redis_server.url, JOBENGINE_API_PORT=str(port), JOBENGINE_API_METRICS_PORT=str(free_port()),
                          JOBENGINE_AUTH="on", JOBENGINE_API_KEYS_FILE=str(keys))
    api = Proc([sys.executable, "-m", "jobengine_api"], api_env, tmp / "api.log", name="api")
    url = f"http://127.0.0.1:{port}"
    worker_name = f"clients-worker-{os.getpid()}-{port}"
    worker = Proc([sys.executable, "-m", "jobengine_worker"],
                  service_env(redis_server.url, JOBENGINE_WORKER_NAME=worker_name), tmp / "worker.log",
                  name=worker_name)
    try:
        api.wait_ready(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, "API")
        with redis.Redis.from_url(redis_server.url) as client:
            worker.wait_ready(lambda: bool(client.exists(f"rq:worker:{worker_name}")), "worker")
        yield Platform(url, TEST_KEY, redis_server, api, worker)
    finally:
        worker.stop()
        api.stop()
        if redis_server.proc is None or redis_server.proc.poll() is not None:
            redis_server.start()  # a test that stopped it and failed before starting it again


class CountingTransport(httpx.HTTPTransport):
    """The ordinary HTTP transport, counting the requests it sends (how many tries a call made)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)
