"""Probes, metrics, queue statistics and behaviour while Redis is down."""

from __future__ import annotations

import time

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from jobengine.redis_conn import EmbeddedRedis

from .test_api_submit import PRIMES, assert_problem


def samples(api) -> dict[tuple[str, tuple], float]:  # type: ignore[no-untyped-def]
    resp = httpx.get(api.metrics_url, timeout=30)  # the API's metrics port (JOBENGINE_API_METRICS_PORT)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def test_probes(api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}
    assert_problem(api.client.get("/no/such/route"), 404)


def test_queue_stats(api, r: redis.Redis) -> None:
    for body in (PRIMES, PRIMES, {**PRIMES, "delay_seconds": 60}, {**PRIMES, "queue": "custom"}):
        assert api.client.post("/v1/jobs", json=body).status_code == 202
    r.zadd("rq:wip:default", {"x:1": time.time() + 60})
    r.zadd("rq:failed:default", {"f": 1})
    r.sadd("rq:workers:default", "rq:worker:alive", "rq:worker:dead")
    r.hset("rq:worker:alive", "state", "busy")
    items = {q["name"]: q for q in api.client.get("/v1/queues").json()["items"]}
    assert {"high", "default", "low", "custom"} <= set(items)
    assert items["default"] == {"name": "default", "depth": 2, "in_flight": 1, "scheduled": 1, "failed": 1,
                                "finished": 0, "canceled": 0, "workers": 1}
    assert items["custom"]["depth"] == 1 and items["high"]["depth"] == 0


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
    deadline = time.monotonic() + 10
    while (resp := api.client.post("/v1/jobs", json=PRIMES)).status_code != 202:
        assert resp.status_code == 503 and time.monotonic() < deadline
        time.sleep(0.1)
    assert api.client.get("/readyz").status_code == 200
    assert samples(api)[("jobengine_redis_up", ())] == 1
    assert api.proc.alive()


def test_a_redis_restart_between_requests_costs_no_failed_request(api, redis_server: EmbeddedRedis) -> None:
    job_id = api.client.post("/v1/jobs", json=PRIMES).json()["id"]
    assert api.client.get(f"/v1/jobs/{job_id}").status_code == 200
    redis_server.stop()
    redis_server.start()  # same port, data kept (appendonly), script cache empty
    time.sleep(0.2)
    # submits go out on connections that notice the restart, and reload the scripts Redis forgot
    resp = api.client.post("/v1/jobs", json=PRIMES)
    assert resp.status_code == 202, resp.text
    resp = api.client.post("/v1/jobs:batch", json={"jobs": [PRIMES, PRIMES]})
    assert resp.status_code == 202, resp.text
    # reads use redis-py's pool, which may fail its first command after a restart (then 503, retried)
    statuses = [api.client.get(f"/v1/jobs/{job_id}").status_code for _ in range(3)]
    assert statuses[-1] == 200 and set(statuses) <= {200, 503}
