"""Redis's own CPU a job for the worker's two scripts, called directly (no worker, no executor):
claim.lua in batches of 16, then complete.lua for the same batches, as the worker calls them.

    .venv/bin/python -m bench.redis_split 20000

Redis CPU is read from INFO (main thread, user + system) before and after each phase; "client" is the
caller's wall time a job (packing, the round trip, parsing). Also prints Redis memory a finished job.
Fresh redis-server on 127.0.0.1 (the harness's), stopped at the end.
"""

from __future__ import annotations

import sys
import time

import redis

from bench.run import fresh_redis, submit_backlog
from jobengine.jobdata import encode_return_value, utcnow_str
from jobengine.scripts import Scripts, claim_args

BATCH = 16


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with fresh_redis() as server:
        client = redis.Redis.from_url(server.url)
        scripts = Scripts.register(client)
        submit_backlog(client, n)
        memory0 = client.info("memory")["used_memory"]
        cpu0, t0 = redis_cpu(client), time.perf_counter()
        batches = [scripts.claim(args=claim_args(expiry=int(time.time()) + 60, stamp=utcnow_str(), worker="split",
                                                 execution=f"s{k}-", limit=BATCH, queues=["default"]))
                   for k in range(n // BATCH)]
        cpu1, t1 = redis_cpu(client), time.perf_counter()
        value = encode_return_value({"sum": 2})
        for rows in batches:
            args: list[object] = [time.time(), utcnow_str(), "split"]
            for row in rows:
                args += [row[0], row[1], row[2], "finished", value, 86_400]
            scripts.complete(args=args)
        cpu2, t2 = redis_cpu(client), time.perf_counter()
        jobs = sum(len(rows) for rows in batches)
        finished = client.zcard("rq:finished:default")
        memory = (client.info("memory")["used_memory"] - memory0) / jobs
    print(f"claim: Redis {(cpu1 - cpu0) / jobs * 1e6:.1f} us a job, client {(t1 - t0) / jobs * 1e6:.1f} us")
    print(f"complete: Redis {(cpu2 - cpu1) / jobs * 1e6:.1f} us a job, client {(t2 - t1) / jobs * 1e6:.1f} us "
          f"({finished:,} finished)")
    print(f"Redis memory added by finishing a job: {memory:,.0f} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
