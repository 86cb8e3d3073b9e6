"""The API's Redis memory guard against a real redis-server with a small maxmemory and noeviction (the chart's
policy): submissions get 503 with Retry-After while Redis still has room, so the jobs already accepted can
still be claimed and their outcomes recorded; nothing is half-written; it lifts by itself once memory is back."""

from __future__ import annotations

import re
import time

import redis

from jobengine.catalog import discover
from jobengine.producer import Producer
from jobengine.redis_conn import EmbeddedRedis
from tests.conftest import wait_for


def rejected(api, reason: str) -> float:  # type: ignore[no-untyped-def]
    text = api.metrics()
    match = re.search(rf'^jobengine_jobs_rejected_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_memory_guard_refuses_before_redis_is_full_and_lifts(start_api, start_worker, tmp_path):  # type: ignore
    server = EmbeddedRedis(directory=str(tmp_path / "redis"), extra_args=["--maxmemory-policy", "noeviction"]).start()
    try:
        client = redis.Redis.from_url(server.url)
        api = start_api(JOBENGINE_REDIS_URL=server.url, JOBENGINE_REDIS_MEMORY_LIMIT_RATIO="0.8",
                        JOBENGINE_REDIS_MEMORY_CHECK_SECONDS="0.05")
        assert api.client.post("/v1/jobs", json={"type": "echo", "payload": {}}).status_code == 202
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(2 * used))  # half full: the guard trips at 80 %
        time.sleep(0.2)
        accepted, refused = [], None
        for _ in range(20000):  # small jobs with small results (counted): the 20 % kept holds their outcomes
            resp = api.client.post("/v1/jobs", json={"type": "counted", "payload": {"seconds": 0}})
            if resp.status_code != 202:
                refused = resp
                break
            accepted.append(resp.json()["id"])
        assert refused is not None, "the guard never refused"
        assert refused.status_code == 503, refused.text
        assert refused.json()["type"] == "urn:jobengine:problem:redis-out-of-memory"
        assert "near its memory limit" in refused.json()["detail"] and int(refused.headers["Retry-After"]) >= 1
        info = client.info("memory")
        assert int(info["used_memory"]) < int(info["maxmemory"]), "the guard let Redis fill up"
        assert rejected(api, "redis_memory") >= 1 and rejected(api, "redis_oom") == 0
        # nothing half-written: every job hash has its queue entry and the reverse
        job_keys = {k.decode().removeprefix("rq:job:") for k in client.keys("rq:job:*")}
        assert job_keys == {j.decode() for j in client.lrange("rq:queue:default", 0, -1)}
        assert len(job_keys) == len(accepted) + 1
        # the room kept is enough for the accepted jobs to run and record their outcomes
        start_worker(JOBENGINE_REDIS_URL=server.url, wait_ready=False)
        wait_for(lambda: client.llen("rq:queue:default") == 0, timeout=30, message="the backlog to drain")
        statuses = {client.hget(f"rq:job:{j}", "status") for j in accepted}
        assert statuses == {b"finished"}
        # memory back (here: a bigger maxmemory): submissions pass again without a restart
        client.config_set("maxmemory", "0")
        wait_for(lambda: api.client.post("/v1/jobs", json={"type": "echo", "payload": {}}).status_code == 202,
                 timeout=5, interval=0.1, message="the guard to lift")
        client.close()
    finally:
        server.stop()


def test_a_full_redis_refuses_the_enqueue_script_before_it_writes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Redis itself (no guard): over maxmemory the enqueue script is refused before its first write, for the
    library producer too; what was written before stays whole."""
    server = EmbeddedRedis(directory=str(tmp_path / "redis"), extra_args=["--maxmemory-policy", "noeviction"]).start()
    try:
        client = redis.Redis.from_url(server.url)
        producer = Producer(client, catalog=discover(["tests.support.jobs"]))
        producer.submit("counted", {"seconds": 0})
        client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + 200_000))
        errors = 0
        for _ in range(2000):
            try:
                producer.submit("counted", {"seconds": 0, "counter_url": "x" * 1000})
            except redis.exceptions.OutOfMemoryError:
                errors += 1
                if errors > 3:
                    break
        assert errors > 3
        job_keys = {k.decode().removeprefix("rq:job:") for k in client.keys("rq:job:*")}
        assert job_keys == {j.decode() for j in client.lrange("rq:queue:default", 0, -1)}
        client.close()
    finally:
        server.stop()
