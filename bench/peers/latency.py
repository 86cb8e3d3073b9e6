"""A peer's enqueue -> result latency on an idle worker (started by bench/run.py), N sequential add jobs:

    python -m bench.peers.latency rq|dramatiq|celery N      # prints {"p50_ms": .., "p99_ms": .., "n": N}

The clock starts when the enqueue call returns and stops when the result is in hand, as jobengine's
(POST returned -> GET ?wait= answered): RQ job.latest_result(timeout) (a blocking XREAD on the result
stream), Dramatiq message.get_result(block=True) (Results middleware, Redis backend), Celery
AsyncResult.get() (Redis backend, pub/sub). The first 20 jobs warm up and are not counted.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

WARM = 20


def rq_client() -> Callable[[int], tuple[float, int]]:
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    queue = Queue("default", connection=redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]),
                  serializer=JSONSerializer)

    def one(i: int) -> tuple[float, int]:
        job = queue.enqueue("bench.peers.rq_tasks.add", i, 1, result_ttl=3600)
        t = time.perf_counter()
        result = job.latest_result(timeout=60 if i == 0 else 5)
        return time.perf_counter() - t, result.return_value if result else None

    return one


def dramatiq_client() -> Callable[[int], tuple[float, int]]:
    from bench.peers.dramatiq_tasks import add_r

    def one(i: int) -> tuple[float, int]:
        message = add_r.send(i, 1)
        t = time.perf_counter()
        value = message.get_result(block=True, timeout=60_000 if i == 0 else 5_000)
        return time.perf_counter() - t, value

    return one


def celery_client() -> Callable[[int], tuple[float, int]]:
    from bench.peers.celery_tasks import add

    def one(i: int) -> tuple[float, int]:
        result = add.apply_async((i, 1))
        t = time.perf_counter()
        value = result.get(timeout=60 if i == 0 else 5)
        result.forget()
        return time.perf_counter() - t, value

    return one


def main() -> None:
    name, n = sys.argv[1], int(sys.argv[2])
    one = {"rq": rq_client, "dramatiq": dramatiq_client, "celery": celery_client}[name]()
    seconds = []
    for i in range(n + WARM):
        elapsed, value = one(i)
        if value != i + 1:
            raise SystemExit(f"job {i}: got {value!r}, expected {i + 1}")
        seconds.append(elapsed)
    xs = sorted(seconds[WARM:])
    q = lambda p: round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 3)  # noqa: E731
    print(json.dumps({"p50_ms": q(0.5), "p99_ms": q(0.99), "n": n}))


if __name__ == "__main__":
    main()
