"""Reading, waiting for, listing, canceling and retrying jobs through the API (no worker: the tests
play the worker's part by writing what complete.lua would)."""

from __future__ import annotations

import base64
import threading
import time
import zlib

import orjson
import pytest
import redis

from jobengine.jobdata import encode_exc_string, encode_return_value, utcnow_str

from .test_api_submit import PRIMES, assert_problem


def submit(api, body: dict = PRIMES) -> str:  # type: ignore[no-untyped-def]
    resp = api.client.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]  # type: ignore[no-any-return]


def finish(r: redis.Redis, job_id: str, value: object) -> None:
    """What the worker's complete.lua writes for a success, including the done notification."""
    r.lrem("rq:queue:default", 0, job_id)
    r.hset(f"rq:job:{job_id}", mapping={"status": "finished", "started_at": utcnow_str(), "ended_at": utcnow_str(),
                                        "worker_name": "w1", "jobengine_attempts": 1})
    r.xadd(f"rq:results:{job_id}", {"type": 1, "worker_name": "w1", "return_value": encode_return_value(value)})
    r.publish(f"jobengine:done:{job_id}", "finished")


def fail(r: redis.Redis, job_id: str, text: str) -> None:
    r.lrem("rq:queue:default", 0, job_id)
    r.hset(f"rq:job:{job_id}", mapping={"status": "failed", "ended_at": utcnow_str(), "retries_left": 0,
                                        "jobengine_attempts": 3})
    r.xadd(f"rq:results:{job_id}", {"type": 2, "worker_name": "w1", "exc_string": encode_exc_string(text)})
    r.zadd("rq:failed:default", {job_id: time.time() + 3600})


def test_get_reports_result_error_progress_and_timestamps(api, r: redis.Redis) -> None:
    job_id = submit(api)
    r.hset(f"rq:job:{job_id}", mapping={"status": "started", "started_at": utcnow_str(), "worker_name": "w1",
                                        "jobengine_attempts": 1,
                                        "jobengine_progress": orjson.dumps({"fraction": 0.5, "message": "half"})})
    got = api.client.get(f"/v1/jobs/{job_id}").json()
    assert got["status"] == "started" and got["worker"] == "w1" and got["attempts"] == 1
    assert got["progress"] == {"fraction": 0.5, "message": "half"} and got["started_at"]

    finish(r, job_id, {"primes": [11, 13, 17], "count": 3})
    got = api.client.get(f"/v1/jobs/{job_id}").json()
    assert got["status"] == "finished" and got["result"] == {"primes": [11, 13, 17], "count": 3}
    assert got["error"] is None and got["ended_at"] and got["created_at"] and got["enqueued_at"]

    other = submit(api)
    fail(r, other, "Traceback ...\nValueError: boom")
    got = api.client.get(f"/v1/jobs/{other}").json()
    assert got["status"] == "failed" and "ValueError: boom" in got["error"] and got["result"] is None
    assert got["retries_left"] == 0 and got["attempts"] == 3


def test_unknown_and_malformed_ids(api) -> None:
    assert_problem(api.client.get("/v1/jobs/0123456789abcdef"), 404)
    assert_problem(api.client.get("/v1/jobs/0123456789abcdef?wait=1"), 404)
    problem = assert_problem(api.client.get("/v1/jobs/not%20an%20id!"), 422)
    assert problem["errors"][0]["field"] == "job_id"
    assert_problem(api.client.get("/v1/jobs/" + "a" * 65), 422)
    assert_problem(api.client.delete("/v1/jobs/0123456789abcdef"), 404)
    assert_problem(api.client.post("/v1/jobs/0123456789abcdef/retry"), 404)


def test_wait_returns_as_soon_as_the_job_ends(api, r: redis.Redis) -> None:
    job_id = submit(api)
    threading.Timer(0.5, finish, (r, job_id, {"primes": [11, 13, 17], "count": 3})).start()
    start = time.monotonic()
    got = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()
    elapsed = time.monotonic() - start
    assert got["status"] == "finished" and got["result"]["count"] == 3
    assert 0.4 < elapsed < 1.5, elapsed


def test_many_waiters_on_one_job_and_on_many_jobs(api, r: redis.Redis) -> None:
    ids = [submit(api) for _ in range(5)]
    answers: list[dict] = []

    def waiter(job_id: str) -> None:
        answers.append(api.client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json())

    threads = [threading.Thread(target=waiter, args=(job_id,)) for job_id in ids + ids[:2]]
    for t in threads:
        t.start()
    time.sleep(0.5)
    for job_id in ids:
        finish(r, job_id, job_id)
    for t in threads:
        t.join(5)
    assert len(answers) == 7 and all(a["status"] == "finished" and a["result"] == a["id"] for a in answers)


