"""GET /v1/workers and queue pause/resume, against the real API and worker processes."""

from __future__ import annotations

import signal
import threading

import httpx
import redis

from tests.support.gated import open_gate
from tests.support.wait import wait_until

from .test_api_ops import samples
from .test_api_submit import PRIMES


def gated(redis_url: str) -> dict:
    return {"type": "gated", "payload": {"redis_url": redis_url}}


def workers(api) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    resp = api.client.get("/v1/workers")
    assert resp.status_code == 200, resp.text
    return {w["name"]: w for w in resp.json()["items"]}


def beats(api, name: str, n: int = 2) -> None:  # type: ignore[no-untyped-def]
    """Wait until the worker has sent `n` more heartbeats (what it read with them is then current)."""
    seen = [workers(api)[name]["last_heartbeat"]]
    wait_until(lambda: (seen.append(workers(api)[name]["last_heartbeat"]) or len(set(seen)) > n),
               timeout=20, interval=0.1, message=f"{n} heartbeats of {name}")


def test_workers_show_pool_current_job_counts_and_memory_and_the_dead_disappear(
        api, start_worker, r: redis.Redis, redis_url: str) -> None:
    busy = start_worker(JOBENGINE_QUEUES="default", JOBENGINE_WORKER_POOL="main")
    other = start_worker(JOBENGINE_QUEUES="custom,low")
    failed = api.client.post("/v1/jobs", json=gated(redis_url)).json()["id"]
    open_gate(r, failed, "fail:boom")
    assert api.client.get(f"/v1/jobs/{failed}", params={"wait": 30}).json()["status"] == "failed"
    for _ in range(3):
        assert api.client.post("/v1/jobs", json=PRIMES).status_code == 202
    running = api.client.post("/v1/jobs", json=gated(redis_url)).json()["id"]
    wait_until(lambda: api.client.get(f"/v1/jobs/{running}").json()["status"] == "started", message="the job runs")
    started_at = api.client.get(f"/v1/jobs/{running}").json()["started_at"]

    def shows_running() -> dict | None:
        w = workers(api).get(busy.name)
        return w if w and w["current_job"] and w["current_job"]["id"] == running and w["jobs_finished"] == 3 else None

    w = wait_until(shows_running, timeout=20, message="the busy worker's heartbeat")
    assert w["pool"] == "main" and w["queues"] == ["default"] and w["state"] == "busy"
    assert w["jobs_failed"] == 1 and w["rss_bytes"] > 10_000_000  # supervisor and executor together
    assert w["current_job"]["since"] >= started_at[:19]  # (from the executor's start of the job, to the second)
    assert 0 <= w["heartbeat_age_seconds"] < 5 and w["pid"] == busy.pid
    idle = workers(api)[other.name]
    assert idle["pool"] is None and idle["queues"] == ["custom", "low"] and idle["current_job"] is None
    assert idle["state"] == "idle" and idle["jobs_finished"] == 0
    open_gate(r, running)
    other.signal(signal.SIGKILL)  # no unregistering: its key expires (TTL: abandoned-after 3 s + 5 s)
    wait_until(lambda: other.name not in workers(api), timeout=20, interval=0.2, message="the dead worker gone")
    assert busy.name in workers(api)
    assert f"rq:worker:{other.name}".encode() not in r.smembers("rq:workers")  # removed on the way


