"""Reading, waiting for, listing, canceling and retrying jobs through the API. Jobs end through a real worker
process (the `gated` test job type, whose end the test decides), so every outcome the API reads is what the
worker's scripts wrote, never a hand-written imitation of them."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import orjson
import redis

from tests.support.gated import open_gate
from tests.support.wait import wait_until

from .test_api_submit import PRIMES, assert_problem


def submit(api, body: dict = PRIMES) -> str:  # type: ignore[no-untyped-def]
    resp = api.client.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]  # type: ignore[no-any-return]


def gated(redis_url: str, **payload: Any) -> dict[str, Any]:
    """A submit body of the gated job type; `retry` and other options go next to the payload."""
    options = {k: payload.pop(k) for k in ("retry", "queue") if k in payload}
    return {"type": "gated", "payload": {"redis_url": redis_url, **payload}, **options}


def get(api, job_id: str, **params: object) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = api.client.get(f"/v1/jobs/{job_id}", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def wait_status(api, job_id: str, status: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return wait_until(lambda: (got := get(api, job_id))["status"] == status and got,  # type: ignore[return-value]
                      message=f"job {job_id} to be {status}")


def ended(api, job_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The job's state once it has ended (long-polled; a generous deadline that only a hang reaches)."""
    got = get(api, job_id, wait=30)
    assert got["status"] in ("finished", "failed", "canceled"), got
    return got


class Waiter(threading.Thread):
    """GET ?wait= in a thread; `sent` is set once the request has gone out."""

    def __init__(self, api, job_id: str, wait: float = 30) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.sent = threading.Event()
        self.answer: dict[str, Any] | None = None
        self.client = httpx.Client(base_url=api.base_url, headers=dict(api.client.headers), timeout=60,
                                   event_hooks={"request": [lambda request: self.sent.set()]})
        self.job_id, self.wait = job_id, wait

    def run(self) -> None:
        try:
            self.answer = self.client.get(f"/v1/jobs/{self.job_id}", params={"wait": self.wait}).json()
        finally:
            self.client.close()


def test_get_reports_result_error_progress_and_timestamps(api, worker, r: redis.Redis, redis_url: str) -> None:
    job_id = submit(api, gated(redis_url, progress=0.5, value="done"))
    got = wait_until(lambda: (g := get(api, job_id))["progress"] and g, message="the job's progress")
    assert got["status"] == "started" and got["worker"] == worker.name and got["attempts"] == 1
    assert got["progress"] == {"fraction": 0.5, "message": "waiting"} and got["started_at"] and not got["ended_at"]

    open_gate(r, job_id)
    got = ended(api, job_id)
    assert got["status"] == "finished" and got["result"] == {"value": "done", "attempt": 1}
    assert got["error"] is None and got["ended_at"] and got["created_at"] and got["enqueued_at"]

    other = submit(api, gated(redis_url, retry={"max_retries": 1, "base_delay": 0, "jitter": 0}))
    open_gate(r, other, "fail:boom once")
    open_gate(r, other, "fail:boom twice")
    got = ended(api, other)
    assert got["status"] == "failed" and "GateFailure: boom twice" in got["error"] and got["result"] is None
    assert got["retries_left"] == 0 and got["attempts"] == 2


def test_unknown_and_malformed_ids(api) -> None:
    assert_problem(api.client.get("/v1/jobs/0123456789abcdef"), 404)
    assert_problem(api.client.get("/v1/jobs/0123456789abcdef?wait=1"), 404)
    problem = assert_problem(api.client.get("/v1/jobs/not%20an%20id!"), 422)
    assert problem["errors"][0]["field"] == "job_id"
    assert_problem(api.client.get("/v1/jobs/" + "a" * 65), 422)
    assert_problem(api.client.delete("/v1/jobs/0123456789abcdef"), 404)
    assert_problem(api.client.post("/v1/jobs/0123456789abcdef/retry"), 404)


