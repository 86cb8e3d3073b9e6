"""Settings: environment variables validated at start, with a message naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobengine.settings import Settings


def test_defaults_and_comma_lists(monkeypatch):
    monkeypatch.setenv("JOBENGINE_QUEUES", "high, default ,low")
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/0")
    settings = Settings()
    assert settings.queues == ["high", "default", "low"]
    assert settings.redis_url == "redis://example:6379/0"


@pytest.mark.parametrize("var, value", [
    ("JOBENGINE_BATCH_SIZE", "many"),
    ("JOBENGINE_QUEUES", "bad queue!"),
    ("JOBENGINE_API_PORT", "70000"),
    ("JOBENGINE_ENV", "staging"),
    ("JOBENGINE_QUEUES_DECLARED", "ok,not ok"),
    ("JOBENGINE_API_METRICS_PORT", "8000"),  # the API port: /metrics must stay off it
    ("JOBENGINE_MAX_JOBS", "-1"),
    ("JOBENGINE_IDLE_EXIT_SECONDS", "-0.5"),
])
def test_bad_value_stops_the_worker_with_the_variable_named(var, value):
    env = {"PATH": "/usr/bin:/bin", var: value, "JOBENGINE_REDIS_URL": "redis://127.0.0.1:1/0"}
    proc = subprocess.run([sys.executable, "-m", "jobengine_worker"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert var in proc.stderr


def test_declared_queues_are_a_comma_list(monkeypatch):
    monkeypatch.setenv("JOBENGINE_QUEUES_DECLARED", "reports, exports")
    assert Settings().queues_declared == ["reports", "exports"]
    monkeypatch.setenv("JOBENGINE_QUEUES_DECLARED", "")
    assert Settings().queues_declared == []


def test_the_api_graceful_timeout_outlasts_the_longest_long_poll() -> None:
    assert Settings(max_wait_seconds=40).graceful_shutdown_seconds == 45  # default: max wait + 5
    assert Settings(max_wait_seconds=40, api_graceful_shutdown_seconds=60).graceful_shutdown_seconds == 60
    with pytest.raises(ValueError, match="JOBENGINE_MAX_WAIT_SECONDS"):
        Settings(max_wait_seconds=40, api_graceful_shutdown_seconds=20)
