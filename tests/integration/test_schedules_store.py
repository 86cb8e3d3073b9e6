"""The exactly-once mechanism itself, against a real Redis and without processes: two firing loops that
computed the same tick (the first one's lease ran out while it was slow), and a change landing between a
loop's read and its fire. fire.lua must refuse the stale step: one job per tick."""

from __future__ import annotations

import asyncio

import orjson
import redis
import redis.asyncio as aioredis

from jobengine import keys, scripts
from jobengine.catalog import declared_queues, discover
from jobengine.schedules.loop import FiringLoop, LoopConfig
from jobengine.schedules.spec import ScheduleSpec
from jobengine.schedules.store import ScheduleStore
from jobengine.schedules.ticks import Rule
from jobengine.settings import Settings
from jobengine_api.models import Submissions
from jobengine_api.scheduling import Schedules

SPEC = ScheduleSpec(name="s", type="primes", payload={"lowest": 1, "highest": 5}, interval_seconds=60)


def service(url: str) -> Schedules:
    settings = Settings(redis_url=url)
    catalog = discover()
    client = aioredis.Redis.from_url(url)
    return Schedules(settings, catalog, Submissions.build(catalog), declared_queues(catalog, settings),
                     ScheduleStore(client))


def jobs_of(r: redis.Redis) -> list[dict]:
    return [orjson.loads(r.hget(k, "meta")) for k in r.scan_iter("rq:job:*")]


def test_two_loops_that_computed_the_same_tick_write_one_job(redis_url: str, r: redis.Redis) -> None:
    async def scenario() -> list[tuple[int, str]]:
        svc = service(redis_url)
        assert await svc.create("default", SPEC) == "created"
        member = keys.schedule_member("default", "s")
        tick = int(r.hget(keys.schedule(member), "next"))
        a = FiringLoop(svc.store, svc.build_job, LoopConfig(lease=5))
        b = FiringLoop(svc.store, svc.build_job, LoopConfig(lease=5))
        # A takes it at the tick and reads it, then stalls; its lease runs out; B takes it and reads it too
        assert (await svc.store.take(tick + 0.1, 5, 10))[0] == [member]
        (row_a,) = await svc.store.read([member])
        assert (await svc.store.take(tick + 6, 5, 10))[0] == [member]
        (row_b,) = await svc.store.read([member])
        calls = []
        for loop, row in ((b, row_b), (a, row_a)):  # B fires first, then A wakes up
            spec = ScheduleSpec.model_validate_json(row.fields["spec"])
            call, step, _ = loop._plan(row, spec, Rule.of(spec, row.created_at), tick + 6.5)
            assert step.kind == "fire" and step.tick == tick
            calls.append(call)
        replies = [await svc.store.fire(*call) for call in calls]
        await svc.store.redis.aclose()
        return replies

    replies = asyncio.run(scenario())
    assert [code for code, _ in replies] == [scripts.FIRE_WRITTEN, scripts.FIRE_STALE]
    jobs = jobs_of(r)
    assert len(jobs) == 1 and jobs[0]["schedule"] == "s"


def test_a_change_between_read_and_fire_refuses_the_fire(redis_url: str, r: redis.Redis) -> None:
    async def scenario() -> tuple[int, str]:
        svc = service(redis_url)
        assert await svc.create("default", SPEC) == "created"
        member = keys.schedule_member("default", "s")
        tick = int(r.hget(keys.schedule(member), "next"))
        loop = FiringLoop(svc.store, svc.build_job, LoopConfig())
        await svc.store.take(tick + 0.1, 5, 10)
        (row,) = await svc.store.read([member])
        spec = ScheduleSpec.model_validate_json(row.fields["spec"])
        call, _, _ = loop._plan(row, spec, Rule.of(spec, row.created_at), tick + 0.2)
        assert await svc.replace(row, spec.model_copy(update={"paused": True}))  # a pause lands meanwhile
        reply = await svc.store.fire(*call)
        await svc.store.redis.aclose()
        return reply

    code, _ = asyncio.run(scenario())
    assert code == scripts.FIRE_STALE
    assert jobs_of(r) == []
    assert r.zscore(keys.SCHEDULES_DUE, "default:s") is None  # paused: not due


def test_the_loop_fires_a_due_schedule_once_and_reschedules_it(redis_url: str, r: redis.Redis) -> None:
    async def scenario() -> None:
        svc = service(redis_url)
        assert await svc.create("default", SPEC) == "created"
        member = keys.schedule_member("default", "s")
        tick = int(r.hget(keys.schedule(member), "next"))
        clock = [tick + 0.5]
        loop = FiringLoop(svc.store, svc.build_job, LoopConfig(), clock=lambda: clock[0])
        assert await loop.step() == 0.0  # fired; look again at once
        wait = await loop.step()  # nothing due now: sleep until the next tick, at most the interval
        assert 0 < wait <= 1.0
        assert int(r.hget(keys.schedule(member), "next")) == tick + 60
        assert r.zscore(keys.SCHEDULES_DUE, member) == tick + 60
        await svc.store.redis.aclose()

    asyncio.run(scenario())
    (meta,) = jobs_of(r)
    assert meta["schedule"] == "s" and meta["tenant"] == "default"