def test_wait_returns_as_soon_as_the_job_ends(api, worker, r: redis.Redis, redis_url: str) -> None:
    job_id = submit(api, gated(redis_url, value="v"))
    wait_status(api, job_id, "started")
    waiter = Waiter(api, job_id, wait=30)
    waiter.start()
    assert waiter.sent.wait(10)
    open_gate(r, job_id)
    waiter.join(20)  # far less than the 30 s wait: the answer came when the job ended, not at the wait's end
    assert not waiter.is_alive(), "the long-poll did not answer when the job ended"
    assert waiter.answer is not None and waiter.answer["status"] == "finished"
    assert waiter.answer["result"] == {"value": "v", "attempt": 1}


def test_many_waiters_on_one_job_and_on_many_jobs(api, worker, r: redis.Redis, redis_url: str) -> None:
    ids = [submit(api, gated(redis_url, value=str(n))) for n in range(5)]
    wait_status(api, ids[0], "started")
    waiters = [Waiter(api, job_id) for job_id in ids + ids[:2]]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        assert waiter.sent.wait(10)
    for job_id in ids:
        open_gate(r, job_id)
    for waiter in waiters:
        waiter.join(25)
    answers = [w.answer for w in waiters]
    assert all(a is not None and a["status"] == "finished" for a in answers), answers
    assert [a["result"]["value"] for a in answers if a] == [str(n) for n in range(5)] + ["0", "1"]


def test_wait_times_out_with_the_current_state_and_is_bounded(start_api, start_worker) -> None:
    api = start_api(JOBENGINE_MAX_WAIT_SECONDS="30")
    job_id = submit(api)  # no worker yet: the job stays queued
    waiter = Waiter(api, job_id, wait=0.5)
    waiter.start()
    waiter.join(20)
    assert not waiter.is_alive() and waiter.answer is not None and waiter.answer["status"] == "queued"
    problem = assert_problem(api.client.get(f"/v1/jobs/{job_id}", params={"wait": 31}), 422)
    assert problem["errors"][0]["field"] == "wait"
    assert_problem(api.client.get(f"/v1/jobs/{job_id}", params={"wait": "soon"}), 422)
    start_worker()
    assert ended(api, job_id)["status"] == "finished"
    # a finished job answers at once, whatever the wait: far before the 30 s asked for
    waiter = Waiter(api, job_id, wait=30)
    waiter.start()
    waiter.join(15)
    assert not waiter.is_alive() and waiter.answer is not None and waiter.answer["status"] == "finished"


def test_list_is_newest_first_with_filters_and_cursor_pages(api, start_worker, r: redis.Redis,
                                                            redis_url: str) -> None:
    worker = start_worker()
    failed = submit(api, gated(redis_url))
    open_gate(r, failed, "fail:boom")
    assert ended(api, failed)["status"] == "failed"
    worker.stop()  # the rest stay queued
    ids = [failed] + [submit(api) for _ in range(6)]
    echo_ids = [submit(api, {"type": "echo", "payload": {}, "queue": "low"}) for _ in range(3)]

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
    assert listed(status="failed") == [failed]
    assert listed(status="queued", type="primes") == list(reversed(ids[1:]))
    item = api.client.get("/v1/jobs", params={"limit": 1}).json()["items"][0]
    assert {"id", "type", "queue", "status", "created_at", "enqueued_at", "started_at", "ended_at"} <= set(item)

    # an expired job (its hash gone at its TTL) leaves the index lazily
    r.delete(f"rq:job:{ids[3]}")
    assert ids[3] not in listed(limit=100)
    assert ids[3].encode() not in [f[b"id"] for _, f in r.xrange("jobengine:index:default")]  # (the tenant's index)

    for params in ({"cursor": "garbage!"}, {"limit": 0}, {"limit": 10_000}, {"status": "lost"},
                   {"queue": "bad queue"}):
        assert_problem(api.client.get("/v1/jobs", params=params), 422)


