"""Bad input against a real API process and Redis (issue 14): every case a clear 4xx naming the field,
never a 500, and nothing a client sends grows what a scrape or a worker tick walks."""

from __future__ import annotations

import base64
import socket
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import redis

from tests.conftest import TEST_KEY, Api, key_entry, write_key_file
from tests.integration.test_api_submit import PRIMES, assert_nothing_enqueued, assert_problem

JSON = {"content-type": "application/json"}
NOTE_TYPES = "tests.support.jobs,tests.security.jobtypes"  # "note": a payload field of any JSON value


@pytest.fixture
def api(start_api) -> Api:  # type: ignore[no-untyped-def]
    return start_api(JOBENGINE_JOB_TYPE_MODULES=NOTE_TYPES)


def fields(resp: httpx.Response, status: int = 422) -> list[str]:
    return [e["field"] for e in assert_problem(resp, status).get("errors", [])]


def item_fields(resp: httpx.Response, index: int) -> list[str]:
    assert resp.status_code == 207, resp.text
    result = resp.json()["results"][index]
    assert "id" not in result, result
    return [e["field"] for e in result["error"]["errors"]]


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# --- 1. queues are a declared set ---

def test_an_undeclared_queue_is_refused_and_never_reaches_redis(api: Api, r: redis.Redis) -> None:
    c = api.client
    before = r.smembers("rq:queues")
    assert fields(c.post("/v1/jobs", json={**PRIMES, "queue": "rogue-1"})) == ["queue"]
    batch = c.post("/v1/jobs:batch", json={"jobs": [{**PRIMES, "queue": f"rogue-{i}"} for i in range(50)] + [PRIMES]})
    assert item_fields(batch, 0) == ["queue"] and batch.json()["accepted"] == 1
    assert r.smembers("rq:queues") <= before | {b"rq:queue:default"}
    assert not r.keys("rq:*rogue*")
    assert fields(c.get("/v1/jobs", params={"queue": "rogue-1"})) == ["queue"]
    # a queue declared by JOBENGINE_QUEUES_DECLARED (tests/conftest.py) is accepted
    assert c.post("/v1/jobs", json={**PRIMES, "queue": "custom"}).status_code == 202


def test_queue_stats_and_metrics_read_declared_queues_only(api: Api, r: redis.Redis) -> None:
    r.sadd("rq:queues", *[f"rq:queue:stray-{i}" for i in range(20)])  # written by anything but this API
    names = {q["name"] for q in api.client.get("/v1/queues").json()["items"]}
    assert names == {"high", "default", "low", "custom"}
    text = api.metrics()
    assert "stray-" not in text and 'jobengine_queue_depth{queue="custom"}' in text


def test_metrics_are_served_on_their_own_port_only(api: Api) -> None:
    assert_problem(api.client.get("/metrics"), 404)  # the API port, which the ingress routes
    text = api.metrics()
    assert "jobengine_jobs_submitted_total" in text and "jobengine_http_requests_total" in text
    assert httpx.get(api.metrics_url.replace("/metrics", "/v1/jobs"), timeout=10).status_code == 404


