"""Bulk retry of N failed jobs (POST /v1/operations) while clients submit and a worker drains: are submits,
drains and Redis itself still served? (make bench-bulk; issue 17's check: within 20 % of idle, Redis never
blocked for more than a few ms at a time.)

    python -m bench.bulk_bench                      # N = 1,000,000
    python -m bench.bulk_bench --n 20000 --seconds 5

Set-up (not measured): N add jobs are submitted with the Producer (the API's enqueue script) to a queue no
worker serves ("parked"), then put in the state complete.lua leaves a failed job in (status failed, ended_at,
the failed registry), written directly in chunks: running a million failing jobs would take minutes more and
measure nothing of the bulk operation.

Then two phases of the same load, each measured over the same length: submits through the API
(JOBENGINE's batch endpoint, `--batch` jobs a request, `--clients` threads) to "default", drained by one worker;
a PING every millisecond from another connection (its slowest answer: how long Redis was held at a time).
1. idle: the load alone, for `--seconds`.
2. bulk: the operation starts, the load runs until it is done; the rates are taken over the operation's time.
Reported: submit and drain rates in each phase and their ratio, the PING latencies (max, p99), Redis's
SLOWLOG entries above 1 ms during the operation (the slowest command and its duration), and the operation's
final counts, which must be N.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import redis

from jobengine.redis_conn import free_port

from .run import MAIN_PY, ROOT, env_for, fresh_redis, processes, start_jobengine_worker, wait_api

PARKED = "parked"
FAIL_LUA = """
local ids = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not ids then return 0 end
local zadd = {}
for _, id in ipairs(ids) do
  redis.call('HSET', 'rq:job:' .. id, 'status', 'failed', 'ended_at', ARGV[2], 'jobengine_attempts', '1')
  zadd[#zadd + 1] = ARGV[3]
  zadd[#zadd + 1] = id
end
redis.call('ZADD', KEYS[2], unpack(zadd))
return #ids
"""


def park_failed(client: redis.Redis, n: int) -> None:
    """N add jobs on the parked queue, then failed as complete.lua fails a job (chunks of 1,000)."""
    from jobengine.jobdata import utcnow_str

    submit_backlog_to(client, n, PARKED)
    fail = client.register_script(FAIL_LUA)
    stamp, expiry = utcnow_str(), int(time.time()) + 7 * 86_400
    while fail(keys=[f"rq:queue:{PARKED}", f"rq:failed:{PARKED}"], args=[1000, stamp, expiry]):
        pass


def submit_backlog_to(client: redis.Redis, n: int, queue: str) -> None:
    from jobengine.catalog import discover
    from jobengine.producer import JobSpec, Producer

    producer = Producer(client, discover(["bench.jobs"]))
    for i in range(0, n, 1000):
        producer.submit_many([JobSpec("add", {"a": j, "b": 1}, queue=queue) for j in range(i, min(n, i + 1000))])


class Load:
    """Submitting clients and a PING prober, counted until stop()."""

    def __init__(self, base: str, url: str, clients: int, batch: int) -> None:
        self.base, self.url, self.clients, self.batch = base, url, clients, batch
        self.submitted = 0
        self.pings: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._submit, args=(k,)) for k in range(self.clients)]
        self._threads.append(threading.Thread(target=self._ping))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _submit(self, k: int) -> None:
        body = {"jobs": [{"type": "add", "payload": {"a": k, "b": 1}}] * self.batch}
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._stop.is_set():
                resp = client.post("/v1/jobs:batch", json=body)
                with self._lock:
                    if resp.status_code == 202:
                        self.submitted += self.batch
                    else:
                        self.errors += 1

    def _ping(self) -> None:
        client = redis.Redis.from_url(self.url)
        while not self._stop.is_set():
            t = time.perf_counter()
            client.ping()
            self.pings.append(time.perf_counter() - t)
            time.sleep(0.001)
        client.close()


def phase(base: str, url: str, client: redis.Redis, args: argparse.Namespace,
          until: Any = None) -> dict[str, float]:
    """Run the load for args.seconds, or until until() is true; the rates over that time."""
    load = Load(base, url, args.clients, args.batch)
    done0 = client.zcard("rq:finished:default")
    t0 = time.monotonic()
    load.start()
    try:
        while True:
            time.sleep(0.05)
            if until is not None:
                if until():
                    break
            elif time.monotonic() - t0 >= args.seconds:
                break
    finally:
        load.stop()
    elapsed = time.monotonic() - t0
    drained = client.zcard("rq:finished:default") - done0
    pings = sorted(load.pings)
    return {"seconds": round(elapsed, 2), "submit_jobs_per_s": round(load.submitted / elapsed),
            "drain_jobs_per_s": round(drained / elapsed), "submit_errors": load.errors,
            "ping_max_ms": round(pings[-1] * 1000, 2) if pings else float("nan"),
            "ping_p99_ms": round(pings[int(len(pings) * 0.99)] * 1000, 2) if pings else float("nan"),
            "ping_median_ms": round(statistics.median(pings) * 1000, 3) if pings else float("nan")}


def describe(command: bytes | str | None, op_id: str) -> str:
    """A SLOWLOG entry, named: a step of the operation (its id is bulk.lua's first argument) or the command."""
    text = command.decode(errors="replace") if isinstance(command, bytes) else (command or "")
    return "bulk.lua step" if op_id in text else text[:60]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="failed jobs to retry")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the idle phase")
    parser.add_argument("--clients", type=int, default=2, help="submitting threads")
    parser.add_argument("--batch", type=int, default=100, help="jobs a submit request")
    parser.add_argument("--chunk", type=int, default=None, help="JOBENGINE_BULK_CHUNK_SIZE (default: the setting's)")
    parser.add_argument("--pause", type=float, default=None, help="JOBENGINE_BULK_PAUSE_SECONDS")
    parser.add_argument("--out", default="", help="write the figures as JSON here too")
    args = parser.parse_args()
    extra = {"JOBENGINE_QUEUES_DECLARED": f"default,{PARKED}"}
    if args.chunk:
        extra["JOBENGINE_BULK_CHUNK_SIZE"] = str(args.chunk)
    if args.pause is not None:
        extra["JOBENGINE_BULK_PAUSE_SECONDS"] = str(args.pause)
    with fresh_redis() as server, processes() as procs:
        client = redis.Redis.from_url(server.url)
        t = time.monotonic()
        park_failed(client, args.n)
        print(f"set-up: {args.n} failed jobs in {time.monotonic() - t:.1f} s", file=sys.stderr)
        port = free_port()
        env = env_for(server.url, JOBENGINE_API_PORT=str(port), **extra)
        procs.append(subprocess.Popen([MAIN_PY, "-m", "jobengine_api"], env=env, cwd=ROOT))
        procs.append(start_jobengine_worker(server.url, "bench-bulk"))
        base = f"http://127.0.0.1:{port}"
        wait_api(base, server.url)
        idle = phase(base, server.url, client, args)
        client.config_set("slowlog-log-slower-than", 1000)  # microseconds: every command over 1 ms
        client.slowlog_reset()
        with httpx.Client(base_url=base, timeout=30) as http:
            op = http.post("/v1/operations", json={"action": "retry", "filter": {"queue": PARKED}}).json()

            def ended() -> bool:
                return http.get(f"/v1/operations/{op['id']}").json()["state"] in ("done", "canceled")

            bulk = phase(base, server.url, client, args, until=ended)
            final = http.get(f"/v1/operations/{op['id']}").json()
        slow = client.slowlog_get(128)
        report = {
            "n": args.n, "idle": idle, "bulk": bulk,
            "submit_ratio": round(bulk["submit_jobs_per_s"] / idle["submit_jobs_per_s"], 3),
            "drain_ratio": round(bulk["drain_jobs_per_s"] / idle["drain_jobs_per_s"], 3),
            "operation": {"counts": final["counts"], "state": final["state"],
                          "jobs_per_s": round(final["counts"]["matched"] / bulk["seconds"])},
            "slowlog_over_1ms": len(slow),
            "slowest_commands": [{"ms": e["duration"] / 1000, "command": describe(e["command"], op["id"])}
                                 for e in sorted(slow, key=lambda e: -e["duration"])[:5]],
            "requeued_waiting": client.llen(f"rq:queue:{PARKED}"),
        }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    ok = report["operation"]["counts"]["matched"] == args.n == report["requeued_waiting"]
    print("count: " + ("PASS" if ok else "FAIL"), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
