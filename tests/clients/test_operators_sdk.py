"""The SDK's operator and schedule calls (sync and async) against the real API and worker: workers, queue pause
and resume (claims stop and start again), bulk operations followed to their end, schedules firing jobs, and the
retry rules of the calls the server does not make idempotent (through a proxy that loses answers)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobengine_client import (AsyncClient, Client, Conflict, InvalidRequest, NotFound, Operation, TransportError,
                              Unauthorized)
from tests.clients.conftest import USER_KEY, Platform
from tests.clients.proxy import DroppingProxy
from tests.support.wait import wait_until


def _failed_echoes(client: Client, count: int, queue: str = "default") -> list[str]:
    ids = [client.submit("echo", {"message": "x", "fail": True}, queue=queue, retry={"max_retries": 0}).id
           for _ in range(count)]
    for ident in ids:
        assert client.wait(ident, timeout=30).status == "failed"
    return ids


def test_workers_and_queue_pause_stops_claims(platform: Platform) -> None:
    with Client(platform.url, api_key=platform.key) as client:
        worker = wait_until(lambda: next((w for w in client.workers() if w.name == platform.worker.name), None))
        assert "default" in worker.queues and worker.state in ("idle", "busy")
        assert worker.heartbeat_age_seconds is not None and worker.rss_bytes and worker.pid

        paused = client.pause_queue("low")
        assert (paused.name, paused.paused, paused.refuse_submits) == ("low", True, False)
        assert client.pause_queue("low").paused  # idempotent: pausing again keeps it paused
        waiting = client.submit("echo", {"message": "waits"}, queue="low")
        control = client.wait(client.submit("echo", {"message": "runs"}, queue="default"), timeout=30)
        assert control.ok  # the worker claims from default meanwhile...
        time.sleep(0.5)  # ...and several of its claim rounds since passed over low
        assert client.get(waiting).status == "queued"
        low = next(q for q in client.queues() if q.name == "low")
        assert low.paused and low.depth == 1 and low.paused_since is not None

        assert client.pause_queue("low", refuse_submits=True).refuse_submits
        with pytest.raises(Conflict) as refused:
            client.submit("echo", {"message": "refused"}, queue="low")
        assert refused.value.slug == "queue-paused"
        resumed = client.resume_queue("low")
        assert not resumed.paused and client.resume_queue("low").paused is False
        assert client.wait(waiting, timeout=30).ok  # claimed once resumed
        with pytest.raises(NotFound):
            client.pause_queue("nope")


def test_bulk_operations_followed_to_their_end(platform: Platform) -> None:
    with Client(platform.url, api_key=platform.key) as client:
        failed = _failed_echoes(client, 3, queue="high")
        seen: list[Operation] = []
        op = client.start_operation("retry", type="echo", queue="high")
        assert op.action == "retry" and op.filter == {"type": "echo", "queue": "high"}
        done = client.wait_operation(op, timeout=30, on_progress=seen.append, poll_interval=0.1)
        assert (done.state, done.counts.matched, done.progress) == ("done", 3, 1.0) and seen[-1].done
        for ident in failed:  # requeued, and failed again (the payload fails on purpose)
            job = client.wait(ident, timeout=30)
            assert (job.status, job.attempts) == ("failed", 2)

        later = [client.submit("counted", {"seconds": 0}, delay_seconds=300).id for _ in range(2)]
        canceled = client.wait_operation(client.start_operation("cancel", type="counted"), timeout=30)
        assert canceled.counts.matched == 2 and all(client.get(i).status == "canceled" for i in later)

        # delete: ended jobs created inside the window, of the status given
        deleted = client.wait_operation(client.start_operation(
            "delete", type="echo", status="failed", created_after=datetime.now(timezone.utc) - timedelta(hours=1),
            created_before=datetime.now(timezone.utc) + timedelta(minutes=1)), timeout=30)
        assert deleted.counts.matched == 3
        with pytest.raises(NotFound):
            client.get(failed[0])

        listed = {o.id: o for o in client.operations()}
        assert {op.id, canceled.id, deleted.id} <= set(listed) and listed[op.id].state == "done"
        assert client.operation(op.id).counts.matched == 3
        assert client.cancel_operation(op.id).state == "done"  # an ended one is answered as it is
        with pytest.raises(InvalidRequest) as bad:
            client.start_operation("retry", status="failed")
        assert "filter.status" in bad.value.field_errors
        with pytest.raises(NotFound):
            client.operation("0" * 32)


def test_schedules_fire_jobs(platform: Platform) -> None:
    with Client(platform.url, api_key=platform.key) as client:
        made = client.create_schedule("sdk-every-second", "counted", {"seconds": 0}, interval_seconds=1,
                                      overlap="skip")
        assert (made.state, made.interval_seconds, made.overlap) == ("active", 1, "skip")
        with pytest.raises(Conflict):
            client.create_schedule("sdk-every-second", "counted", {}, interval_seconds=1)
        with pytest.raises(InvalidRequest) as bad:
            client.create_schedule("sdk-bad", "primes", {"lowest": "x", "highest": 3}, cron="0 3 * * *")
        assert "payload.lowest" in bad.value.field_errors

        fired = wait_until(lambda: [r for r in client.schedule("sdk-every-second").runs if r.job_id], timeout=15)
        assert client.wait(fired[0].job_id or "", timeout=30).ok  # a real job, run by the worker
        detail = client.schedule("sdk-every-second", next_runs=3)
        assert len(detail.next_runs) == 3 and detail.fires >= 1

        nightly = client.create_schedule("sdk-nightly", "echo", {"message": "n"}, cron="0 3 * * *",
                                         timezone="Europe/Berlin", catch_up="latest")
        assert nightly.cron == "0 3 * * *" and nightly.timezone == "Europe/Berlin"
        assert client.schedule("sdk-nightly").next_runs[0].hour in (1, 2)  # 03:00 Berlin in UTC
        assert client.update_schedule("sdk-nightly", interval_seconds=3600).cron is None
        assert client.pause_schedule("sdk-nightly").state == "paused"
        assert client.resume_schedule("sdk-nightly").state == "active"
        triggered = client.trigger_schedule("sdk-nightly")
        assert client.wait(triggered.id, timeout=30).result["message"] == "n"
        assert [s.name for s in client.schedules(page_size=1)] == ["sdk-every-second", "sdk-nightly"]
        assert client.schedules_page(limit=1).next_cursor

        for name in ("sdk-every-second", "sdk-nightly"):
            client.delete_schedule(name)
        with pytest.raises(NotFound):
            client.delete_schedule("sdk-nightly")


def test_not_idempotent_calls_are_not_sent_twice(platform: Platform) -> None:
    """A lost answer: pause, delete and revoke are retried (their replays are successes); an operation's create
    and a schedule's trigger are not sent again, so each made one thing."""
    proxy = DroppingProxy(int(platform.url.rsplit(":", 1)[1]))
    try:
        with Client(proxy.url, api_key=platform.key) as client, Client(platform.url, api_key=platform.key) as direct:
            proxy.drop_next_answers(1)
            assert client.pause_queue("low").paused and proxy.dropped == 1
            assert direct.resume_queue("low").paused is False

            before = {o.id for o in direct.operations()}
            proxy.drop_next_answers(1)
            with pytest.raises(TransportError, match="not sent again"):
                client.start_operation("retry", type="nothing-matches")
            assert len({o.id for o in direct.operations()} - before) == 1  # the lost try's, and no second

            direct.create_schedule("lossy", "echo", {"message": "t"}, cron="0 3 * * *")
            proxy.drop_next_answers(1)
            with pytest.raises(TransportError):
                client.trigger_schedule("lossy")
            runs = wait_until(lambda: direct.schedule("lossy").runs)
            assert [r.outcome for r in runs] == ["triggered"]  # one job
            proxy.drop_next_answers(1)
            client.delete_schedule("lossy")  # the retry's 404 is the lost try's delete
            assert proxy.dropped == 4
            with pytest.raises(NotFound):
                direct.schedule("lossy")

        with Client(proxy.url, api_key=USER_KEY) as user:
            proxy.drop_next_answers(1)
            user.revoke_key()  # the retry's 401 is the lost try's revocation
            with pytest.raises(Unauthorized):
                user.job_types()
    finally:
        proxy.close()