def test_workers_need_the_admin_scope(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api(key=None)
    assert api.client.get("/v1/workers").status_code == 401


def test_pause_holds_jobs_without_spinning_and_resume_runs_each_once(
        api, start_worker, r: redis.Redis, redis_url: str) -> None:
    worker = start_worker(JOBENGINE_QUEUES="default")
    resp = api.client.post("/v1/queues/default:pause")
    assert resp.status_code == 200 and resp.json()["paused"] is True and resp.json()["refuse_submits"] is False
    beats(api, worker.name)  # the worker has read the pause
    r.delete("jobengine:notify:default")
    body = {"type": "counted", "payload": {"counter_url": redis_url}}
    ids = [api.client.post("/v1/jobs", json=body).json()["id"] for _ in range(20)]
    beats(api, worker.name)
    # not claimed, and the worker does not wait on the paused queue's wake-ups (each would wake it for nothing)
    assert {api.client.get(f"/v1/jobs/{i}").json()["status"] for i in ids} == {"queued"}
    assert r.llen("jobengine:notify:default") == 1 and r.llen("rq:queue:default") == 20
    items = {q["name"]: q for q in api.client.get("/v1/queues").json()["items"]}
    assert items["default"]["paused"] is True and items["default"]["paused_since"] is not None
    assert items["high"]["paused"] is False
    metric = samples(api)
    assert metric[("jobengine_queue_paused", (("queue", "default"),))] == 1.0
    assert metric[("jobengine_queue_paused", (("queue", "high"),))] == 0.0
    assert api.client.post("/v1/queues/default:resume").json() == {"name": "default", "paused": False,
                                                                    "refuse_submits": False, "paused_since": None}
    for job_id in ids:
        assert api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()["status"] == "finished"
    assert [int(r.get(f"test:runs:{i}") or 0) for i in ids] == [1] * len(ids)
    assert samples(api)[("jobengine_queue_paused", (("queue", "default"),))] == 0.0
    assert api.client.post("/v1/queues/nosuch:pause").status_code == 404


def test_pause_under_load_loses_nothing(api, start_worker, r: redis.Redis, redis_url: str) -> None:
    start_worker(JOBENGINE_QUEUES="default")
    start_worker(JOBENGINE_QUEUES="default")
    body = {"type": "counted", "payload": {"counter_url": redis_url}}
    ids: list[str] = []
    stop = threading.Event()

    def submit() -> None:
        with httpx.Client(base_url=api.base_url, headers=api.client.headers, timeout=30) as client:
            while not stop.is_set() and len(ids) < 600:
                resp = client.post("/v1/jobs:batch", json={"jobs": [body] * 20})
                assert resp.status_code == 202
                ids.extend(item["id"] for item in resp.json()["results"])

    thread = threading.Thread(target=submit)
    thread.start()
    try:
        for _ in range(4):
            wait_until(lambda: r.llen("rq:queue:default") > 0 or len(ids) >= 600, message="jobs waiting")
            assert api.client.post("/v1/queues/default:pause").status_code == 200
            held = r.llen("rq:queue:default")
            wait_until(lambda: r.llen("rq:queue:default") > held or len(ids) >= 600, message="submits while paused")
            assert api.client.post("/v1/queues/default:resume").status_code == 200
    finally:
        stop.set()
        thread.join()
    for job_id in ids:
        assert api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()["status"] == "finished"
    runs = r.mget([f"test:runs:{i}" for i in ids])
    assert [int(n or 0) for n in runs] == [1] * len(ids)  # each ran once


def test_pause_with_refuse_submits_answers_409(api, r: redis.Redis) -> None:
    resp = api.client.post("/v1/queues/default:pause", json={"refuse_submits": True})
    assert resp.status_code == 200 and resp.json()["refuse_submits"] is True
    refused = api.client.post("/v1/jobs", json=PRIMES)
    assert refused.status_code == 409 and refused.json()["type"].endswith("queue-paused")
    assert refused.json()["queue"] == "default"
    batch = api.client.post("/v1/jobs:batch", json={"jobs": [PRIMES, {**PRIMES, "queue": "high"}]}).json()
    assert "error" in batch["results"][0] and batch["results"][0]["error"]["status"] == 409
    assert "id" in batch["results"][1]
    assert api.client.post("/v1/queues/default:pause", json={"refuse_subits": True}).status_code == 422
    assert api.client.post("/v1/queues/default:resume").status_code == 200
    assert api.client.post("/v1/jobs", json=PRIMES).status_code == 202