def test_wait_times_out_with_the_current_state_and_is_bounded(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_MAX_WAIT_SECONDS="2")
    job_id = submit(api)
    start = time.monotonic()
    got = api.client.get(f"/v1/jobs/{job_id}", params={"wait": 0.5}).json()
    assert got["status"] == "queued" and 0.4 < time.monotonic() - start < 1.5
    problem = assert_problem(api.client.get(f"/v1/jobs/{job_id}", params={"wait": 3}), 422)
    assert problem["errors"][0]["field"] == "wait"
    assert_problem(api.client.get(f"/v1/jobs/{job_id}", params={"wait": "soon"}), 422)
    # a finished job answers at once, whatever the wait
    finish(r, job_id, 1)
    start = time.monotonic()
    assert api.client.get(f"/v1/jobs/{job_id}", params={"wait": 2}).json()["status"] == "finished"
    assert time.monotonic() - start < 0.5


def test_list_is_newest_first_with_filters_and_cursor_pages(api, r: redis.Redis) -> None:
    ids = [submit(api) for _ in range(7)]
    echo_ids = [submit(api, {"type": "echo", "payload": {}, "queue": "low"}) for _ in range(3)]
    fail(r, ids[0], "boom")

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = api.client.get("/v1/jobs", params=params).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids + echo_ids)) and pages >= 4

    def listed(**params: object) -> list[str]:
        return [i["id"] for i in api.client.get("/v1/jobs", params=params).json()["items"]]

    assert listed(type="echo") == list(reversed(echo_ids))
    assert listed(queue="low", limit=2) == list(reversed(echo_ids))[:2]
    assert listed(status="failed") == [ids[0]]
    assert listed(status="queued", type="primes") == list(reversed(ids[1:]))
    item = api.client.get("/v1/jobs", params={"limit": 1}).json()["items"][0]
    assert {"id", "type", "queue", "status", "created_at", "enqueued_at", "started_at", "ended_at"} <= set(item)

    # an expired job leaves the index lazily
    r.delete(f"rq:job:{ids[3]}")
    assert ids[3] not in listed(limit=100)
    assert ids[3].encode() not in [f[b"id"] for _, f in r.xrange("jobengine:index")]

    for params in ({"cursor": "garbage!"}, {"limit": 0}, {"limit": 10_000}, {"status": "lost"},
                   {"queue": "bad queue"}):
        assert_problem(api.client.get("/v1/jobs", params=params), 422)


def test_cursor_survives_the_removal_of_its_job(api, r: redis.Redis) -> None:
    ids = [submit(api) for _ in range(4)]
    first = api.client.get("/v1/jobs", params={"limit": 2}).json()
    assert [i["id"] for i in first["items"]] == [ids[3], ids[2]]
    (entry,) = [e for e, f in r.xrange("jobengine:index") if f[b"id"] == ids[2].encode()]
    r.xdel("jobengine:index", entry)  # the cursor's own entry gone: the next page still starts after it
    rest = api.client.get("/v1/jobs", params={"limit": 5, "cursor": first["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == [ids[1], ids[0]] and rest["next_cursor"] is None


def test_cancel_queued_scheduled_started_and_ended_jobs(api, r: redis.Redis) -> None:
    queued = submit(api)
    resp = api.client.delete(f"/v1/jobs/{queued}")
    assert resp.status_code == 200 and resp.json() == {"id": queued, "status": "canceled"}
    assert r.llen("rq:queue:default") == 0 and r.zscore("rq:canceled:default", queued) is not None
    got = api.client.get(f"/v1/jobs/{queued}").json()
    assert got["status"] == "canceled" and got["ended_at"]

    scheduled = submit(api, {**PRIMES, "delay_seconds": 600})
    assert api.client.delete(f"/v1/jobs/{scheduled}").json()["status"] == "canceled"
    assert r.zcard("rq:scheduled:default") == 0

    # canceling again: the job has ended already
    problem = assert_problem(api.client.delete(f"/v1/jobs/{queued}"), 409)
    assert problem["job_status"] == "canceled"

    started = submit(api)
    r.lrem("rq:queue:default", 0, started)
    r.hset(f"rq:job:{started}", mapping={"status": "started", "worker_name": "w-test"})
    pubsub = r.pubsub()
    pubsub.subscribe("rq:pubsub:w-test")
    pubsub.get_message(timeout=1)
    resp = api.client.delete(f"/v1/jobs/{started}")
    assert resp.status_code == 202 and resp.json() == {"id": started, "status": "canceling"}
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    assert message and orjson.loads(message["data"]) == {"command": "stop-job", "job_id": started}
    assert r.hget(f"rq:job:{started}", "jobengine_cancel") == b"1"


def test_retry_requeues_failed_and_canceled_jobs_only(api, r: redis.Redis) -> None:
    job_id = submit(api)
    assert_problem(api.client.post(f"/v1/jobs/{job_id}/retry"), 409)
    fail(r, job_id, "boom")
    resp = api.client.post(f"/v1/jobs/{job_id}/retry")
    assert resp.status_code == 202 and resp.json() == {"id": job_id, "status": "queued"}
    assert r.lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    assert r.zscore("rq:failed:default", job_id) is None
    got = api.client.get(f"/v1/jobs/{job_id}").json()
    assert got["status"] == "queued" and got["retries_left"] == 2  # a fresh retry budget
    api.client.delete(f"/v1/jobs/{job_id}")
    assert api.client.post(f"/v1/jobs/{job_id}/retry").status_code == 202
