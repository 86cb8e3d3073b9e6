"""Backpressure against a real API process and redis-server: a queue's backlog limit (429), Redis out of
memory (503, nothing half-written) and the per-key token bucket (429, recovers after Retry-After)."""

from __future__ import annotations

import re
import time

import httpx
import pytest
import redis

from jobengine.redis_conn import EmbeddedRedis
from tests.conftest import TEST_KEY, key_entry, write_key_file
from tests.support.wait import wait_until

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


def job(message: str = "x", queue: str | None = None) -> dict:
    body: dict = {"type": "echo", "payload": {"message": message}}
    if queue:
        body["queue"] = queue
    return body


def problem(resp: httpx.Response, status: int, slug: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert PROBLEM_KEYS <= set(body) and body["status"] == status
    assert body["type"] == f"urn:jobengine:problem:{slug}"
    assert int(resp.headers["Retry-After"]) >= 1
    return body


def rejected(api, reason: str) -> float:  # type: ignore[no-untyped-def]
    text = api.metrics()
    match = re.search(rf'^jobengine_jobs_rejected_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_full_queue_refuses_with_429_and_writes_nothing(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_MAX_QUEUE_BACKLOG="3")  # no worker: the queue only grows
    accepted = []
    for i in range(3):
        resp = api.client.post("/v1/jobs", json=job(str(i)), headers={"Idempotency-Key": f"k{i}"})
        assert resp.status_code == 202, resp.text
        accepted.append(resp.json()["id"])
    body = problem(api.client.post("/v1/jobs", json=job("over"), headers={"Idempotency-Key": "k-over"}),
                   429, "queue-full")
    assert body["queue"] == "default"
    assert r.llen("rq:queue:default") == 3 and len(r.keys("rq:job:*")) == 3
    assert r.get("jobengine:idempotency:default:k-over") is None and not r.keys("*k-over*")  # the key is not taken
    # a repeat of an accepted request is answered before the limit: a retrying client gets its job
    replay = api.client.post("/v1/jobs", json=job("0"), headers={"Idempotency-Key": "k0"})
    assert replay.status_code == 200 and replay.json()["id"] == accepted[0]
    # other queues are not affected
    assert api.client.post("/v1/jobs", json=job(queue="low")).status_code == 202
    # the batch path: per-item errors, nothing written for them
    resp = api.client.post("/v1/jobs:batch", json={"jobs": [job("b1"), job("b2", queue="high")]})
    assert resp.status_code == 207, resp.text
    first, second = resp.json()["results"]
    assert first["error"]["status"] == 429 and first["error"]["type"].endswith(":queue-full")
    assert first["error"]["retry_after"] >= 1
    assert "id" in second
    assert r.llen("rq:queue:default") == 3 and len(r.keys("rq:job:*")) == 5
    assert rejected(api, "queue_full") == 2
    # room again once the queue drains below the limit
    r.lpop("rq:queue:default")
    assert api.client.post("/v1/jobs", json=job("again")).status_code == 202


@pytest.fixture
def small_redis(tmp_path):  # type: ignore[no-untyped-def]
    server = EmbeddedRedis(directory=str(tmp_path / "redis-small"),
                           extra_args=["--maxmemory-policy", "noeviction"]).start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_out_of_memory_gives_503_and_no_partial_jobs(start_api, small_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(small_redis.url)
    # the API's memory guard off: this is Redis' own refusal (tests/integration/test_memory_guard.py: the guard)
    api = start_api(JOBENGINE_REDIS_URL=small_redis.url, JOBENGINE_REDIS_MEMORY_LIMIT_RATIO="0")
    api.client.post("/v1/jobs", json=job("warm-up"))  # the API's own keys are written; scripts loaded
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used + 512 * 1024))  # room for a few hundred jobs
    big = "y" * 2000
    accepted, refused = [], None
    for i in range(5000):
        resp = api.client.post("/v1/jobs", json=job(f"{i}-{big}"), headers={"Idempotency-Key": f"oom-{i}"})
        if resp.status_code == 202:
            accepted.append(resp.json()["id"])
            continue
        refused = resp
        break
    assert refused is not None, "Redis never ran out of memory"
    body = problem(refused, 503, "redis-out-of-memory")
    assert "out of memory" in body["detail"]
    assert len(accepted) > 10
    # every job key has its queue entry and the reverse: the refused script wrote nothing
    job_keys = {k.decode().removeprefix("rq:job:") for k in client.keys("rq:job:*")}
    queued = {j.decode() for j in client.lrange("rq:queue:default", 0, -1)}
    assert job_keys == queued and len(queued) == len(accepted) + 1
    assert client.xlen("jobengine:index:default") == len(queued)
    assert client.get(f"jobengine:idempotency:default:oom-{len(accepted)}") is None
    assert not [k for k in client.keys("jobengine:idempotency:*") if k.endswith(f"oom-{len(accepted)}".encode())]
    assert rejected(api, "redis_oom") >= 1
    # memory freed: submissions go through again, no restart
    client.config_set("maxmemory", "0")
    assert api.client.post("/v1/jobs", json=job("after")).status_code == 202
    client.close()


OTHER_KEY = "test-other.other-secret-0123456789abcdef0123456789abcdef"


def test_rate_limit_per_key_refuses_then_recovers(start_api, r: redis.Redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys_file = write_key_file(tmp_path / "keys.json", [key_entry(TEST_KEY), key_entry(OTHER_KEY)])
    api = start_api(JOBENGINE_API_KEYS_FILE=str(keys_file), JOBENGINE_RATE_LIMIT_PER_SECOND="1",
                    JOBENGINE_RATE_LIMIT_BURST="3")
    for i in range(3):  # the burst
        assert api.client.post("/v1/jobs", json=job(str(i))).status_code == 202
    resp = api.client.post("/v1/jobs", json=job("over"), headers={"Idempotency-Key": "over"})
    problem(resp, 429, "rate-limited")
    retry_after = int(resp.headers["Retry-After"])
    assert retry_after == 1  # one token per second: the next one is under a second away
    assert len(r.keys("rq:job:*")) == 3
    # another key has its own bucket
    with httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {OTHER_KEY}"}) as other:
        assert other.post("/v1/jobs", json=job("other")).status_code == 202
    # batch items draw on the same bucket: refused ones get a per-item 429
    resp = api.client.post("/v1/jobs:batch", json={"jobs": [job("b1"), job("b2")]})
    assert resp.status_code == 207 and all(item["error"]["status"] == 429 for item in resp.json()["results"])
    assert rejected(api, "rate_limited") == 3
    # the retry the client was told to make succeeds once a token is back (polled well under a token's second)
    wait_until(lambda: api.client.post("/v1/jobs", json=job("over"),
                                       headers={"Idempotency-Key": "over"}).status_code == 202,
               interval=0.05, message="a token to come back")
    assert api.client.post("/v1/jobs", json=job("next")).status_code == 429  # one token came back, not more


def test_worker_waits_out_redis_out_of_memory(start_worker, small_redis: EmbeddedRedis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A worker whose claim or outcome write is refused for memory keeps its outcomes and retries, like
    during an outage (it used to die on the OOM error reply: a ResponseError, not a connection error)."""
    from jobengine.catalog import discover
    from jobengine.producer import Producer

    client = redis.Redis.from_url(small_redis.url)
    producer = Producer(client, catalog=discover(["tests.support.jobs"]))
    worker = start_worker(JOBENGINE_REDIS_URL=small_redis.url, wait_ready=False)  # ready: it runs the first job
    first = producer.submit("counted", {"seconds": 0.05})
    wait_until(lambda: client.hget(f"rq:job:{first}", "status") == b"finished", message=f"a first job\n{worker.log()}")
    gate, done = tmp_path / "gate", tmp_path / "done"
    ids = [producer.submit("file_gated", {"gate_path": str(gate), "done_path": str(done)}) for _ in range(3)]
    wait_until(lambda: client.hget(f"rq:job:{ids[0]}", "status") == b"started", message="the first one to run")
    client.config_set("maxmemory", "1")  # every write is refused from here
    gate.touch()
    wait_until(done.exists, message="the job to end")
    refused = oom_errors(client)
    # the worker's writes after the job ended (outcome, claims, heartbeats) get OOM error replies; only the
    # worker writes here. (A script whose first write frees memory, a ZREM, is let through by Redis.)
    wait_until(lambda: oom_errors(client) >= refused + 2, message="the worker's writes to be refused")
    assert worker.alive(), worker.log()
    client.config_set("maxmemory", "0")
    wait_until(lambda: [client.hget(f"rq:job:{j}", "status") for j in ids] == [b"finished"] * 3,
               message=f"every job to finish\n{worker.log()[-3000:]}")
    assert worker.alive()
    assert sorted(done.read_text().splitlines()) == sorted(ids)  # each ran once
    client.close()


def oom_errors(client: redis.Redis) -> int:
    """Commands Redis refused for memory so far."""
    return int(client.info("errorstats").get("errorstat_OOM", {}).get("count", 0))
