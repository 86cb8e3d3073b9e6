"""AsyncClient against the real API and worker: the same calls as the sync client, on asyncio."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobengine.builtin_types import JOB_TYPES as BUILTIN_TYPES
from jobengine.builtin_types import PrimesInput, PrimesResult
from jobengine_client import AsyncClient, Conflict, InvalidRequest, Job, NewJob, NotFound, WaitTimeout
from tests.clients.conftest import Platform
from tests.support.gated import open_gate

PRIMES = next(t for t in BUILTIN_TYPES if t.name == "primes")


def test_async_client_calls(platform: Platform) -> None:
    async def scenario() -> None:
        async with AsyncClient(platform.url, api_key=platform.key) as client:
            accepted = await client.submit(PRIMES, PrimesInput(lowest=10, highest=20))
            job = await client.wait(accepted, timeout=30)
            assert isinstance(job.result, PrimesResult) and job.result.count == 4
            assert (await client.get(accepted.id)).result == {"primes": [11, 13, 17, 19], "count": 4}

            # progress through an async callback, while the test opens the job's gate
            gated = await client.submit("gated", {"redis_url": platform.redis_url, "progress": 0.25})
            seen: list[Job[Any]] = []

            async def on_progress(current: Job[Any]) -> None:
                seen.append(current)
                if current.progress and current.progress.fraction == 0.25:
                    with platform.redis() as r:
                        open_gate(r, gated.id)

            assert (await client.wait(gated, timeout=30, on_progress=on_progress, poll_interval=0.1)).ok
            assert seen[-1].status == "finished" and any(j.progress for j in seen)

            with pytest.raises(WaitTimeout):
                await client.wait(await client.submit("sleep", {"seconds": 0.6}), timeout=0.2)

            later = await client.submit("echo", {"message": "x"}, delay_seconds=300)
            assert (await client.cancel(later)).status == "canceled"
            with pytest.raises(Conflict):
                await client.cancel(later)
            assert (await client.retry(later)).status == "queued"

            batch = await client.submit_many([NewJob("counted", {}), {"type": "counted", "payload": {"seconds": -1}},
                                              NewJob("counted", {})], chunk_size=2)
            assert (batch.accepted, batch.rejected) == (2, 1)
            assert isinstance(batch.items[1].error, InvalidRequest)
            for item in batch.items:
                if item.ok:
                    await client.wait(item.id or "", timeout=30)
            listed = [j.id async for j in client.list(type="counted", page_size=1)]
            assert sorted(listed) == sorted(i.id for i in batch.items if i.ok)
            assert (await client.list_page(type="counted", limit=1)).next_cursor

            assert "primes" in {t.name for t in await client.job_types()}
            assert (await client.job_type("echo")).name == "echo"
            assert "default" in {q.name for q in await client.queues()}
            assert (await client.health())["ready"]
            with pytest.raises(NotFound):
                await client.get("0123456789abcdef0123456789abcdef")

    asyncio.run(scenario())
