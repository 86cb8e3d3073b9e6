"""POST /v1/jobs and /v1/jobs:batch against a real API process and Redis: acceptance, validation,
idempotency, limits, and the RQ data model of what gets written."""

from __future__ import annotations

import time

import httpx
import pytest
import redis
import rq
from rq.serializers import JSONSerializer

PRIMES = {"type": "primes", "payload": {"lowest": 10, "highest": 17}}
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}
JSON = {"content-type": "application/json"}


def assert_nothing_enqueued(r: redis.Redis) -> None:
    assert r.keys("rq:job:*") == []
    for key in r.keys("rq:queue:*") + r.keys("rq:scheduled:*"):
        assert r.type(key) in (b"list", b"zset") and not (r.llen(key) if r.type(key) == b"list" else r.zcard(key))
    assert r.xlen("jobengine:index:default") == 0


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert PROBLEM_KEYS <= set(body) and body["status"] == status
    return body


def fields_of(problem: dict) -> list[str]:
    return [e["field"] for e in problem.get("errors", [])]


def test_submit_is_accepted_with_location_and_rq_reads_the_job(api, r: redis.Redis, redis_url: str) -> None:
    resp = api.client.post("/v1/jobs", json=PRIMES)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    job_id = body["id"]
    assert body["status"] == "queued" and body["type"] == "primes" and body["queue"] == "default"
    assert resp.headers["location"] == body["location"] == f"/v1/jobs/{job_id}"
    assert r.lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    assert r.sismember("rq:queues", "rq:queue:default")
    (_, entry), = r.xrange("jobengine:index:default")  # listed: GET /v1/jobs reads this index
    assert entry == {b"id": job_id.encode()}

    job = rq.job.Job.fetch(job_id, connection=redis.Redis.from_url(redis_url), serializer=JSONSerializer)
    assert job.func_name == "jobengine_worker.jobs.builtin.primes"
    assert job.args == [PRIMES["payload"]] and job.kwargs == {}
    assert job.get_status() == "queued" and job.origin == "default"
    assert job.meta["type"] == "primes"

    got = api.client.get(body["location"]).json()
    assert got["status"] == "queued" and got["payload"] == PRIMES["payload"] and got["attempts"] == 0


def test_options_override_the_job_type(api, r: redis.Redis) -> None:
    resp = api.client.post("/v1/jobs", json={**PRIMES, "queue": "high", "timeout": 7, "result_ttl": 60,
                                             "retry": {"max_retries": 4, "base_delay": 2, "jitter": 0}})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    h = r.hgetall(f"rq:job:{job_id}")
    assert h[b"origin"] == b"high" and h[b"timeout"] == b"7" and h[b"result_ttl"] == b"60"
    assert h[b"retries_left"] == b"4" and h[b"retry_intervals"] == b"[2.0,4.0,8.0,16.0]"
    assert r.lrange("rq:queue:high", 0, -1) == [job_id.encode()]


def test_delayed_and_run_at_jobs_are_scheduled(api, r: redis.Redis) -> None:
    resp = api.client.post("/v1/jobs", json={**PRIMES, "delay_seconds": 120})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "scheduled"
    assert r.zscore("rq:scheduled:default", body["id"]) == pytest.approx(time.time() + 120, abs=5)
    assert r.llen("rq:queue:default") == 0
    got = api.client.get(body["location"]).json()
    assert got["status"] == "scheduled" and got["scheduled_for"] is not None

    run_at = int(time.time()) // 60 * 60 + 30 * 86_400  # a whole minute, 30 days ahead
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run_at))
    resp = api.client.post("/v1/jobs", json={**PRIMES, "run_at": when})
    assert resp.json()["status"] == "scheduled"
    assert r.zscore("rq:scheduled:default", resp.json()["id"]) == run_at


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "primes", "payload": {"lowest": "ten", "highest": 17}}, "payload.lowest"),
        ({"type": "primes", "payload": {"lowest": 18, "highest": 17}}, "payload"),
        ({"type": "primes", "payload": {"lowest": 0, "highest": 5_000_000}}, "payload"),
        ({"type": "primes", "payload": {"lowest": -1, "highest": 5}}, "payload.lowest"),
        ({"type": "primes"}, "payload"),
        ({"type": "teleport", "payload": {}}, "type"),
        ({"payload": {}}, "type"),
        ({**PRIMES, "queue": "no spaces"}, "queue"),
        ({**PRIMES, "delay_seconds": 5, "run_at": "2099-01-01T00:00:00Z"}, "run_at"),
        ({**PRIMES, "retry": {"max_retries": 1000}}, "retry.max_retries"),
        ({**PRIMES, "timeout": 0}, "timeout"),
    ],
)
def test_invalid_jobs_get_422_naming_the_field_and_nothing_is_enqueued(api, r: redis.Redis, body: dict,
                                                                       field: str) -> None:
    problem = assert_problem(api.client.post("/v1/jobs", json=body), 422)
    assert field in fields_of(problem), problem
    assert_nothing_enqueued(r)