def test_cursor_survives_the_removal_of_its_job(api, r: redis.Redis) -> None:
    ids = [submit(api) for _ in range(4)]
    first = api.client.get("/v1/jobs", params={"limit": 2}).json()
    assert [i["id"] for i in first["items"]] == [ids[3], ids[2]]
    (entry,) = [e for e, f in r.xrange("jobengine:index:default") if f[b"id"] == ids[2].encode()]
    r.xdel("jobengine:index:default", entry)  # the cursor's own entry gone (the tenant's index is what a key
    # lists): the next page still starts after it
    rest = api.client.get("/v1/jobs", params={"limit": 5, "cursor": first["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == [ids[1], ids[0]] and rest["next_cursor"] is None


def test_cancel_queued_scheduled_started_and_ended_jobs(api, start_worker, r: redis.Redis,
                                                        redis_url: str) -> None:
    queued = submit(api)  # no worker yet: it stays queued
    resp = api.client.delete(f"/v1/jobs/{queued}")
    assert resp.status_code == 200 and resp.json() == {"id": queued, "status": "canceled"}
    assert r.llen("rq:queue:default") == 0 and r.zscore("rq:canceled:default", queued) is not None
    got = get(api, queued)
    assert got["status"] == "canceled" and got["ended_at"]

    scheduled = submit(api, {**PRIMES, "delay_seconds": 600})
    assert api.client.delete(f"/v1/jobs/{scheduled}").json()["status"] == "canceled"
    assert r.zcard("rq:scheduled:default") == 0

    # canceling again: the job has ended already
    problem = assert_problem(api.client.delete(f"/v1/jobs/{queued}"), 409)
    assert problem["job_status"] == "canceled"

    worker = start_worker()
    started = submit(api, gated(redis_url))  # its gate never opens: only the cancel can end it
    wait_status(api, started, "started")
    pubsub = r.pubsub()
    pubsub.subscribe(f"rq:pubsub:{worker.name}")  # RQ's command channel: what `rq` tooling sends too
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    resp = api.client.delete(f"/v1/jobs/{started}")
    assert resp.status_code == 202 and resp.json() == {"id": started, "status": "canceling"}
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message and orjson.loads(message["data"]) == {"command": "stop-job", "job_id": started}
    got = ended(api, started)
    assert got["status"] == "canceled" and got["ended_at"]
    assert r.zscore("rq:canceled:default", started) is not None and r.ttl(f"rq:job:{started}") != -2
    assert_problem(api.client.delete(f"/v1/jobs/{started}"), 409)


def test_retry_requeues_failed_and_canceled_jobs_only(api, start_worker, r: redis.Redis, redis_url: str) -> None:
    worker = start_worker()
    job_id = submit(api, gated(redis_url, value="second time lucky",
                               retry={"max_retries": 1, "base_delay": 0, "jitter": 0}))
    assert_problem(api.client.post(f"/v1/jobs/{job_id}/retry"), 409)  # not ended yet
    open_gate(r, job_id, "fail:boom")
    open_gate(r, job_id, "fail:boom")
    got = ended(api, job_id)
    assert got["status"] == "failed" and got["retries_left"] == 0 and got["attempts"] == 2
    assert r.zscore("rq:failed:default", job_id) is not None
    worker.stop()  # so the requeued job stays where the retry put it

    resp = api.client.post(f"/v1/jobs/{job_id}/retry")
    assert resp.status_code == 202 and resp.json() == {"id": job_id, "status": "queued"}
    assert r.lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    assert r.zscore("rq:failed:default", job_id) is None
    got = get(api, job_id)
    assert got["status"] == "queued" and got["retries_left"] == 1  # a fresh retry budget

    assert api.client.delete(f"/v1/jobs/{job_id}").json()["status"] == "canceled"
    assert api.client.post(f"/v1/jobs/{job_id}/retry").status_code == 202

    start_worker()  # the retried job runs for real
    open_gate(r, job_id)
    got = ended(api, job_id)
    assert got["status"] == "finished" and got["result"] == {"value": "second time lucky", "attempt": 3}
