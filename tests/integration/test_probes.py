"""Probes against a Redis that is away: the worker's liveness (`jobengine-worker-health --live`) asks the
worker's own loop, never Redis; the API's readiness path (/healthz) stays up while the API answers 503 +
Retry-After itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from jobengine.redis_conn import EmbeddedRedis

from tests.conftest import service_env
from tests.support.wait import wait_until

MAX_AGE = 3.0


def probe(redis_url: str, alive_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = service_env(redis_url, JOBENGINE_LIVENESS_FILE=str(alive_file),
                      JOBENGINE_LIVENESS_MAX_AGE_SECONDS=str(MAX_AGE))
    return subprocess.run([sys.executable, "-m", "jobengine_worker.health", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_liveness_holds_through_a_redis_outage_and_fails_when_the_loop_is_stuck(
        start_worker, redis_server: EmbeddedRedis, redis_url: str, tmp_path: Path) -> None:
    alive = tmp_path / "alive"
    worker = start_worker(JOBENGINE_LIVENESS_FILE=str(alive), JOBENGINE_LIVENESS_MAX_AGE_SECONDS=str(MAX_AGE))
    assert probe(redis_url, alive, "--live").returncode == 0
    try:
        redis_server.stop()
        stopped = os.stat(alive).st_mtime
        not_ready = probe(redis_url, alive, worker.name)  # readiness still asks Redis
        assert not_ready.returncode == 1 and "Redis unreachable" in not_ready.stdout
        # the outage outlasts the liveness file's maximum age, and the loop still touches it
        wait_until(lambda: os.stat(alive).st_mtime > stopped + MAX_AGE + 0.5, timeout=30,
                   message="the worker's loop to touch its liveness file while Redis is away")
        live = probe(redis_url, alive, "--live")
        assert live.returncode == 0, live.stdout + worker.log()[-2000:]
        assert worker.alive()

        worker.signal(signal.SIGSTOP)  # a loop that makes no progress
        try:
            wait_until(lambda: probe(redis_url, alive, "--live").returncode == 1, timeout=30,
                       message="liveness to fail once the loop is stuck")
        finally:
            worker.signal(signal.SIGCONT)
        wait_until(lambda: probe(redis_url, alive, "--live").returncode == 0, timeout=30,
                   message="liveness to recover once the loop runs again")
    finally:
        redis_server.start()


def test_api_stays_ready_and_answers_503_with_retry_after_while_redis_is_away(
        start_api, redis_server: EmbeddedRedis) -> None:
    api = start_api()
    try:
        redis_server.stop()
        assert api.client.get("/healthz").status_code == 200  # the chart's readiness path: endpoints stay
        resp = api.client.post("/v1/jobs", json={"type": "primes", "payload": {"lowest": 10, "highest": 17}})
        assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1, resp.text
    finally:
        redis_server.start()


def test_liveness_holds_while_a_job_outlasts_the_maximum_age(
        start_worker, start_api, redis_url: str, r, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A job longer than JOBENGINE_LIVENESS_MAX_AGE_SECONDS: the worker supervises it in its loop, which keeps
    touching the file, so liveness never restarts a busy worker."""
    from tests.support.gated import open_gate

    from .test_api_jobs import ended, gated, submit, wait_status

    alive = tmp_path / "alive"
    start_worker(JOBENGINE_LIVENESS_FILE=str(alive), JOBENGINE_LIVENESS_MAX_AGE_SECONDS=str(MAX_AGE))
    api = start_api()
    job_id = submit(api, gated(redis_url))
    wait_status(api, job_id, "started")
    started = os.stat(alive).st_mtime
    wait_until(lambda: os.stat(alive).st_mtime > started + MAX_AGE + 0.5, timeout=30,
               message="the liveness file to be touched while the job runs")
    assert probe(redis_url, alive, "--live").returncode == 0
    assert get_status(api, job_id) == "started"  # the job was still running
    open_gate(r, job_id)
    assert ended(api, job_id)["status"] == "finished"


def get_status(api, job_id: str) -> str:  # type: ignore[no-untyped-def]
    return api.client.get(f"/v1/jobs/{job_id}").json()["status"]  # type: ignore[no-any-return]
