"""Shared fixtures: a real redis-server per test session, and the real API and worker as processes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from jobengine.redis_conn import EmbeddedRedis, free_port, sync_client
from jobengine.settings import Settings
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
# The API runs with authentication on (as in production); its test client sends this key, of
# tenant "default" with every scope. tests/security covers the other keys.
TEST_KEY = "test-admin.test-secret-0123456789abcdef0123456789abcdef"


def key_entry(key: str, tenant: str = "default", scopes: tuple[str, ...] = ("submit", "read", "admin"),
              revoked: bool = False) -> dict[str, object]:
    """The key file entry of an API key `<id>.<secret>`."""
    key_id, secret = key.split(".", 1)
    return {"id": key_id, "tenant": tenant, "scopes": list(scopes), "revoked": revoked,
            "secret_hash": "sha256:" + hashlib.sha256(secret.encode()).hexdigest()}


def write_key_file(path: Path, entries: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(directory=str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """A flushed database on the session's redis-server (restarted if a test stopped it)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBENGINE_", "OTEL_"))}
    env.update(
        JOBENGINE_REDIS_URL=redis_url,
        JOBENGINE_LOG_LEVEL="INFO",
        JOBENGINE_HEARTBEAT_SECONDS="0.5",
        JOBENGINE_ABANDONED_AFTER_SECONDS="3",
        JOBENGINE_METRICS_PORT="0",
        JOBENGINE_API_METRICS_PORT="0",  # start_api gives each API a free one
        # the queues tests name besides the job types' own: a queue must be declared to be accepted
        JOBENGINE_QUEUES_DECLARED="high,default,low,custom",
        JOBENGINE_JOB_TYPE_MODULES="tests.support.jobs",
        # an API started from these alone has no key to check (start_api turns auth on)
        JOBENGINE_AUTH="off",
        JOBENGINE_AUTH_ALLOW_OFF_IN_PRODUCTION="true",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Proc:
    """A service process whose output goes to a log file the test can read."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, name: str = "") -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, ready: Callable[[], bool], what: str, timeout: float = 30) -> None:
        """Poll `ready()` until true; a connection error counts as not yet. Fails with the process's log
        when it exits or the timeout passes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except (httpx.TransportError, redis.RedisError):
                pass
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        else:  # reap the executor children the worker may have left when it was SIGKILLed
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator:
    procs: list[Proc] = []

    def start(*, name: str | None = None, wait_ready: bool = True, **env: str) -> Proc:
        n = len(procs)
        extra = {"JOBENGINE_WORKER_NAME": name or f"test-worker-{n}-{os.getpid()}", **env}
        proc = Proc([sys.executable, "-m", "jobengine_worker"], service_env(redis_url, **extra),
                    tmp_path / f"worker-{n}.log", name=extra["JOBENGINE_WORKER_NAME"])
        procs.append(proc)
        if wait_ready:
            with sync_client(Settings(redis_url=redis_url)) as client:  # (redis_url may be a Sentinel URL)
                proc.wait_ready(lambda: client.exists(f"rq:worker:{proc.name}"), "worker", timeout=20)
        return proc

    yield start
    for proc in procs:
        proc.stop()


class Api:
    def __init__(self, proc: Proc, base_url: str, key: str | None = None, metrics_url: str = "") -> None:
        self.proc = proc
        self.base_url = base_url
        self.key = key
        self.metrics_url = metrics_url  # the API's /metrics, on its own port (JOBENGINE_API_METRICS_PORT)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=base_url, timeout=30, headers=headers)

    def metrics(self) -> str:
        """The text of a scrape of the API's /metrics."""
        resp = httpx.get(self.metrics_url, timeout=30)
        resp.raise_for_status()
        return resp.text


@pytest.fixture(scope="session")
def api_keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key_file(tmp_path_factory.mktemp("auth") / "keys.json", [key_entry(TEST_KEY)])


@pytest.fixture
def start_api(redis_url: str, tmp_path: Path, api_keys_file: Path) -> Iterator:
    """start_api(key=TEST_KEY, **env): the API with auth on and the session's key file; its client sends `key`."""
    apis: list[Api] = []

    def start(*, key: str | None = TEST_KEY, **env: str) -> Api:
        port, metrics_port = free_port(), free_port()
        extra = {"JOBENGINE_API_PORT": str(port), "JOBENGINE_API_METRICS_PORT": str(metrics_port),
                 "JOBENGINE_AUTH": "on", "JOBENGINE_API_KEYS_FILE": str(api_keys_file), **env}
        proc = Proc([sys.executable, "-m", "jobengine_api"], service_env(redis_url, **extra),
                    tmp_path / f"api-{len(apis)}.log")
        api = Api(proc, f"http://127.0.0.1:{port}", key, f"http://127.0.0.1:{extra['JOBENGINE_API_METRICS_PORT']}/metrics")
        apis.append(api)
        proc.wait_ready(lambda: api.client.get("/healthz").status_code == 200, "API")
        return api

    yield start
    for api in apis:
        api.client.close()
        api.proc.stop()


@pytest.fixture
def api(start_api) -> Api:  # type: ignore[no-untyped-def]
    return start_api()


@pytest.fixture
def worker(start_worker) -> Proc:  # type: ignore[no-untyped-def]
    return start_worker()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll until predicate() is truthy; returns its value (tests/support/wait.py's wait_until, with the
    defaults the older tests were written for)."""
    return wait_until(predicate, timeout=timeout, interval=interval, message=message)
