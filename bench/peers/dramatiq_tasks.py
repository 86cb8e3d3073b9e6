"""add(a, b) for Dramatiq on its Redis broker. Dramatiq keeps no result by default, so each run counts
itself with one INCR (one extra round trip a job, in Dramatiq's disfavour; said in docs/benchmarks.md)."""

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ["BENCH_REDIS_URL"]
dramatiq.set_broker(RedisBroker(url=URL))
_counter = redis.Redis.from_url(URL)


@dramatiq.actor(max_retries=0)
def add(a: int, b: int) -> int:
    _counter.incr("bench:done")
    return a + b
