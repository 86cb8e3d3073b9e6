"""The API and a real worker together, as a user sees them: submit over HTTP (202 + Location), read the result
the worker wrote through GET ?wait=, a failure with its error, cancel, and the retry of a failed job."""

from __future__ import annotations

import time

import redis

from tests.support.wait import wait_until

from .test_api_submit import PRIMES, assert_problem


def test_seed_example_end_to_end(api, worker) -> None:  # type: ignore[no-untyped-def]
    resp = api.client.post("/v1/jobs", json=PRIMES)
    assert resp.status_code == 202
    body = resp.json()
    assert resp.headers["location"] == body["location"] == f"/v1/jobs/{body['id']}" and body["status"] == "queued"
    got = api.client.get(resp.headers["location"], params={"wait": 30}).json()
    assert got["status"] == "finished", got
    assert got["result"] == {"primes": [11, 13, 17], "count": 3}
    assert got["attempts"] == 1 and got["error"] is None and got["started_at"] and got["ended_at"]


def test_batch_jobs_all_finish(api, worker) -> None:  # type: ignore[no-untyped-def]
    jobs = [{"type": "primes", "payload": {"lowest": 0, "highest": n}} for n in range(2, 22)]
    results = api.client.post("/v1/jobs:batch", json={"jobs": jobs}).json()["results"]
    for n, res in zip(range(2, 22), results, strict=True):
        got = api.client.get(f"/v1/jobs/{res['id']}", params={"wait": 30}).json()
        assert got["status"] == "finished" and got["result"]["primes"][-1] <= n


def test_failed_job_shows_its_error_and_can_be_retried(api, worker) -> None:  # type: ignore[no-untyped-def]
    job_id = api.client.post("/v1/jobs", json={"type": "echo", "payload": {"message": "x", "fail": True},
                                               "retry": {"max_retries": 1, "base_delay": 0.1}}).json()["id"]
    got = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert got["status"] == "failed" and got["attempts"] == 2 and got["retries_left"] == 0 and got["result"] is None
    assert "EchoFailure: echo failed on purpose (attempt 2)" in got["error"]
    assert [i["id"] for i in api.client.get("/v1/jobs", params={"status": "failed"}).json()["items"]] == [job_id]

    resp = api.client.post(f"/v1/jobs/{job_id}/retry")
    assert resp.status_code == 202 and resp.json()["status"] == "queued"
    got = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert got["status"] == "failed" and got["attempts"] == 4 and "(attempt 4)" in got["error"]


def test_retry_of_a_failed_job_runs_it_again_to_success(api, worker) -> None:  # type: ignore[no-untyped-def]
    """A failure the client fixed on its side (here: the job fails on its first attempt only) is retried by hand."""
    body = {"type": "echo", "payload": {"message": "again", "fail_attempts": 1}, "retry": {"max_retries": 0}}
    job_id = api.client.post("/v1/jobs", json=body).json()["id"]
    got = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert got["status"] == "failed" and "EchoFailure" in got["error"]
    assert api.client.post(f"/v1/jobs/{job_id}/retry").status_code == 202
    got = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert got["status"] == "finished" and got["result"] == {"message": "again", "attempt": 2}


def test_retrying_job_reports_the_last_error(api, worker) -> None:  # type: ignore[no-untyped-def]
    body = {"type": "echo", "payload": {"message": "ok", "fail_attempts": 1},
            "retry": {"max_retries": 2, "base_delay": 0.5, "jitter": 0}}
    job_id = api.client.post("/v1/jobs", json=body).json()["id"]
    got = wait_until(lambda: (g := api.client.get(f"/v1/jobs/{job_id}").json())["attempts"] >= 1
                     and g["status"] != "started" and g, message="the first attempt to end")
    if got["status"] != "finished":  # between the attempts: the first attempt's error is visible
        assert got["status"] in ("scheduled", "queued") and got["error"]
    got = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert got["status"] == "finished" and got["result"]["attempt"] == 2 and got["error"] is None


def test_cancel_a_running_job(api, worker, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    job_id = api.client.post("/v1/jobs", json={"type": "sleep", "payload": {"seconds": 300}}).json()["id"]
    wait_until(lambda: api.client.get(f"/v1/jobs/{job_id}").json()["status"] == "started", message="the job to start")
    resp = api.client.delete(f"/v1/jobs/{job_id}")
    assert resp.status_code == 202 and resp.json()["status"] == "canceling"
    got = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert got["status"] == "canceled" and got["ended_at"] and got["result"] is None
    assert_problem(api.client.delete(f"/v1/jobs/{job_id}"), 409)
    # the worker is free again: the next job runs (the canceled one no longer holds it)
    other = api.client.post("/v1/jobs", json=PRIMES).json()["id"]
    assert api.client.get(f"/v1/jobs/{other}", params={"wait": 30}).json()["status"] == "finished"


def test_cancel_a_waiting_job(api, start_worker) -> None:  # type: ignore[no-untyped-def]
    """Canceled before any worker took it: it never runs, even once a worker comes."""
    job_id = api.client.post("/v1/jobs", json=PRIMES).json()["id"]
    resp = api.client.delete(f"/v1/jobs/{job_id}")
    assert resp.status_code == 200 and resp.json() == {"id": job_id, "status": "canceled"}
    start_worker()
    marker = api.client.post("/v1/jobs", json=PRIMES).json()["id"]  # queued after it, run after it would be
    assert api.client.get(f"/v1/jobs/{marker}", params={"wait": 30}).json()["status"] == "finished"
    got = api.client.get(f"/v1/jobs/{job_id}").json()
    assert got["status"] == "canceled" and got["started_at"] is None and got["attempts"] == 0


def test_queue_stats_see_the_worker(api, worker) -> None:  # type: ignore[no-untyped-def]
    items = {q["name"]: q for q in api.client.get("/v1/queues").json()["items"]}
    assert items["default"]["workers"] >= 1 and items["high"]["workers"] >= 1


def test_wait_answers_when_the_job_ends_not_when_the_wait_does(api, worker) -> None:  # type: ignore[no-untyped-def]
    """?wait= is woken by the job's end: 30 submit-and-wait round trips with a 30 s wait each finish in far less
    than one wait (an upper bound that only a long-poll sitting out its wait reaches; latency itself is the
    benchmark's business, `make bench`)."""
    payload = {"type": "echo", "payload": {"message": "hi"}}
    start = time.monotonic()
    for _ in range(30):
        job_id = api.client.post("/v1/jobs", json=payload).json()["id"]
        got = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        assert got["status"] == "finished" and got["result"] == {"message": "hi", "attempt": 1}
    assert time.monotonic() - start < 25
