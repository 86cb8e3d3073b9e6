"""Bulk operations (POST /v1/operations) against the real API and worker processes: counts, filters, and an
operation resumed by another API process after the first was SIGKILLed mid-way."""

from __future__ import annotations

import signal

import redis

from tests.support.gated import open_gate
from tests.support.wait import wait_until

from .test_api_submit import PRIMES

FAILING = {"type": "poison", "payload": {"how": "exit"}, "retry": {"max_retries": 0}}
SLOW_STEPS = {"JOBENGINE_BULK_CHUNK_SIZE": "50", "JOBENGINE_BULK_PAUSE_SECONDS": "0.05",
              "JOBENGINE_BULK_LEASE_SECONDS": "2"}


def submit_many(api, body: dict, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    ids: list[str] = []
    while len(ids) < n:
        resp = api.client.post("/v1/jobs:batch", json={"jobs": [body] * min(1000, n - len(ids))})
        assert resp.status_code == 202, resp.text
        ids.extend(item["id"] for item in resp.json()["results"])
    return ids


def operation(api, op_id: str) -> dict:  # type: ignore[no-untyped-def]
    resp = api.client.get(f"/v1/operations/{op_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def finished(api, op_id: str, timeout: float = 120) -> dict:  # type: ignore[no-untyped-def]
    return wait_until(lambda: (op := operation(api, op_id))["state"] == "done" and op, timeout=timeout,
                      interval=0.1, message="the operation's end")


def start(api, action: str, **flt: object) -> str:  # type: ignore[no-untyped-def]
    resp = api.client.post("/v1/operations", json={"action": action, "filter": flt})
    assert resp.status_code == 202, resp.text
    assert resp.headers["Location"] == f"/v1/operations/{resp.json()['id']}"
    return resp.json()["id"]  # type: ignore[no-any-return]


def test_bulk_retry_of_thousands_resumes_after_the_api_is_killed(
        start_api, start_worker, r: redis.Redis, redis_url: str) -> None:
    first = start_api(**SLOW_STEPS)
    worker = start_worker(JOBENGINE_QUEUES="default", JOBENGINE_BATCH_SIZE="100")
    n = 3000
    failing = submit_many(first, FAILING, n)
    other = [first.client.post("/v1/jobs", json={"type": "gated", "payload": {"redis_url": redis_url}}).json()["id"]
             for _ in range(3)]
    for job_id in other:
        open_gate(r, job_id, "fail:not this one")
    wait_until(lambda: r.zcard("rq:failed:default") == n + len(other), timeout=120, interval=0.2,
               message="the failed jobs")
    worker.stop()  # the retried jobs stay queued, to be counted
    op_id = start(first, "retry", type="poison")
    wait_until(lambda: operation(first, op_id)["counts"]["matched"] >= 500, interval=0.01, message="a part done")
    first.proc.signal(signal.SIGKILL)
    first.proc.wait(10)
    killed_at = int(r.hget(f"jobengine:op:{op_id}", "matched"))
    assert 0 < killed_at < n, "killed mid-way"
    second = start_api(**SLOW_STEPS)
    op = finished(second, op_id)
    assert op["counts"] == {"examined": n + len(other), "matched": n, "skipped": len(other)}
    assert op["progress"] == 1.0 and op["action"] == "retry" and op["filter"] == {"type": "poison"}
    assert r.llen("rq:queue:default") == n and r.zcard("rq:failed:default") == len(other)
    assert set(r.lrange("rq:queue:default", 0, -1)) == {i.encode() for i in failing}  # each once
    job = second.client.get(f"/v1/jobs/{failing[0]}").json()
    assert job["status"] == "queued" and job["attempts"] == 1  # (its last error kept, as a single retry keeps it)
    assert {second.client.get(f"/v1/jobs/{i}").json()["status"] for i in other} == {"failed"}
    assert op_id in {o["id"] for o in second.client.get("/v1/operations").json()["items"]}


def test_bulk_cancel_of_waiting_jobs(api, start_worker, r: redis.Redis, redis_url: str) -> None:
    counted = {"type": "counted", "payload": {"counter_url": redis_url}, "queue": "custom"}
    queued = submit_many(api, counted, 1500)  # more than a claim drops a call (_claim.lua, MAX_DROPPED)
    scheduled = submit_many(api, {**counted, "delay_seconds": 600}, 10)
    kept = submit_many(api, {**PRIMES, "queue": "custom"}, 5)
    op = finished(api, start(api, "cancel", queue="custom", type="counted"))
    assert op["counts"] == {"examined": 1515, "matched": 1510, "skipped": 5}
    statuses = {api.client.get(f"/v1/jobs/{i}").json()["status"] for i in queued + scheduled}
    assert statuses == {"canceled"}
    assert r.zcard("rq:canceled:custom") == 1510 and r.zcard("rq:scheduled:custom") == 0
    start_worker(JOBENGINE_QUEUES="custom")
    for job_id in kept:
        assert api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()["status"] == "finished"
    wait_until(lambda: r.llen("rq:queue:custom") == 0, message="the canceled ids dropped by the claim")
    assert not any(r.exists(f"test:runs:{i}") for i in queued)  # none ran
    assert {api.client.get(f"/v1/jobs/{i}").json()["status"] for i in queued} == {"canceled"}


def test_bulk_delete_of_ended_jobs_by_status_and_filters(api, start_worker, r: redis.Redis) -> None:
    start_worker(JOBENGINE_QUEUES="default")
    done = submit_many(api, PRIMES, 60)
    failed = submit_many(api, FAILING, 7)
    for job_id in done + failed:
        assert api.client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()["status"] in ("finished", "failed")
    nobody = finished(api, start(api, "delete", tenant="someone-else"))
    assert nobody["counts"]["matched"] == 0
    later = finished(api, start(api, "delete", created_before="2000-01-01T00:00:00Z"))
    assert later["counts"]["matched"] == 0
    op = finished(api, start(api, "delete", status=["finished"], queue="default"))
    assert op["counts"]["matched"] == 60
    assert r.zcard("rq:finished:default") == 0 and r.zcard("rq:failed:default") == 7
    assert not any(r.exists(f"rq:job:{i}", f"rq:results:{i}") for i in done)
    assert api.client.get(f"/v1/jobs/{done[0]}").status_code == 404
    assert api.client.get(f"/v1/jobs/{failed[0]}").json()["status"] == "failed"
    op = finished(api, start(api, "delete", type="poison"))
    assert op["counts"]["matched"] == 7 and r.zcard("rq:failed:default") == 0


def test_operations_refuse_bad_filters_and_can_be_canceled(api, r: redis.Redis) -> None:
    for body, field in (({"action": "retry", "filter": {"status": ["failed"]}}, "filter.status"),
                        ({"action": "delete", "filter": {"queue": "nosuch"}}, "queue"),
                        ({"action": "purge"}, "action"),
                        ({"action": "cancel", "filter": {"created_after": "2030-01-01T00:00:00Z",
                                                         "created_before": "2020-01-01T00:00:00Z"}},
                         "filter.created_before")):
        resp = api.client.post("/v1/operations", json=body)
        assert resp.status_code == 422, resp.text
        assert field in {e["field"] for e in resp.json()["errors"]} or any(
            e["field"].endswith(field) for e in resp.json()["errors"]), resp.json()
    assert api.client.get("/v1/operations/" + "0" * 32).status_code == 404
    r.sadd("jobengine:ops:active", "x")  # an id without its hash: dropped by the runner, nothing else
    op_id = start(api, "cancel", queue="low")
    view = api.client.post(f"/v1/operations/{op_id}:cancel").json()
    assert view["state"] in ("canceled", "done")
    wait_until(lambda: not r.sismember("jobengine:ops:active", "x"), message="the stale id dropped")


def test_an_api_that_stops_gives_its_operations_to_another_at_once(start_api, r: redis.Redis) -> None:
    # 100 steps of 20, 50 ms apart: still running when the first API stops; a lease far longer than the wait
    slow = {**SLOW_STEPS, "JOBENGINE_BULK_CHUNK_SIZE": "20", "JOBENGINE_BULK_LEASE_SECONDS": "120"}
    first = start_api(**slow)
    submit_many(first, {**PRIMES, "queue": "custom"}, 2000)
    op_id = start(first, "cancel", queue="custom")
    wait_until(lambda: operation(first, op_id)["counts"]["matched"] > 0, interval=0.01, message="a part done")
    second = start_api(**slow)
    first.proc.stop()  # SIGTERM: it gives its lease up as it stops
    assert operation(second, op_id)["counts"]["matched"] < 2000, "stopped mid-way"
    op = finished(second, op_id, timeout=60)  # (not released, it would wait 120 s)
    assert op["counts"]["matched"] == 2000 and r.zcard("rq:canceled:custom") == 2000


def test_a_claim_drops_a_bounded_run_of_canceled_ids_and_wakes_the_next(r: redis.Redis) -> None:
    """The ids a bulk cancel leaves in a queue list are dropped by the claim script, at most MAX_DROPPED (1,000)
    a call: a long run of them never holds Redis in one call, and the call wakes a worker to go on."""
    from jobengine import scripts

    claim = scripts.Scripts.register(r).claim
    with r.pipeline(transaction=False) as pipe:
        for i in range(2500):
            pipe.hset(f"rq:job:c{i}", mapping={"status": "canceled", "jobengine_cancel": "1"})
        pipe.rpush("rq:queue:custom", *[f"c{i}" for i in range(2500)])
        pipe.hset("rq:job:live", mapping={"status": "queued", "jobengine_claim": "", "jobengine_attempts": 0})
        pipe.rpush("rq:queue:custom", "live")
        pipe.execute()

    def once(n: int) -> list[scripts.ClaimRow]:
        return scripts.parse_claim(claim(args=scripts.claim_args(expiry=2_000_000_000, stamp="now", worker="w",
                                                                 execution=f"e{n}", limit=16, queues=["custom"])))

    assert once(1) == [] and 2501 - r.llen("rq:queue:custom") == 1008  # 63 pops of 16, then it stopped
    assert r.lpop("jobengine:notify:custom") == b"1"  # and woke a worker to go on
    assert once(2) == [] and 2501 - r.llen("rq:queue:custom") == 2016
    assert [row.id for row in once(3)] == [b"live"] and r.llen("rq:queue:custom") == 0  # 2,500 in three calls


def test_an_operation_redis_refuses_ends_failed_and_the_others_go_on(api, r: redis.Redis) -> None:
    r.set("rq:failed:low", "not a sorted set")  # a step on it gets an error reply (WRONGTYPE)
    broken = start(api, "retry", queue="low")
    op = wait_until(lambda: (o := operation(api, broken))["state"] == "failed" and o, message="the failure")
    assert "WRONGTYPE" in op["error"] and not r.sismember("jobengine:ops:active", broken)
    assert finished(api, start(api, "retry", queue="high"))["counts"]["matched"] == 0
