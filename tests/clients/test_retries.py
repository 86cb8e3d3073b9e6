"""Retries against the real services: a Redis outage ends in success, an answer lost on the way is not a second
job, a 4xx is never retried. (A module of its own: it stops the session's Redis.)"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from jobengine.redis_conn import free_port
from jobengine_client import Client, InvalidRequest, NewJob, RetryPolicy, TransportError, WaitTimeout
from tests.clients.conftest import CountingTransport, Platform
from tests.conftest import Proc, service_env
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


def test_the_client_adapts_to_a_server_with_lower_limits(platform: Platform, tmp_path: Path) -> None:
    """A server with JOBENGINE_MAX_BATCH_SIZE=2 and JOBENGINE_MAX_WAIT_SECONDS=0.5: submit_many re-chunks, wait
    long-polls 0.5 s at a time."""
    port = free_port()
    env = service_env(platform.redis_url, JOBENGINE_API_PORT=str(port), JOBENGINE_API_METRICS_PORT=str(free_port()),
                      JOBENGINE_MAX_BATCH_SIZE="2", JOBENGINE_MAX_WAIT_SECONDS="0.5")
    api = Proc([sys.executable, "-m", "jobengine_api"], env, tmp_path / "small-api.log")
    try:
        url = f"http://127.0.0.1:{port}"
        api.wait_ready(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, "API")
        transport = CountingTransport()
        with Client(url, transport=transport) as client:  # (this API has authentication off)
            result = client.submit_many([NewJob("echo", {"message": str(n)}) for n in range(5)])
            assert result.accepted == 5 and all(item.idempotency_key for item in result.items)
            assert transport.requests == ["POST /v1/jobs:batch"] * 4  # 5 refused as too many, then 2 + 2 + 1
            gated = client.submit("gated", {"redis_url": platform.redis_url})
            transport.requests.clear()
            with pytest.raises(WaitTimeout):
                client.wait(gated, timeout=1.2)
            assert len(transport.requests) >= 3  # the 422 of the 25 s long poll, then polls of 0.5 s
            with platform.redis() as r:
                open_gate(r, gated.id)
            assert client.wait(gated, timeout=30).ok
    finally:
        api.stop()