def test_unknown_type_lists_the_known_types(api, r: redis.Redis) -> None:
    problem = assert_problem(api.client.post("/v1/jobs", json={"type": "teleport", "payload": {}}), 422)
    assert fields_of(problem) == ["type"]
    for name in ("primes", "echo", "sleep"):
        assert name in problem["detail"] and name in problem["errors"][0]["message"]
    assert_nothing_enqueued(r)


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'"primes"', b"\xff\xfe", b"null"])
def test_malformed_bodies_get_a_problem_and_the_process_survives(api, r: redis.Redis, content: bytes) -> None:
    resp = api.client.post("/v1/jobs", content=content, headers={"content-type": "application/json"})
    assert_problem(resp, 422)
    assert api.client.get("/healthz").status_code == 200
    assert_nothing_enqueued(r)


def test_oversized_bodies_get_413_by_length_and_by_stream(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_MAX_BODY_BYTES="2048")
    big = {"type": "echo", "payload": {"message": "x" * 5000}}
    problem = assert_problem(api.client.post("/v1/jobs", json=big), 413)
    assert "2048" in problem["detail"]

    def chunks():  # no Content-Length: the API must count the streamed bytes
        for _ in range(10):
            yield b" " * 1000

    with httpx.Client(base_url=api.base_url, timeout=10, headers=api.client.headers) as client:
        assert_problem(client.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"}),
                       413)
        assert_problem(client.post("/v1/jobs:batch", json={"jobs": [big]}), 413)
    assert_nothing_enqueued(r)
    assert api.client.post("/v1/jobs", json=PRIMES).status_code == 202


def test_idempotency_key_replays_the_same_job_and_refuses_another_body(api, r: redis.Redis) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = api.client.post("/v1/jobs", json=PRIMES, headers=headers)
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    # same body, other key order and spacing: the same request
    again = api.client.post("/v1/jobs", content=b'{ "payload": {"highest": 17, "lowest": 10}, "type": "primes"}',
                            headers={**headers, **JSON})
    assert again.status_code in (200, 202), again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.headers["location"] == first.headers["location"]
    assert r.llen("rq:queue:default") == 1 and len(r.keys("rq:job:*")) == 1
    assert r.ttl("jobengine:idempotency:default:order-42") > 3600

    problem = assert_problem(api.client.post("/v1/jobs", json={**PRIMES, "payload": {"lowest": 1, "highest": 2}},
                                             headers=headers), 409)
    assert "order-42" in problem["detail"]
    assert r.llen("rq:queue:default") == 1

    other = api.client.post("/v1/jobs", json=PRIMES, headers={"Idempotency-Key": "order-43"})
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
    assert_problem(api.client.post("/v1/jobs", json=PRIMES, headers={"Idempotency-Key": "k" * 201}), 422)


def test_idempotency_window_comes_from_settings(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_IDEMPOTENCY_TTL_SECONDS="60")
    api.client.post("/v1/jobs", json=PRIMES, headers={"Idempotency-Key": "k"})
    assert 0 < r.ttl("jobengine:idempotency:default:k") <= 60