def test_async_operator_calls(platform: Platform) -> None:
    async def scenario() -> None:
        async with AsyncClient(platform.url, api_key=platform.key) as client:
            assert platform.worker.name in {w.name for w in await client.workers()}
            assert (await client.pause_queue("custom", refuse_submits=True)).refuse_submits
            assert next(q for q in await client.queues() if q.name == "custom").paused
            assert not (await client.resume_queue("custom")).paused

            for _ in range(2):
                accepted = await client.submit("echo", {"fail": True}, queue="low", retry={"max_retries": 0})
                assert (await client.wait(accepted, timeout=30)).status == "failed"
            reads: list[Any] = []

            async def on_progress(op: Operation) -> None:
                reads.append(op.state)

            op = await client.start_operation("retry", queue="low", type="echo")
            done = await client.wait_operation(op, timeout=30, on_progress=on_progress, poll_interval=0.1)
            assert (done.state, done.counts.matched) == ("done", 2) and reads[-1] == "done"
            assert op.id in {o.id for o in await client.operations()}
            assert (await client.operation(op)).counts.matched == 2
            assert (await client.cancel_operation(op)).state == "done"

            made = await client.create_schedule_spec({"name": "aio", "type": "counted", "payload": {"seconds": 0},
                                                      "interval_seconds": 1})
            assert made.name == "aio"
            fired = await client.trigger_schedule("aio")
            assert (await client.wait(fired.id, timeout=30)).ok
            assert (await client.update_schedule("aio", interval_seconds=60)).interval_seconds == 60
            assert (await client.pause_schedule("aio")).state == "paused"
            assert (await client.resume_schedule("aio")).state == "active"
            assert "aio" in [s.name async for s in client.schedules()]
            assert (await client.schedules_page()).items
            assert any(r.outcome == "triggered" for r in (await client.schedule("aio")).runs)
            await client.delete_schedule("aio")
            with pytest.raises(NotFound):
                await client.schedule("aio")

    asyncio.run(scenario())
