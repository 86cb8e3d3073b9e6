"""The worker's own exits and its pod-deletion-cost hook, as a real process on a real Redis: JOBENGINE_MAX_JOBS
(exit 0 after that many jobs, claiming no more), JOBENGINE_IDLE_EXIT_SECONDS (exit 0 after that long without a
job, never while one runs), both leaving as a drained worker does; JOBENGINE_POD_DELETION_COST against a stand-in
Kubernetes API (busy while a job runs, idle after), and its bad configuration refused at start."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobengine.producer import JobSpec, Producer
from jobengine_worker.deletion_cost import BUSY_COST, IDLE_COST
from tests.integration.test_worker import producer, status  # noqa: F401 - the producer fixture
from tests.support.gated import open_gate
from tests.support.kube_api import KubeApiStandIn
from tests.support.wait import wait_until

EXIT_WAIT = 30.0  # deadline of a worker's exit: only a worker that never exits reaches it
POD, NAMESPACE = "rel-jobengine-worker-default-7f9c-abcde", "jobs"


def left_as_drained(r: redis.Redis, name: str) -> None:
    """What a drained worker leaves: no worker key, no claim held."""
    assert not r.exists(f"rq:worker:{name}")
    assert r.smembers("rq:workers") == set()
    assert r.zcard("rq:wip:default") == 0


@pytest.mark.parametrize(("max_jobs", "waiting"), [(3, 5), (4, 10)])
def test_max_jobs_runs_that_many_and_exits_0_leaving_the_rest_queued(r, producer: Producer, start_worker,  # noqa: F811
                                                                     max_jobs: int, waiting: int) -> None:
    """Quick jobs grow the claims 1, 2, 4...: with 4 the third claim must take 1, not 4 (the cap, not the
    batch size, decides); with 3 the claims end on the limit exactly."""
    ids = producer.submit_many([JobSpec("counted", {"seconds": 0}) for _ in range(waiting)])
    worker = start_worker(JOBENGINE_MAX_JOBS=str(max_jobs), JOBENGINE_BATCH_SIZE="16")
    assert worker.wait(EXIT_WAIT) == 0, worker.log()[-3000:]
    # at the exit, not later: the last batch's outcomes were written before it left
    assert [status(r, j) for j in ids] == ["finished"] * max_jobs + ["queued"] * (waiting - max_jobs)
    assert r.lrange("rq:queue:default", 0, -1) == [j.encode() for j in ids[max_jobs:]]
    assert all(r.hget(f"rq:job:{j}", "jobengine_attempts") in (None, b"0") for j in ids[max_jobs:])
    left_as_drained(r, worker.name)
    assert "exiting: JOBENGINE_MAX_JOBS jobs ended" in worker.log()


def test_idle_exit_exits_0_when_no_job_comes(r, start_worker) -> None:
    worker = start_worker(JOBENGINE_IDLE_EXIT_SECONDS="0.5")
    assert worker.wait(EXIT_WAIT) == 0, worker.log()[-3000:]
    left_as_drained(r, worker.name)
    assert "exiting: no job for JOBENGINE_IDLE_EXIT_SECONDS" in worker.log()


def test_idle_exit_waits_for_a_running_job_then_counts_from_its_end(r, producer: Producer, start_worker,  # noqa: F811
                                                                   redis_url: str) -> None:
    idle = 0.5
    job = producer.submit("gated", {"redis_url": redis_url})
    worker = start_worker(JOBENGINE_IDLE_EXIT_SECONDS=str(idle))
    wait_until(lambda: status(r, job) == "started", message="the job to start")
    started = time.monotonic()
    # the job runs four times the idle limit: the worker must still be there, holding it
    wait_until(lambda: not worker.alive() or time.monotonic() - started > 4 * idle, message="4 idle limits")
    assert worker.alive() and status(r, job) == "started", worker.log()[-3000:]
    open_gate(r, job)
    assert worker.wait(EXIT_WAIT) == 0, worker.log()[-3000:]
    assert status(r, job) == "finished"
    left_as_drained(r, worker.name)


@pytest.fixture
def kube_api() -> Iterator[KubeApiStandIn]:
    with KubeApiStandIn() as server:
        yield server


def deletion_cost_env(api: KubeApiStandIn, tmp_path: Path) -> dict[str, str]:
    token = tmp_path / "token"
    token.write_text("worker-token\n")
    return {"JOBENGINE_POD_DELETION_COST": "on", "JOBENGINE_POD_NAME": POD, "JOBENGINE_POD_NAMESPACE": NAMESPACE,
            "JOBENGINE_KUBERNETES_API_URL": api.url, "JOBENGINE_KUBERNETES_TOKEN_FILE": str(token)}


def test_the_worker_marks_its_pod_busy_while_a_job_runs_and_idle_after(r, producer: Producer,  # noqa: F811
                                                                       start_worker, redis_url: str,
                                                                       kube_api: KubeApiStandIn,
                                                                       tmp_path: Path) -> None:
    worker = start_worker(**deletion_cost_env(kube_api, tmp_path))
    job = producer.submit("gated", {"redis_url": redis_url})
    busy = kube_api.seen.get(timeout=EXIT_WAIT)
    assert (busy.method, busy.path, busy.authorization) == (
        "PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}", "Bearer worker-token")
    assert busy.cost == str(BUSY_COST)
    assert status(r, job) == "started"  # (the gate is closed: it cannot have ended)
    open_gate(r, job)
    idle = kube_api.seen.get(timeout=EXIT_WAIT)  # after the module's idle grace (2 s)
    assert idle.cost == str(IDLE_COST)
    assert status(r, job) == "finished"  # recorded before the worker went back to waiting
    assert kube_api.seen.empty() and worker.alive()


def test_deletion_cost_on_without_the_pod_name_stops_the_worker_at_start(start_worker) -> None:
    worker = start_worker(wait_ready=False, JOBENGINE_POD_DELETION_COST="on", JOBENGINE_POD_NAMESPACE="jobs",
                          JOBENGINE_KUBERNETES_API_URL="http://127.0.0.1:9")
    assert worker.wait(EXIT_WAIT) == 2
    log = worker.log()
    assert "invalid setting JOBENGINE_POD_DELETION_COST=on needs JOBENGINE_POD_NAME" in log
    assert "Traceback" not in log


def test_deletion_cost_on_outside_a_cluster_runs_with_the_hook_off(r, producer: Producer,  # noqa: F811
                                                                   start_worker) -> None:
    """The chart's env run where no API server is (podman, as tests/containers does): the worker runs, says so."""
    worker = start_worker(JOBENGINE_POD_DELETION_COST="on", JOBENGINE_POD_NAME=POD, JOBENGINE_POD_NAMESPACE=NAMESPACE,
                          KUBERNETES_SERVICE_HOST="")
    job = producer.submit("counted", {"seconds": 0})
    wait_until(lambda: status(r, job) == "finished", message="the job to finish")
    assert "the pod-deletion-cost updates stay off" in worker.log()
