"""Where a 1M-job backlog slows the drain: Redis's CPU and the worker's a job, with an empty queue and
with 1,000,000 jobs waiting (the scale scenario of bench.run, measured with psutil CPU times).

    .venv/bin/python -m bench.scale_split            # 50,000 jobs drained each way, 1,000,000 waiting
    .venv/bin/python -m bench.scale_split 20000 200000

Fresh redis-server on 127.0.0.1 (the harness's), stopped at the end. Run it on a quiet machine.
"""

from __future__ import annotations

import sys
import time

import psutil
import redis

from bench.run import CHUNK, fresh_redis, keyspace_rehashing, processes, start_jobengine_worker, submit_backlog


def cpu(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def drain(client: redis.Redis, url: str, label: str, k: int) -> None:
    """One worker drains the next k jobs; CPU a job of Redis and of the worker between 5 % and 95 % of them."""
    base = client.zcard("rq:finished:default")
    done = lambda: client.zcard("rq:finished:default") - base  # noqa: E731
    server = psutil.Process(client.info("server")["process_id"])
    with processes() as procs:
        procs.append(start_jobengine_worker(url, f"scale-split-{label}"))
        while done() < k // 20:
            time.sleep(0.005)
        supervisor = psutil.Process(procs[0].pid)
        worker = [supervisor, *supervisor.children()]
        r0, w0, d0, t0 = cpu([server]), cpu(worker), done(), time.monotonic()
        while done() < k * 0.95:
            time.sleep(0.005)
        r1, w1, d1, t1 = cpu([server]), cpu(worker), done(), time.monotonic()
    n = d1 - d0
    print(f"{label}: {n / (t1 - t0):,.0f} jobs/s; CPU a job: redis {(r1 - r0) / n * 1e6:.1f} us, "
          f"worker {(w1 - w0) / n * 1e6:.1f} us", flush=True)


def main() -> int:
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    waiting = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    with fresh_redis("--enable-debug-command", "local") as server:
        client = redis.Redis.from_url(server.url)
        submit_backlog(client, k + CHUNK)
        drain(client, server.url, "empty queue", k + CHUNK)
        submit_backlog(client, waiting, start=k + CHUNK)
        while keyspace_rehashing(client):  # the one-off rehash at 2^20 keys (see bench.run.scale)
            time.sleep(0.5)
        submit_backlog(client, k, start=k + CHUNK + waiting)
        drain(client, server.url, f"{waiting:,} waiting", k)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