def test_batch_enqueues_the_valid_items_and_reports_each(api, r: redis.Redis) -> None:
    jobs = [
        PRIMES,
        {"type": "primes", "payload": {"lowest": 9, "highest": 1}},
        {"type": "echo", "payload": {"message": "hi"}, "queue": "low", "idempotency_key": "b-1"},
        {"type": "nope"},
        "not an object",
        {"type": "echo", "payload": {"message": "later"}, "delay_seconds": 30},
        {"type": "echo", "payload": {"message": "hi"}, "queue": "low", "idempotency_key": "b-1"},
        {"type": "echo", "payload": {"message": "other"}, "idempotency_key": "b-1"},
    ]
    resp = api.client.post("/v1/jobs:batch", json={"jobs": jobs})
    assert resp.status_code == 207, resp.text
    body = resp.json()
    results = body["results"]
    assert [res["index"] for res in results] == list(range(len(jobs)))
    assert body["accepted"] == 4 and body["rejected"] == 4
    assert results[0]["status"] == "queued" and results[5]["status"] == "scheduled"
    assert results[6]["id"] == results[2]["id"] and results[6]["replayed"] is True
    assert fields_of(results[1]["error"]) == ["payload"] and results[1]["error"]["status"] == 422
    assert fields_of(results[3]["error"]) == ["type"]
    assert results[4]["error"]["status"] == 422
    assert results[7]["error"]["status"] == 409
    assert r.lrange("rq:queue:default", 0, -1) == [results[0]["id"].encode()]
    assert r.lrange("rq:queue:low", 0, -1) == [results[2]["id"].encode()]
    assert r.zcard("rq:scheduled:default") == 1 and r.xlen("jobengine:index:default") == 3


def test_batch_all_valid_is_202_and_limits_are_enforced(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_MAX_BATCH_SIZE="3")
    resp = api.client.post("/v1/jobs:batch", json={"jobs": [PRIMES, PRIMES, PRIMES]})
    assert resp.status_code == 202 and resp.json()["accepted"] == 3
    assert r.llen("rq:queue:default") == 3
    r.flushall()
    assert "jobs" in fields_of(assert_problem(api.client.post("/v1/jobs:batch", json={"jobs": [PRIMES] * 4}), 422))
    assert "jobs" in fields_of(assert_problem(api.client.post("/v1/jobs:batch", json={"jobs": []}), 422))
    assert "jobs" in fields_of(assert_problem(api.client.post("/v1/jobs:batch", json=[PRIMES]), 422))
    assert_problem(api.client.post("/v1/jobs:batch", content=b"{oops", headers=JSON), 422)
    assert_nothing_enqueued(r)
    # the colon route does not collide with /v1/jobs/{id}
    assert_problem(api.client.get("/v1/jobs:batch"), 405)


def test_job_types_list_their_schemas(api) -> None:
    items = api.client.get("/v1/job-types").json()["items"]
    by_name = {t["name"]: t for t in items}
    assert {"primes", "echo", "sleep"} <= set(by_name)
    primes = by_name["primes"]
    assert set(primes["input_schema"]["properties"]) == {"lowest", "highest"}
    assert "primes" in primes["result_schema"]["properties"] and primes["queue"] == "default"
    one = api.client.get("/v1/job-types/primes")
    assert one.status_code == 200 and one.json() == primes
    assert_problem(api.client.get("/v1/job-types/teleport"), 404)


def test_openapi_and_docs_show_every_job_type(api) -> None:
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = api.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    names = [t["name"] for t in api.client.get("/v1/job-types").json()["items"]]
    submission = schemas["JobSubmission"]
    mapping = submission["discriminator"]["mapping"]
    assert set(mapping) == set(names)
    for ref in mapping.values():
        assert ref.rsplit("/", 1)[1] in schemas
    assert schemas["PrimesInput"]["properties"]["lowest"]["type"] == "integer"
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobSubmission"}
    assert "/v1/jobs:batch" in spec["paths"] and "/v1/jobs/{job_id}" in spec["paths"]


def test_the_listing_index_forgets_entries_past_its_max_age(api, r: redis.Redis) -> None:
    # 150 entries from 1970 (stream ids are ms timestamps), then one real submit: the index drops the old
    # entries by whole stream nodes (MINID ~), never the new one
    for n in range(150):
        r.xadd("jobengine:index:default", {"id": f"old{n}"}, id=f"{1000 + n}-0")
    job_id = api.client.post("/v1/jobs", json=PRIMES).json()["id"]
    ids = [f[b"id"].decode() for _, f in r.xrange("jobengine:index:default")]
    assert ids[-1] == job_id and len(ids) <= 51, len(ids)
    assert [i["id"] for i in api.client.get("/v1/jobs").json()["items"]] == [job_id]
