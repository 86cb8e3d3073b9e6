"""Schedules fired by real processes: two API processes (each runs the firing loop) and two workers, with
API processes SIGKILLed and restarted across ticks and Redis restarted: every tick in the window made exactly
one job, none twice. Then the catch-up policy across a full downtime, and the overlap policies with a job
longer than its interval. Each job's meta names its schedule and tick, which is how the jobs are counted."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from datetime import datetime
from typing import Any

import redis

from jobengine.jobdata import parse_ts
from jobengine.redis_conn import EmbeddedRedis
from tests.support.wait import wait_until

FAST = {"JOBENGINE_SCHEDULER_INTERVAL_SECONDS": "0.2", "JOBENGINE_SCHEDULER_LEASE_SECONDS": "2"}


def scheduled_jobs(r: redis.Redis, name: str) -> list[dict[str, Any]]:
    """The jobs a schedule made: their ids, ticks and statuses (from the jobs' own hashes)."""
    jobs = []
    for key in r.scan_iter("rq:job:*", count=1000):
        meta, status, created, started, ended = r.hmget(key, "meta", "status", "created_at", "started_at", "ended_at")
        doc = json.loads(meta or b"{}")
        if doc.get("schedule") == name:
            jobs.append({"id": key.decode()[7:], "tick": doc["schedule_tick"], "status": (status or b"").decode(),
                         "created_at": parse_ts(created), "started_at": parse_ts(started), "ended_at": parse_ts(ended)})
    return sorted(jobs, key=lambda j: j["tick"])


def next_tick(r: redis.Redis, name: str) -> int:
    return int(r.hget(f"jobengine:schedule:default:{name}", "next") or 0)


def test_every_tick_fires_once_across_api_kills_and_a_redis_restart(
        start_api, start_worker, r: redis.Redis, redis_server: EmbeddedRedis) -> None:
    apis = [start_api(**FAST), start_api(**FAST)]
    start_worker()
    start_worker()
    resp = apis[0].client.post("/v1/schedules", json={"name": "every-second", "type": "counted",
                                                      "payload": {}, "interval_seconds": 1})
    assert resp.status_code == 201, resp.text
    first = next_tick(r, "every-second")

    def wait_ticks(n: int) -> None:  # until n more ticks have been fired (whoever fires them)
        target = next_tick(r, "every-second") + n
        wait_until(lambda: next_tick(r, "every-second") >= target, timeout=20, interval=0.1,
                   message=f"{n} more ticks")

    wait_ticks(3)
    apis[0].proc.signal(signal.SIGKILL)  # mid-loop: a lease it held runs out, the other process goes on
    wait_ticks(2)
    apis[0] = start_api(**FAST)
    apis[1].proc.signal(signal.SIGKILL)
    wait_ticks(2)
    apis[1] = start_api(**FAST)
    wait_ticks(2)
    redis_server.stop()  # graceful: the AOF is written whole; both APIs and workers reconnect
    time.sleep(1.5)  # ticks fall into the outage
    redis_server.start()
    wait_ticks(3)
    apis[0].proc.signal(signal.SIGKILL)
    wait_ticks(2)

    assert apis[1].client.post("/v1/schedules/every-second:pause").status_code == 200
    last = next_tick(r, "every-second")  # paused: next is the first tick not fired
    jobs = scheduled_jobs(r, "every-second")
    per_tick = Counter(j["tick"] for j in jobs)
    assert [t for t, n in per_tick.items() if n > 1] == [], "a tick fired twice"
    assert sorted(per_tick) == list(range(first, last)), f"ticks without a job: " \
        f"{sorted(set(range(first, last)) - set(per_tick))}"
    assert last - first >= 14
    # and the workers ran them all
    wait_until(lambda: all(j["status"] == "finished" for j in scheduled_jobs(r, "every-second")), timeout=20,
               interval=0.2, message="every scheduled job finished")


def test_catch_up_after_a_full_downtime_all_fires_the_missed_ticks_skip_does_not(
        start_api, r: redis.Redis) -> None:
    api = start_api(**FAST)
    for policy in ("all", "skip"):
        resp = api.client.post("/v1/schedules", json={"name": f"catch-{policy}", "type": "counted", "payload": {},
                                                     "interval_seconds": 1, "catch_up": policy,
                                                     "misfire_grace_seconds": 1})
        assert resp.status_code == 201, resp.text
    first = {p: next_tick(r, f"catch-{p}") for p in ("all", "skip")}
    wait_until(lambda: next_tick(r, "catch-skip") >= first["skip"] + 2, timeout=10, message="ticks before")
    api.proc.signal(signal.SIGKILL)  # the only API: no process fires anything now
    down_from = time.time()
    time.sleep(5)
    back = start_api(**FAST)
    up_at = time.time()
    for policy in ("all", "skip"):
        wait_until(lambda p=policy: next_tick(r, f"catch-{p}") > up_at + 2, timeout=15, interval=0.1,
                   message=f"catch-{policy} caught up")
    assert back.client.post("/v1/schedules/catch-all:pause").status_code == 200
    assert back.client.post("/v1/schedules/catch-skip:pause").status_code == 200

    all_ticks = Counter(j["tick"] for j in scheduled_jobs(r, "catch-all"))
    assert max(all_ticks.values()) == 1
    assert sorted(all_ticks) == list(range(first["all"], next_tick(r, "catch-all")))  # the downtime's ticks too

    skip_ticks = Counter(j["tick"] for j in scheduled_jobs(r, "catch-skip"))
    assert max(skip_ticks.values()) == 1
    missing = sorted(set(range(first["skip"], next_tick(r, "catch-skip"))) - set(skip_ticks))
    # the ticks more than the grace (1 s) late when the API came back were skipped, and only those
    assert len(missing) >= 3 and all(down_from - 1 <= t <= up_at for t in missing), (missing, down_from, up_at)
    detail = back.client.get("/v1/schedules/catch-skip").json()
    assert detail["skipped"] == len(missing)
    assert sum(run.get("count") or 0 for run in detail["runs"] if run["outcome"] == "skipped_missed") == len(missing)


def test_overlap_policies_with_a_job_longer_than_its_interval(start_api, start_worker, r: redis.Redis) -> None:
    api = start_api(**FAST)
    for _ in range(3):
        start_worker()
    for policy in ("allow", "skip", "queue_one"):
        resp = api.client.post("/v1/schedules", json={"name": f"slow-{policy}", "type": "counted",
                                                     "payload": {"seconds": 1.6}, "interval_seconds": 1,
                                                     "overlap": policy})
        assert resp.status_code == 201, resp.text
    first = next_tick(r, "slow-allow")
    wait_until(lambda: next_tick(r, "slow-allow") >= first + 6, timeout=15, interval=0.1, message="six ticks")
    for policy in ("allow", "skip", "queue_one"):
        assert api.client.post(f"/v1/schedules/slow-{policy}:pause").status_code == 200

    def ended() -> bool:
        return all(j["status"] in ("finished", "failed") for p in ("allow", "skip", "queue_one")
                   for j in scheduled_jobs(r, f"slow-{p}"))

    wait_until(ended, timeout=30, interval=0.2, message="the scheduled jobs to end")

    allow = scheduled_jobs(r, "slow-allow")  # one job per tick, whether the previous ended or not
    assert [j["tick"] for j in allow] == list(range(allow[0]["tick"], allow[0]["tick"] + len(allow)))
    assert len(allow) >= 6

    def never_two_at_once(jobs: list[dict[str, Any]]) -> None:
        """Each job made once the one before had ended: fire.lua saw it ended when it wrote the next (whose
        created_at is from when it was built, just before), and it never ran beside it."""
        for before, after in zip(jobs, jobs[1:]):
            assert after["started_at"] >= before["ended_at"], (before, after)
            assert (after["created_at"] - before["ended_at"]).total_seconds() > -0.5, (before, after)

    skip = scheduled_jobs(r, "slow-skip")
    never_two_at_once(skip)
    runs = api.client.get("/v1/schedules/slow-skip", params={"next": 0}).json()["runs"]
    assert any(run["outcome"] == "skipped_overlap" for run in runs)
    assert 2 <= len(skip) < len(allow)

    queue_one = scheduled_jobs(r, "slow-queue_one")
    never_two_at_once(queue_one)
    runs = api.client.get("/v1/schedules/slow-queue_one", params={"next": 0}).json()["runs"]
    buffered = {int(datetime.fromisoformat(run["tick"]).timestamp()) for run in runs if run["outcome"] == "buffered"}
    assert buffered, runs
    # buffered ticks were fired after all (written once the run before ended: never_two_at_once), each once;
    # only a tick still buffered when the schedule was paused is dropped
    fired = [j["tick"] for j in queue_one]
    assert len(set(fired)) == len(fired)
    assert len(buffered - set(fired)) <= 1 and buffered & set(fired), (buffered, fired)
