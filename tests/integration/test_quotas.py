"""Per-tenant backlog quotas against a real API, workers and redis-server: 429 tenant-quota with Retry-After,
recovery as jobs end, and an exact counter through every way a job ends (finished, failed, timed out,
canceled queued, scheduled or running, abandoned by a SIGKILLed worker, retried by a client)."""

from __future__ import annotations

import os
import re
import signal

import httpx
import redis

from tests.conftest import TEST_KEY, key_entry, wait_for, write_key_file

GLOBEX = "globex-rw.globex-secret-0123456789abcdef0123456789abc"  # tenant globex


def counted(seconds: float = 0.0, **extra: object) -> dict:
    return {"type": "counted", "payload": {"seconds": seconds}, **extra}


def held(r: redis.Redis, tenant: str = "default") -> int:
    return int(r.get(f"jobengine:backlog:{tenant}") or 0)


def status(r: redis.Redis, job_id: str) -> str:
    return (r.hget(f"rq:job:{job_id}", "status") or b"").decode()


def rejected(api) -> float:  # type: ignore[no-untyped-def]
    text = api.metrics()
    match = re.search(r'^jobengine_jobs_rejected_total\{reason="tenant_quota"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_tenant_quota_refuses_with_429_then_recovers(start_api, start_worker, r, tmp_path):  # type: ignore
    keys_file = write_key_file(tmp_path / "keys.json", [key_entry(TEST_KEY), key_entry(GLOBEX, tenant="globex")])
    api = start_api(JOBENGINE_API_KEYS_FILE=str(keys_file), JOBENGINE_TENANT_MAX_BACKLOG="3",
                    JOBENGINE_TENANT_BACKLOG_QUOTAS='{"globex": 1}')  # no worker yet: nothing ends
    ids = []
    for i in range(3):
        resp = api.client.post("/v1/jobs", json=counted(), headers={"Idempotency-Key": f"q{i}"})
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    assert held(r) == 3
    resp = api.client.post("/v1/jobs", json=counted(), headers={"Idempotency-Key": "q-over"})
    assert resp.status_code == 429 and resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["type"] == "urn:jobengine:problem:tenant-quota" and int(resp.headers["Retry-After"]) >= 1
    assert len(r.keys("rq:job:*")) == 3 and held(r) == 3 and not r.keys("*q-over*")  # nothing written
    # a repeat of an accepted request still gets its job
    replay = api.client.post("/v1/jobs", json=counted(), headers={"Idempotency-Key": "q0"})
    assert replay.status_code == 200 and replay.json()["id"] == ids[0]
    # batch items are refused one by one
    resp = api.client.post("/v1/jobs:batch", json={"jobs": [counted(), counted()]})
    assert resp.status_code == 207
    assert all(item["error"]["type"].endswith(":tenant-quota") for item in resp.json()["results"])
    # another tenant has its own quota (here an override of 1)
    with httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {GLOBEX}"}) as globex:
        assert globex.post("/v1/jobs", json=counted()).status_code == 202
        assert globex.post("/v1/jobs", json=counted()).status_code == 429
    assert held(r, "globex") == 1
    assert rejected(api) == 4
    # canceling a queued job makes room at once
    assert api.client.delete(f"/v1/jobs/{ids[1]}").status_code == 200
    assert held(r) == 2
    ids.append(api.client.post("/v1/jobs", json=counted()).json()["id"])
    assert api.client.post("/v1/jobs", json=counted()).status_code == 429
    # jobs end: the quota frees up
    start_worker()
    wait_for(lambda: held(r) == 0 and held(r, "globex") == 0, timeout=20, message="every job to end")
    assert [status(r, j) for j in ids] == ["finished", "canceled", "finished", "finished"]
    assert api.client.post("/v1/jobs", json=counted()).status_code == 202


def test_the_counter_is_exact_through_every_ending(start_api, start_worker, r):  # type: ignore[no-untyped-def]
    api = start_api(JOBENGINE_TENANT_MAX_BACKLOG="100")
    settings = {"JOBENGINE_MAX_RECOVERIES": "0"}  # an abandoned job fails at its first recovery

    def submit(body: dict) -> str:
        resp = api.client.post("/v1/jobs", json=body)
        assert resp.status_code == 202, resp.text
        return resp.json()["id"]

    first = start_worker(**settings)
    abandoned = submit(counted(30))
    wait_for(lambda: status(r, abandoned) == "started", message="the job to start")
    os.killpg(first.pid, signal.SIGKILL)  # the worker dies mid-run; recovery fails the job (no recoveries left)
    assert held(r) == 1
    start_worker(**settings)
    finished = submit(counted(0.05))
    timed_out = submit(counted(3, timeout=1))
    running = submit(counted(30))
    scheduled = submit(counted(0, delay_seconds=60))
    wait_for(lambda: status(r, running) == "started", timeout=20, message="the long job to start")
    assert api.client.delete(f"/v1/jobs/{running}").status_code == 202  # canceling: its worker ends it
    assert api.client.delete(f"/v1/jobs/{scheduled}").status_code == 200
    ends = {abandoned: "failed", finished: "finished", timed_out: "failed", running: "canceled",
            scheduled: "canceled"}
    wait_for(lambda: {j: status(r, j) for j in ends} == ends, timeout=30, message="every job to end")
    assert held(r) == 0
    # a client's retry of a failed job counts it again until it ends again
    assert api.client.post(f"/v1/jobs/{timed_out}/retry").status_code == 202
    assert held(r) == 1
    wait_for(lambda: status(r, timed_out) == "failed", timeout=15, message="the retried job to fail again")
    assert held(r) == 0
