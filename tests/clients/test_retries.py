"""Retries against the real services: a Redis outage ends in success, an answer lost on the way is not a second
job, a 4xx is never retried. (A module of its own: it stops the session's Redis.)"""

from __future__ import annotations

import threading
import time

import pytest

from jobengine.redis_conn import free_port
from jobengine_client import Client, InvalidRequest, RetryPolicy, TransportError
from tests.clients.conftest import CountingTransport, Platform
from tests.clients.proxy import DroppingProxy
from tests.support.gated import open_gate


@pytest.fixture
def proxy(platform: Platform) -> DroppingProxy:
    p = DroppingProxy(int(platform.url.rsplit(":", 1)[1]))
    yield p  # type: ignore[misc]
    p.close()


def test_idempotent_resubmit_after_a_dropped_connection(platform: Platform, proxy: DroppingProxy) -> None:
    with Client(proxy.url, api_key=platform.key) as client, Client(platform.url, api_key=platform.key) as direct:
        proxy.drop_next_answers(1)
        accepted = client.submit("wordcount", {"text": "a b a"})
        assert proxy.dropped == 1 and proxy.connections == 2  # the first answer was lost; a new connection retried
        assert accepted.replayed  # the retry carried the same Idempotency-Key: the API returned the first job
        jobs = list(direct.list(type="wordcount"))
        assert [j.id for j in jobs] == [accepted.id]  # the job exists once
        assert direct.wait(accepted, timeout=30).result == {"words": 3, "top": [["a", 2], ["b", 1]]}


def test_cancel_and_retry_whose_answer_was_lost(platform: Platform, proxy: DroppingProxy) -> None:
    with Client(proxy.url, api_key=platform.key) as client:
        later = client.submit("gated", {"redis_url": platform.redis_url, "value": "once"}, delay_seconds=300)
        proxy.drop_next_answers(1)
        assert client.cancel(later).status == "canceled"  # the retry's 409 "already canceled" is the lost answer's
        proxy.drop_next_answers(1)
        assert client.retry(later).status in ("queued", "started")  # likewise: requeued once
        assert proxy.dropped == 2
        with platform.redis() as r:
            open_gate(r, later.id)
        job = client.wait(later, timeout=30)
        assert (job.status, job.attempts) == ("finished", 1)


def test_requests_retried_through_a_redis_outage(platform: Platform) -> None:
    transport = CountingTransport()
    with Client(platform.url, api_key=platform.key, transport=transport,
                retries=RetryPolicy(attempts=20, deadline=30)) as client:
        before = client.submit("counted", {"seconds": 0})
        platform.redis_server.stop()
        restart = threading.Timer(1.5, platform.redis_server.start)
        restart.start()
        try:
            started = time.monotonic()
            accepted = client.submit("counted", {"seconds": 0})  # 503 + Retry-After until Redis is back
            assert time.monotonic() - started >= 1.0
            job = client.wait(accepted, timeout=30)
        finally:
            restart.join()
        assert job.ok
        submits = [r for r in transport.requests if r == "POST /v1/jobs"]
        assert len(submits) >= 2  # retried at least once, and the job is there once
        assert [j.id for j in client.list(type="counted")] == [accepted.id, before.id]


def test_client_errors_are_not_retried(platform: Platform) -> None:
    transport = CountingTransport()
    with Client(platform.url, api_key=platform.key, transport=transport) as client:
        with pytest.raises(InvalidRequest):
            client.submit("primes", {"lowest": 3})
        with pytest.raises(InvalidRequest):
            client.list_page(status="nope")
    assert len(transport.requests) == 2


def test_unreachable_api_ends_in_a_transport_error(platform: Platform) -> None:
    policy = RetryPolicy(attempts=3, backoff=0.01)
    transport = CountingTransport()
    with Client(f"http://127.0.0.1:{free_port()}", api_key=platform.key, retries=policy,
                transport=transport) as client:
        with pytest.raises(TransportError) as info:
            client.submit("counted", {})
    assert "after 3 tries" in str(info.value) and len(transport.requests) == 3
