"""The sync SDK against the real API and worker: every call, typed and untyped, and its errors."""

from __future__ import annotations

import threading
from typing import Any

import pydantic
import pytest

from jobengine.builtin_types import JOB_TYPES as BUILTIN_TYPES
from jobengine.builtin_types import PrimesInput, PrimesResult
from jobengine_client import (Accepted, Client, Conflict, Forbidden, InvalidRequest, Job, JobFailed, NewJob,
                              NotFound, Unauthorized, WaitTimeout)
from tests.clients.conftest import USER_KEY, CountingTransport, Platform
from tests.support.gated import open_gate
from tests.support.wait import wait_until

PRIMES = next(t for t in BUILTIN_TYPES if t.name == "primes")  # the catalog's declaration: typed use


@pytest.fixture
def client(platform: Platform) -> Client:
    with Client(platform.url, api_key=platform.key) as c:
        yield c  # type: ignore[misc]


def test_typed_submit_get_and_wait(client: Client) -> None:
    accepted = client.submit(PRIMES, PrimesInput(lowest=10, highest=17))
    assert isinstance(accepted, Accepted) and accepted.type == "primes" and accepted.status == "queued"
    assert accepted.location == f"/v1/jobs/{accepted.id}" and not accepted.replayed
    job = client.wait(accepted, timeout=30)  # the handle knows the result model
    assert job.status == "finished" and job.ok
    assert isinstance(job.result, PrimesResult) and job.result.primes == [11, 13, 17]
    again = client.get(accepted.id, result_model=PrimesResult)
    assert again.result == job.result and again.payload == {"lowest": 10, "highest": 17}
    assert isinstance(client.get(accepted.id, result_model=PRIMES).result, PrimesResult)


def test_plain_dicts_without_declarations(client: Client) -> None:
    job = client.wait(client.submit("primes", {"lowest": 1, "highest": 10}), timeout=30)
    assert job.result == {"primes": [2, 3, 5, 7], "count": 4}


def test_typed_payload_is_checked_before_any_request(platform: Platform) -> None:
    transport = CountingTransport()
    with Client(platform.url, api_key=platform.key, transport=transport) as client:
        with pytest.raises(pydantic.ValidationError):
            client.submit(PRIMES, {"lowest": 5, "highest": 1})
        with pytest.raises(TypeError):
            client.submit(PRIMES, PrimesResult(primes=[], count=0))  # type: ignore[arg-type]
    assert transport.requests == []


def test_wait_reports_progress_then_the_end(client: Client, platform: Platform) -> None:
    accepted = client.submit("gated", {"redis_url": platform.redis_url, "progress": 0.5, "value": "v"})
    seen: list[Job[Any]] = []
    done: list[Job[Any]] = []
    waiter = threading.Thread(target=lambda: done.append(client.wait(accepted, timeout=30, on_progress=seen.append,
                                                                      poll_interval=0.1)))
    waiter.start()
    wait_until(lambda: any(j.progress and j.progress.fraction == 0.5 for j in seen), message="progress 0.5")
    with platform.redis() as r:
        open_gate(r, accepted.id)
    waiter.join(30)
    assert done and done[0].status == "finished" and done[0].result == {"value": "v", "attempt": 1}
    reported = [j for j in seen if j.progress]
    assert reported[0].progress.message == "waiting"  # type: ignore[union-attr]
    assert seen[-1].status == "finished"
    states = [(j.status, j.progress) for j in seen]
    assert all(a != b for a, b in zip(states, states[1:]))  # called on news only


def test_wait_timeout_then_cancel_a_running_job(client: Client, platform: Platform) -> None:
    accepted = client.submit("gated", {"redis_url": platform.redis_url})
    with pytest.raises(WaitTimeout) as info:
        client.wait(accepted, timeout=0.3)
    assert info.value.job.id == accepted.id and not info.value.job.done
    wait_until(lambda: client.get(accepted).status == "started", message="job started")
    change = client.cancel(accepted)
    assert change.status == "canceling"
    assert client.wait(accepted, timeout=30).status == "canceled"


def test_cancel_and_retry(client: Client) -> None:
    later = client.submit("echo", {"message": "later"}, delay_seconds=300)
    assert later.status == "scheduled" and later.run_at is not None
    assert client.cancel(later).status == "canceled"
    with pytest.raises(Conflict) as info:
        client.cancel(later)
    assert info.value.status == 409 and info.value.extra["job_status"] == "canceled"
    assert client.retry(later).status == "queued"  # a canceled job can run again
    assert client.wait(later, timeout=30).result == {"message": "later", "attempt": 1}
    with pytest.raises(Conflict):
        client.retry(later)  # finished: nothing to retry

    failing = client.submit("echo", {"fail": True}, retry={"max_retries": 0})
    job = client.wait(failing, timeout=30)
    assert job.status == "failed" and "echo failed on purpose" in (job.error or "")
    with pytest.raises(JobFailed) as failed:
        job.raise_for_failure()
    assert failed.value.job.id == failing.id
    assert client.retry(failing).status == "queued"
    assert client.wait(failing, timeout=30).attempts == 2


