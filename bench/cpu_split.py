"""Where a job's CPU goes: redis-server, supervisors and executors, while W workers drain N add jobs.

    .venv/bin/python -m bench.cpu_split 1 30000
    .venv/bin/python -m bench.cpu_split 2 30000 JOBENGINE_BATCH_SIZE=64   # extra settings for the workers
    .venv/bin/python -m bench.cpu_split 2 30000 --awake   # diagnosis: keep every CPU from idling (below)

psutil CPU times (user + system) of each process between 5 % and 95 % of the jobs done, divided by the
jobs done in that window; "cores busy" is their sum over the window's wall time. "Waiting for a CPU" is
the time the same processes were ready to run but queued behind another task (the kernel's run-queue
delay, /proc/<pid>/task/*/schedstat), in cores: with two workers on this 2-vCPU VM it is about as large
as the idle core the workers leave (see docs/benchmarks.md). Fresh redis-server on 127.0.0.1 (the
harness's), stopped at the end. Run it on a quiet machine: every other process takes from the figures.

--awake runs one busy loop per CPU at SCHED_IDLE priority (the kernel runs it only when nothing else
wants that CPU, and preempts it at once), so no CPU ever halts. A diagnosis, not a setting to run with:
it burns every idle cycle. When it lifts the two-worker figure, the time lost was in waking tasks on a
halted vCPU, not in jobengine.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import redis

from bench.run import fresh_redis, processes, start_jobengine_worker, submit_backlog


def cpu_seconds(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def runqueue_seconds(procs: list[psutil.Process]) -> float:
    """Time the processes' threads spent runnable but not running (schedstat's second field, ns)."""
    total = 0
    for p in procs:
        for task in os.listdir(f"/proc/{p.pid}/task"):
            with open(f"/proc/{p.pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[1])
    return total / 1e9


SPIN = "import os; os.sched_setaffinity(0, {%d}); os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n" \
       "while True: pass"


@contextlib.contextmanager
def cpus_kept_awake(on: bool) -> Iterator[None]:
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN % cpu]) for cpu in sorted(os.sched_getaffinity(0))
                if on]
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--awake"]
    workers = int(args[0]) if args else 1
    n = int(args[1]) if len(args) > 1 else 30_000
    for setting in args[2:]:
        key, _, value = setting.partition("=")
        os.environ[key] = value  # start_jobengine_worker passes the environment on
    with cpus_kept_awake("--awake" in sys.argv), fresh_redis() as server, processes() as procs:
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
        everyone = [p for v in groups.values() for p in v]
        before = {k: cpu_seconds(v) for k, v in groups.items()}
        queued0 = runqueue_seconds(everyone)
        done0, t0 = done(), time.monotonic()
        while done() < n * 0.95 and time.monotonic() < deadline:
            time.sleep(0.005)
        after = {k: cpu_seconds(v) for k, v in groups.items()}
        queued = runqueue_seconds(everyone) - queued0
        jobs, wall = done() - done0, time.monotonic() - t0
    per_job = {k: (after[k] - before[k]) / jobs * 1e6 for k in groups}
    print(f"{workers} worker(s): {jobs / wall:,.0f} jobs/s, wall {wall / jobs * 1e6:.0f} us a job; CPU a job: "
          + ", ".join(f"{k} {v:.1f} us" for k, v in per_job.items())
          + f", total {sum(per_job.values()):.0f} us; cores busy {sum(after[k] - before[k] for k in groups) / wall:.2f}"
          + f", waiting for a CPU {queued / wall:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
