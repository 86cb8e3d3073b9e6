"""Probes, metrics, queue statistics and behaviour while Redis is down."""

from __future__ import annotations

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from jobengine.redis_conn import EmbeddedRedis
from tests.support.gated import open_gate
from tests.support.wait import wait_until

from .test_api_submit import PRIMES, assert_problem


def gated(redis_url: str) -> dict:
    return {"type": "gated", "payload": {"redis_url": redis_url}}


def samples(api) -> dict[tuple[str, tuple], float]:  # type: ignore[no-untyped-def]
    resp = httpx.get(api.metrics_url, timeout=30)  # the API's metrics port (JOBENGINE_API_METRICS_PORT)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def test_probes(api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}
    assert_problem(api.client.get("/no/such/route"), 404)


def test_queue_stats(api, start_worker, r: redis.Redis, redis_url: str) -> None:
    """Every figure comes from what the real worker and the API's scripts wrote."""
    worker = start_worker(JOBENGINE_QUEUES="default")  # "custom" has no worker: its jobs wait
    failed = api.client.post("/v1/jobs", json=gated(redis_url)).json()["id"]
    open_gate(r, failed, "fail:boom")
    finished = api.client.post("/v1/jobs", json=gated(redis_url)).json()["id"]
    open_gate(r, finished)
    for job_id in (failed, finished):  # ended and recorded before the next job holds the worker
        assert api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()["status"] in ("failed", "finished")
    running = api.client.post("/v1/jobs", json=gated(redis_url)).json()["id"]  # its gate opens at the end
    canceled = api.client.post("/v1/jobs", json={**PRIMES, "delay_seconds": 60}).json()["id"]
    assert api.client.delete(f"/v1/jobs/{canceled}").status_code == 200
    for body in ({**PRIMES, "delay_seconds": 60}, {**PRIMES, "queue": "custom"}, {**PRIMES, "queue": "custom"}):
        assert api.client.post("/v1/jobs", json=body).status_code == 202
    wait_until(lambda: api.client.get(f"/v1/jobs/{running}").json()["status"] == "started", message="the job")
    r.sadd("rq:workers:default", "rq:worker:dead")  # a worker that died without unregistering: not counted
    items = {q["name"]: q for q in api.client.get("/v1/queues").json()["items"]}
    assert {"high", "default", "low", "custom"} <= set(items)
    assert items["default"] == {"name": "default", "depth": 0, "in_flight": 1, "scheduled": 1, "failed": 1,
                                "finished": 1, "canceled": 1, "workers": 1, "deferred": 0, "paused": False, "refuse_submits": False,
                                "paused_since": None}, worker.log()[-2000:]
    assert items["custom"]["depth"] == 2 and items["custom"]["workers"] == 0 and items["high"]["depth"] == 0
    open_gate(r, running)


def test_metrics_count_jobs_requests_and_queues(api, r: redis.Redis) -> None:
    api.client.post("/v1/jobs", json=PRIMES)
    api.client.post("/v1/jobs", json={"type": "teleport"})
    job_id = api.client.post("/v1/jobs", json=PRIMES).json()["id"]
    api.client.get(f"/v1/jobs/{job_id}")
    s = samples(api)
    assert s[("jobengine_jobs_submitted_total", (("job_type", "primes"), ("queue", "default")))] == 2
    assert s[("jobengine_jobs_rejected_total", (("reason", "unknown_type"),))] == 1
    assert s[("jobengine_http_requests_total", (("method", "POST"), ("route", "/v1/jobs"), ("status", "202")))] == 2
    assert s[("jobengine_http_requests_total", (("method", "GET"), ("route", "/v1/jobs/{job_id}"),
                                                ("status", "200")))] == 1
    assert not any(job_id in str(key) for key in s)  # never a job id in a label
    assert s[("jobengine_queue_depth", (("queue", "default"),))] == 2
    assert s[("jobengine_redis_up", ())] == 1
    assert ("jobengine_http_request_duration_seconds_count", (("method", "POST"), ("route", "/v1/jobs"))) in s


def test_redis_outage_gives_503_then_recovers(api, redis_server: EmbeddedRedis) -> None:
    assert api.client.post("/v1/jobs", json=PRIMES).status_code == 202
    redis_server.stop()
    try:
        for call in (lambda: api.client.post("/v1/jobs", json=PRIMES),
                     lambda: api.client.post("/v1/jobs:batch", json={"jobs": [PRIMES]}),
                     lambda: api.client.get("/v1/jobs"),
                     lambda: api.client.get("/v1/jobs/0123456789abcdef", params={"wait": 1}),
                     lambda: api.client.get("/v1/queues"),
                     lambda: api.client.get("/readyz")):
            resp = call()
            assert_problem(resp, 503)
            assert resp.headers["retry-after"] == "1"
        assert api.client.get("/healthz").status_code == 200
        assert samples(api)[("jobengine_redis_up", ())] == 0  # the scrape itself never fails
    finally:
        redis_server.start()

    def submitted() -> bool:
        resp = api.client.post("/v1/jobs", json=PRIMES)
        assert resp.status_code in (202, 503), resp.text  # 503 until it reconnects, nothing else
        return resp.status_code == 202

    wait_until(submitted, interval=0.1, message="submits to be accepted again")
    assert api.client.get("/readyz").status_code == 200
    assert samples(api)[("jobengine_redis_up", ())] == 1
    assert api.proc.alive()


def test_a_redis_restart_between_requests_costs_no_failed_request(api, redis_server: EmbeddedRedis) -> None:
    job_id = api.client.post("/v1/jobs", json=PRIMES).json()["id"]
    assert api.client.get(f"/v1/jobs/{job_id}").status_code == 200
    redis_server.stop()
    redis_server.start()  # same port, data kept (appendonly), script cache empty; returns once Redis answers
    # submits go out on connections that notice the restart, and reload the scripts Redis forgot
    resp = api.client.post("/v1/jobs", json=PRIMES)
    assert resp.status_code == 202, resp.text
    resp = api.client.post("/v1/jobs:batch", json={"jobs": [PRIMES, PRIMES]})
    assert resp.status_code == 202, resp.text
    # reads use redis-py's pool, which may fail its first command after a restart (then 503, retried)
    statuses = [api.client.get(f"/v1/jobs/{job_id}").status_code for _ in range(3)]
    assert statuses[-1] == 200 and set(statuses) <= {200, 503}