def test_idempotency_key(client: Client) -> None:
    first = client.submit("echo", {"message": "once"}, idempotency_key="order-17")
    second = client.submit("echo", {"message": "once"}, idempotency_key="order-17")
    assert second.id == first.id and second.replayed and not first.replayed
    assert first.idempotency_key == "order-17"
    with pytest.raises(Conflict) as info:
        client.submit("echo", {"message": "another body"}, idempotency_key="order-17")
    assert info.value.slug == "idempotency-conflict"
    generated = client.submit("echo", {"message": "once"})
    assert generated.idempotency_key and generated.idempotency_key != "order-17" and generated.id != first.id


def test_submit_many_chunks_and_reports_each_item(platform: Platform) -> None:
    transport = CountingTransport()
    with Client(platform.url, api_key=platform.key, transport=transport) as client:
        jobs: list[Any] = [NewJob(PRIMES, PrimesInput(lowest=1, highest=n)) for n in (2, 3, 5)]
        jobs.append({"type": "primes", "payload": {"lowest": 9, "highest": 1}})  # refused by the API
        jobs.append(NewJob("echo", {"message": "hi"}, queue="high"))
        result = client.submit_many(jobs, chunk_size=2)
        assert transport.requests == ["POST /v1/jobs:batch"] * 3
        assert (result.accepted, result.rejected) == (4, 1)
        assert [item.index for item in result.items] == [0, 1, 2, 3, 4]
        bad = result.items[3]
        assert not bad.ok and isinstance(bad.error, InvalidRequest) and bad.error.status == 422
        assert "payload" in bad.error.field_errors
        ids = [item.id for item in result.items if item.ok]
        assert len(set(ids)) == 4
        assert [client.wait(i, timeout=30, result_model=PrimesResult).result.count  # type: ignore[union-attr]
                for i in ids[:3]] == [1, 2, 3]


def test_list_follows_cursors_with_filters(client: Client) -> None:
    submitted = {client.submit("counted", {}).id for _ in range(5)}
    for job_id in submitted:
        client.wait(job_id, timeout=30)
    page = client.list_page(type="counted", limit=2)
    assert len(page.items) == 2 and page.next_cursor
    listed = [job.id for job in client.list(type="counted", page_size=2)]
    assert set(listed) == submitted and len(listed) == 5
    assert len(list(client.list(type="counted", page_size=2, limit=3))) == 3
    assert {j.id for j in client.list(type="counted", status="finished")} == submitted
    assert list(client.list(type="counted", status="failed")) == []


def test_catalog_queues_and_health(client: Client) -> None:
    names = {t.name for t in client.job_types()}
    assert {"primes", "echo", "sleep", "gated"} <= names
    primes = client.job_type("primes")
    assert primes.input_schema["properties"]["lowest"]["type"] == "integer" and primes.queue == "default"
    with pytest.raises(NotFound):
        client.job_type("no-such-type")
    queues = {q.name: q for q in client.queues()}
    assert {"default", "high", "low"} <= set(queues) and queues["default"].workers >= 1
    assert client.health() == {"alive": True, "ready": True, "detail": ""}


def test_errors_carry_the_problem_document(platform: Platform) -> None:
    transport = CountingTransport()
    with Client(platform.url, api_key=platform.key, transport=transport) as client:
        with pytest.raises(NotFound) as missing:
            client.get("0123456789abcdef0123456789abcdef")
        assert missing.value.status == 404 and missing.value.type == "urn:jobengine:problem:not-found"
        assert missing.value.title == "Not Found" and "was not found" in missing.value.detail
        with pytest.raises(InvalidRequest) as invalid:
            client.submit("primes", {"lowest": 1, "highest": 2}, queue="nowhere")
        assert invalid.value.status == 422 and "queue" in invalid.value.field_errors
        with pytest.raises(InvalidRequest) as unknown:
            client.submit("no-such-type", {})
        assert "type" in unknown.value.field_errors
        assert len(transport.requests) == 3  # a 4xx is never retried
    with Client(platform.url, api_key="nobody.wrong-secret") as client, pytest.raises(Unauthorized) as denied:
        client.get("x")
    assert denied.value.status == 401 and denied.value.slug == "unauthorized"
    with Client(platform.url, api_key=USER_KEY) as client:
        with pytest.raises(Forbidden):
            client.queues()  # admin scope
        assert client.job_types()  # any valid key
