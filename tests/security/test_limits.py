"""Input limits: body, payload per job (global and per job type), batch size, string length, nesting depth."""

from __future__ import annotations

import redis

from tests.integration.test_api_submit import PRIMES, assert_nothing_enqueued, assert_problem, fields_of

MODULES = "tests.support.jobs,tests.security.jobtypes"


def nested(depth: int) -> object:
    doc: object = 1
    for _ in range(depth):
        doc = [doc]
    return doc


def test_oversized_and_overdeep_inputs_get_413_or_422_and_nothing_is_enqueued(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_JOB_TYPE_MODULES=MODULES, JOBENGINE_MAX_PAYLOAD_BYTES="2000",
                    JOBENGINE_MAX_JSON_DEPTH="8", JOBENGINE_MAX_STRING_LENGTH="500", JOBENGINE_MAX_BATCH_SIZE="5",
                    JOBENGINE_MAX_BODY_BYTES="65536")
    c = api.client
    # payload bytes: the global limit, then a job type's own lower one
    big = assert_problem(c.post("/v1/jobs", json={"type": "note", "payload": {"data": ["x" * 400] * 6}}), 413)
    assert big["type"].endswith(":payload-too-large") and fields_of(big) == ["payload"]
    small = assert_problem(c.post("/v1/jobs", json={"type": "note", "payload": {"text": "y" * 120}}), 413)
    assert "100" in small["detail"]
    # strings (values and keys) and depth, before the model sees them
    long = assert_problem(c.post("/v1/jobs", json={"type": "echo", "payload": {"message": "z" * 501}}), 422)
    assert fields_of(long) == ["payload.message"] and "500" in long["errors"][0]["message"]
    key = assert_problem(c.post("/v1/jobs", json={"type": "echo", "payload": {"k" * 600: 1}}), 422)
    assert fields_of(key)[0].startswith("payload.kkk")
    deep = assert_problem(c.post("/v1/jobs", json={"type": "note", "payload": {"data": nested(10)}}), 422)
    assert fields_of(deep)[0].startswith("payload.data") and "8 levels" in deep["errors"][0]["message"]
    # batch: too many items is a 422 for the request; an item over a limit is rejected alone
    assert_problem(c.post("/v1/jobs:batch", json={"jobs": [PRIMES] * 6}), 422)
    assert_nothing_enqueued(r)
    resp = c.post("/v1/jobs:batch", json={"jobs": [
        PRIMES, {"type": "note", "payload": {"text": "y" * 120}}, {"type": "note", "payload": {"data": nested(10)}},
        {"type": "echo", "payload": {"message": "z" * 501}}]})
    assert resp.status_code == 207, resp.text
    body = resp.json()
    assert body["accepted"] == 1 and body["rejected"] == 3
    statuses = [item.get("error", {}).get("status") for item in body["results"]]
    assert statuses == [None, 413, 422, 422]
    assert body["results"][3]["error"]["errors"][0]["field"] == "payload.message"  # relative to the item
    assert r.llen("rq:queue:default") == 1
    # within every limit: accepted
    assert c.post("/v1/jobs", json={"type": "note", "payload": {"text": "ok", "data": nested(5)}}).status_code == 202
    assert c.post("/v1/jobs", json={"type": "echo", "payload": {"message": "m" * 500}}).status_code == 202


def test_job_types_publish_their_payload_bound(start_api) -> None:
    api = start_api(JOBENGINE_JOB_TYPE_MODULES=MODULES)
    types = {t["name"]: t for t in api.client.get("/v1/job-types").json()["items"]}
    assert types["note"]["max_payload_bytes"] == 100 and types["primes"]["max_payload_bytes"] is None


def test_a_huge_deep_document_is_a_422_not_a_crash(start_api) -> None:
    api = start_api(JOBENGINE_MAX_BODY_BYTES="1048576")
    doc = b'{"type": "echo", "payload": {"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    resp = api.client.post("/v1/jobs", content=doc, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert api.client.get("/healthz").status_code == 200