def test_the_declared_queues_come_from_the_setting(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api(JOBENGINE_QUEUES_DECLARED="reports")
    assert api.client.post("/v1/jobs", json={**PRIMES, "queue": "reports"}).status_code == 202
    assert fields(api.client.post("/v1/jobs", json={**PRIMES, "queue": "custom"})) == ["queue"]
    assert api.client.post("/v1/jobs", json={**PRIMES, "queue": "default"}).status_code == 202  # the types' own


# --- 2, 7. one JSON decoder: big integers, NaN, duplicate keys ---

@pytest.mark.parametrize(("body", "field"), [
    (b'{"type": "note", "payload": {"data": 123456789012345678901234567890}}', "payload.data"),
    (b'{"type": "note", "payload": {"data": [1, -99999999999999999999]}}', "payload.data.1"),
    (b'{"type": "note", "payload": {"data": 1e400}}', "payload.data"),
    (b'{"type": "note", "payload": {"data": NaN}}', "payload.data"),
    (b'{"type": "note", "payload": {"data": -Infinity}}', "payload.data"),
    (b'{"type": "note", "payload": {"text": "a", "text": "b"}}', "payload.text"),
    (b'{"type": "note", "type": "primes", "payload": {}}', "type"),
    (b'{"type": "note", "payload": {"text": "\\ud800"}}', "payload.text"),
])
def test_values_json_data_cannot_keep_are_422_on_both_endpoints(api: Api, r: redis.Redis, body: bytes,
                                                                  field: str) -> None:
    assert fields(api.client.post("/v1/jobs", content=body, headers=JSON)) == [field]
    batch = b'{"jobs": [' + body + b"]}"
    assert fields(api.client.post("/v1/jobs:batch", content=batch, headers=JSON)) == [f"jobs.0.{field}"]
    assert_nothing_enqueued(r)
    assert "unhandled error" not in api.proc.log()


def test_64_bit_integers_are_kept(api: Api) -> None:
    for value in (2**64 - 1, -(2**63)):
        resp = api.client.post("/v1/jobs", json={"type": "note", "payload": {"data": value}})
        assert resp.status_code == 202, resp.text


# --- 3. cursors ---

@pytest.mark.parametrize("raw", ["0-0", "18446744073709551616-0", "1-18446744073709551616",
                                 "99999999999999999999-99999999999999999999"])
def test_cursors_redis_would_refuse_are_422_and_the_connection_lives(api: Api, raw: str) -> None:
    with httpx.Client(base_url=api.base_url, headers=api.client.headers, timeout=10) as c:
        assert fields(c.get("/v1/jobs", params={"cursor": cursor(raw)})) == ["cursor"]
        assert c.get("/v1/jobs").status_code == 200  # the same keep-alive connection still serves
    assert "unhandled error" not in api.proc.log()


def test_the_largest_cursor_is_accepted(api: Api) -> None:
    resp = api.client.get("/v1/jobs", params={"cursor": cursor(f"{2**64 - 1}-{2**64 - 1}")})
    assert resp.status_code == 200, resp.text


def test_an_empty_page_has_no_cursor_and_no_cursor_names_another_tenants_job(
        start_api, tmp_path, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    other = "k-other.other-secret-0123456789abcdef0123456789abcdef"
    keys = write_key_file(tmp_path / "keys.json", [key_entry(TEST_KEY), key_entry(other, tenant="other")])
    api = start_api(JOBENGINE_API_KEYS_FILE=str(keys))
    for _ in range(2):  # more of tenant default's jobs than one list request looks at (its scan budget)
        assert api.client.post("/v1/jobs:batch", json={"jobs": [PRIMES] * 600}).status_code == 202
    page = api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {other}"}, params={"limit": 5}).json()
    assert page == {"items": [], "next_cursor": None}
    own = api.client.get("/v1/jobs", params={"limit": 2}).json()
    assert len(own["items"]) == 2 and own["next_cursor"] is not None
    entry = base64.urlsafe_b64decode(own["next_cursor"] + "==").decode()
    index = {fields[b"id"].decode(): entry_id.decode() for entry_id, fields in r.xrange("jobengine:index:default")}
    assert entry == index[own["items"][-1]["id"]]  # the page's own last job, in the tenant's own index


# --- 5. run_at ---

def test_run_at_is_bounded_like_delay_seconds(api: Api, r: redis.Redis) -> None:
    far = (datetime.now(timezone.utc) + timedelta(days=366)).isoformat()
    assert fields(api.client.post("/v1/jobs", json={**PRIMES, "run_at": far})) == ["run_at"]
    batch = api.client.post("/v1/jobs:batch", json={"jobs": [{**PRIMES, "run_at": far}, PRIMES]})
    assert item_fields(batch, 0) == ["run_at"]
    near = (datetime.now(timezone.utc) + timedelta(days=364)).isoformat()
    assert api.client.post("/v1/jobs", json={**PRIMES, "run_at": near}).status_code == 202


# --- 6. content types ---

@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx"])
def test_bodies_not_declared_json_are_415(api: Api, r: redis.Redis, content_type: str | None) -> None:
    body = b'{"type": "primes", "payload": {"lowest": 10, "highest": 17}}'
    headers = {"content-type": content_type} if content_type else {}
    for path, content in (("/v1/jobs", body), ("/v1/jobs:batch", b'{"jobs": [' + body + b"]}")):
        request = api.client.build_request("POST", path, content=content, headers=headers)
        assert request.headers.get("content-type") == content_type
        problem = assert_problem(api.client.send(request), 415)
        assert "JSON" in problem["detail"]
    assert_nothing_enqueued(r)
    for ok in ("application/json; charset=utf-8", "application/vnd.jobengine+json", "Application/JSON"):
        assert api.client.post("/v1/jobs", content=body, headers={"content-type": ok}).status_code == 202, ok


# --- 8. strict numbers ---

@pytest.mark.parametrize(("body", "field"), [
    ({"type": "sleep", "payload": {"seconds": False}}, "payload.seconds"),
    ({"type": "primes", "payload": {"lowest": True, "highest": 17}}, "payload.lowest"),
    ({**PRIMES, "timeout": True}, "timeout"),
    ({**PRIMES, "delay_seconds": False}, "delay_seconds"),
    ({**PRIMES, "result_ttl": True}, "result_ttl"),
    ({**PRIMES, "retry": {"max_retries": True}}, "retry.max_retries"),
])
def test_booleans_are_not_numbers(api: Api, r: redis.Redis, body: dict, field: str) -> None:
    assert fields(api.client.post("/v1/jobs", json=body)) == [field]
    assert item_fields(api.client.post("/v1/jobs:batch", json={"jobs": [body, PRIMES]}), 0) == [field]


def test_a_float_field_still_takes_an_integer(api: Api) -> None:
    assert api.client.post("/v1/jobs", json={"type": "sleep", "payload": {"seconds": 0}}).status_code == 202


# --- 9. no redirects ---

def test_a_trailing_slash_is_a_404_problem_not_a_redirect(api: Api) -> None:
    for method, path in (("GET", "/v1/jobs/"), ("POST", "/v1/jobs/"), ("GET", "/v1/job-types/"), ("GET", "/docs/")):
        resp = api.client.request(method, path, headers={"host": "evil.example"}, json=PRIMES)
        assert_problem(resp, 404)
        assert "location" not in resp.headers and "evil.example" not in resp.text


# --- 12. one form of field paths in a batch ---

def test_batch_item_errors_name_fields_relative_to_the_item(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api(JOBENGINE_MAX_JSON_DEPTH="4", JOBENGINE_MAX_STRING_LENGTH="32")
    items = [{"type": "echo", "payload": {"message": [[[["deep"]]]]}},  # an input limit
             {"type": "echo", "payload": {"message": "x" * 33}},  # an input limit
             {"type": "echo", "payload": {"message": 5}},  # the model
             {**PRIMES, "queue": "rogue"},  # the declared queues
             PRIMES]
    resp = api.client.post("/v1/jobs:batch", json={"jobs": items})
    assert resp.status_code == 207, resp.text
    results = resp.json()["results"]
    assert [item_fields(resp, i) for i in range(4)] == [["payload.message.0.0"], ["payload.message"],
                                                        ["payload.message"], ["queue"]]
    assert [results[i]["error"]["instance"] for i in range(4)] == [f"/v1/jobs:batch#/jobs/{i}" for i in range(4)]
    # the single endpoint names the same paths for the same mistakes
    assert fields(api.client.post("/v1/jobs", json=items[1])) == ["payload.message"]
    assert fields(api.client.post("/v1/jobs", json=items[2])) == ["payload.message"]


# --- 10. stalled requests ---

def _closed_within(sock: socket.socket, bound: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if that takes longer than `bound`."""
    sock.settimeout(bound)
    received = b""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return received
        received += chunk
    pytest.fail(f"the connection was still open after {bound} s; got {received[:200]!r}")


STALL_TIMEOUT = 1  # seconds, the API's head and body deadlines in these tests
STALL_BOUND = 5  # the connection must be closed within this: the deadline plus room for a loaded machine


@pytest.fixture
def impatient_api(start_api) -> Api:  # type: ignore[no-untyped-def]
    return start_api(JOBENGINE_HTTP_HEADER_TIMEOUT_SECONDS=str(STALL_TIMEOUT),
                     JOBENGINE_HTTP_BODY_TIMEOUT_SECONDS=str(STALL_TIMEOUT))


def _connect(api: Api) -> socket.socket:
    host, port = api.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


@pytest.mark.parametrize("sent", [b"", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Le"])
def test_a_stalled_request_head_is_closed(impatient_api: Api, sent: bytes) -> None:
    with _connect(impatient_api) as sock:
        sock.sendall(sent)
        assert _closed_within(sock, STALL_BOUND) == b""


def test_a_stalled_head_after_a_kept_alive_request_is_closed(impatient_api: Api) -> None:
    with _connect(impatient_api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):  # the whole first answer (the socket's timeout bounds it)
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # (data on the connection stops uvicorn's keep-alive timer)
        assert _closed_within(sock, STALL_BOUND) == b""


def test_a_stalled_body_gets_408_and_the_connection_is_closed(impatient_api: Api, r: redis.Redis) -> None:
    body = b'{"type": "primes", "payload": {"lowest": 10, "highest": 17}}'
    head = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Authorization: Bearer {impatient_api.key}\r\n\r\n").encode()
    with _connect(impatient_api) as sock:
        sock.sendall(head + body[:10])
        answer = _closed_within(sock, STALL_BOUND)
    assert answer.startswith(b"HTTP/1.1 408") and b"application/problem+json" in answer
    assert_nothing_enqueued(r)
