"""Where a job's CPU goes: redis-server, supervisors and executors, while W workers drain N add jobs.

    .venv/bin/python -m bench.cpu_split 1 30000
    .venv/bin/python -m bench.cpu_split 2 30000 JOBENGINE_BATCH_SIZE=64   # extra settings for the workers

psutil CPU times (user + system) of each process between 5 % and 95 % of the jobs done, divided by the
jobs done in that window; "cores busy" is their sum over the window's wall time. Fresh redis-server on
127.0.0.1 (the harness's), stopped at the end. Run it on a quiet machine: every other process takes
from the figures.
"""

from __future__ import annotations

import os
import sys
import time

import psutil
import redis

from bench.run import fresh_redis, processes, start_jobengine_worker, submit_backlog


def cpu_seconds(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def main() -> int:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30_000
    for setting in sys.argv[3:]:
        key, _, value = setting.partition("=")
        os.environ[key] = value  # start_jobengine_worker passes the environment on
    with fresh_redis() as server, processes() as procs:
        client = redis.Redis.from_url(server.url)
        submit_backlog(client, n)
        procs += [start_jobengine_worker(server.url, f"split-{k}") for k in range(workers)]
        done = lambda: client.zcard("rq:finished:default")  # noqa: E731
        deadline = time.monotonic() + 300
        while done() < n // 20 and time.monotonic() < deadline:
            time.sleep(0.005)
        groups = {"redis": [psutil.Process(client.info("server")["process_id"])], "supervisors": [],
                  "executors": []}
        for proc in procs:
            supervisor = psutil.Process(proc.pid)
            groups["supervisors"].append(supervisor)
            groups["executors"] += supervisor.children()
        before = {k: cpu_seconds(v) for k, v in groups.items()}
        done0, t0 = done(), time.monotonic()
        while done() < n * 0.95 and time.monotonic() < deadline:
            time.sleep(0.005)
        after = {k: cpu_seconds(v) for k, v in groups.items()}
        jobs, wall = done() - done0, time.monotonic() - t0
    per_job = {k: (after[k] - before[k]) / jobs * 1e6 for k in groups}
    print(f"{workers} worker(s): {jobs / wall:,.0f} jobs/s, wall {wall / jobs * 1e6:.0f} us a job; CPU a job: "
          + ", ".join(f"{k} {v:.1f} us" for k, v in per_job.items())
          + f", total {sum(per_job.values()):.0f} us; cores busy {sum(after[k] - before[k] for k in groups) / wall:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
