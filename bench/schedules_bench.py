"""Schedules: how fast a burst of due schedules is fired, and what the firing loop costs when nothing is due.

    .venv/bin/python -m bench.schedules_bench          # 10,000 due at once; 100,000 idle (make bench-schedules)
    .venv/bin/python -m bench.schedules_bench --burst 200 --idle 2000 --window 5  # a quick look

1. Burst: `--burst` schedules whose first tick is the same second T (interval schedules with start_at = T),
   `--apis` API processes running the firing loop (no worker: the jobs wait in their queue). Printed: the
   time from T until the last of them is enqueued (every schedule fired once), and the APIs' lateness
   histogram (jobengine_schedule_lateness_seconds).
2. Idle: `--idle` schedules due tomorrow, the same API processes; over `--window` seconds, Redis's CPU
   seconds per second (INFO cpu: used_cpu_sys + used_cpu_user) and each API process's (/proc/<pid>/stat),
   once with the firing loop on and once with JOBENGINE_SCHEDULER=false (the difference is the loop's cost).

Schedules are written with the API's own store (ScheduleStore.create: the same hash, sets and due zset).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import httpx
import redis
import redis.asyncio as aioredis

from bench.run import MAIN_PY, ROOT, env_for, fresh_redis, processes, wait_api
from jobengine.redis_conn import free_port
from jobengine.schedules.spec import ScheduleSpec
from jobengine.schedules.store import ScheduleStore

TICKS = os.sysconf("SC_CLK_TCK")


async def write_schedules(url: str, n: int, first_tick: int, interval: int, prefix: str) -> float:
    """n schedules of tenant 'default' whose first tick is first_tick; returns the seconds it took."""
    client = aioredis.Redis.from_url(url, max_connections=64)
    store = ScheduleStore(client)
    start = time.perf_counter()
    start_at = datetime.fromtimestamp(first_tick, timezone.utc)
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        spec = ScheduleSpec(name=f"{prefix}-{i}", type="sleep", payload={"seconds": 0}, interval_seconds=interval,
                            start_at=start_at)
        async with sem:
            result = await store.create("default", spec, next_tick=first_tick, score=first_tick, source="api",
                                        now=time.time(), max_per_tenant=0)
        assert result == "created", result

    for chunk in range(0, n, 5000):
        await asyncio.gather(*(one(i) for i in range(chunk, min(n, chunk + 5000))))
    await client.aclose()
    return time.perf_counter() - start


@contextmanager
def apis(url: str, count: int, **env: str) -> Iterator[list[tuple[subprocess.Popen, str]]]:
    """count API processes; yields (process, metrics URL)."""
    with processes() as procs:
        out = []
        for _ in range(count):
            port, metrics_port = free_port(), free_port()
            proc = subprocess.Popen([MAIN_PY, "-m", "jobengine_api"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL,
                                    env={**env_for(url, JOBENGINE_API_PORT=str(port),
                                                   JOBENGINE_MAX_SCHEDULES_PER_TENANT="0", **env),
                                         "JOBENGINE_API_METRICS_PORT": str(metrics_port)})
            procs.append(proc)
            wait_api(f"http://127.0.0.1:{port}")
            out.append((proc, f"http://127.0.0.1:{metrics_port}/metrics"))
        yield out


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def lateness(metrics_urls: list[str]) -> str:
    """The APIs' lateness histogram, summed: count, and the share within each of a few bounds."""
    buckets: dict[str, float] = {}
    for url in metrics_urls:
        for le, value in re.findall(r'jobengine_schedule_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)',
                                    httpx.get(url, timeout=10).text):
            buckets[le] = buckets.get(le, 0) + float(value)
    total = buckets.get("+Inf", 0)
    if not total:
        return "no fires"
    shown = [f"<= {le} s: {buckets[le] / total:.0%}" for le in ("0.1", "0.5", "1.0", "2.0", "5.0") if le in buckets]
    return f"{int(total)} fires; " + ", ".join(shown)


def burst(n: int, api_count: int) -> None:
    with fresh_redis() as server:
        client = redis.Redis.from_url(server.url)
        with apis(server.url, api_count) as running:
            tick = int(time.time()) + 5 + n // 2000  # far enough ahead to write them all first
            took = asyncio.run(write_schedules(server.url, n, tick, 86_400, "burst"))
            assert time.time() < tick, f"writing {n} schedules took {took:.1f} s: past their tick"
            print(f"burst: {n} schedules written in {took:.1f} s, all due at {tick}")
            while client.llen("rq:queue:default") < n:
                if time.time() > tick + 120:
                    raise SystemExit(f"burst: only {client.llen('rq:queue:default')} of {n} fired after 120 s")
                time.sleep(0.005)
            done = time.time()
            print(f"burst: {n} schedules due in the same second all fired within {done - tick:.2f} s "
                  f"of their tick ({api_count} API processes)")
            print(f"burst: lateness: {lateness([m for _, m in running])}")
            assert client.zcount("jobengine:schedules:due", "-inf", tick) == 0


def idle(n: int, api_count: int, window: float) -> None:
    with fresh_redis() as server:
        client = redis.Redis.from_url(server.url)
        took = asyncio.run(write_schedules(server.url, n, int(time.time()) + 86_400, 86_400, "idle"))
        print(f"idle: {n} schedules written in {took:.1f} s, none due for a day")
        for loop in ("true", "false"):
            with apis(server.url, api_count, JOBENGINE_SCHEDULER=loop) as running:
                time.sleep(2)  # past the start-up
                pids = [proc.pid for proc, _ in running]
                r0, a0, t0 = redis_cpu(client), [cpu_seconds(p) for p in pids], time.monotonic()
                time.sleep(window)
                r1, a1, t1 = redis_cpu(client), [cpu_seconds(p) for p in pids], time.monotonic()
                elapsed = t1 - t0
                per_api = ", ".join(f"{(b - a) / elapsed * 1000:.1f}" for a, b in zip(a0, a1))
                print(f"idle: firing loop {'on ' if loop == 'true' else 'off'}: Redis {(r1 - r0) / elapsed * 1000:.2f} "
                      f"ms CPU/s; API processes {per_api} ms CPU/s ({window:g} s window, {n} idle schedules)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=10_000, help="schedules due in the same second")
    parser.add_argument("--idle", type=int, default=100_000, help="schedules not due during the window")
    parser.add_argument("--apis", type=int, default=2, help="API processes running the firing loop")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of the idle measurement")
    args = parser.parse_args()
    if args.burst:
        burst(args.burst, args.apis)
    if args.idle:
        idle(args.idle, args.apis, args.window)


if __name__ == "__main__":
    main()
