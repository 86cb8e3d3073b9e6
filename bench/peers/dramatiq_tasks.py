"""add(a, b) for Dramatiq on its Redis broker. Dramatiq keeps no result by default, so each run of `add`
counts itself with one INCR (one extra round trip a job, in Dramatiq's disfavour; said in
docs/benchmarks.md). `add_r` stores its result through the Results middleware (latency scenario)."""

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

URL = os.environ["BENCH_REDIS_URL"]
broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)
_counter = redis.Redis.from_url(URL)


@dramatiq.actor(max_retries=0)
def add(a: int, b: int) -> int:
    _counter.incr("bench:done")
    return a + b


@dramatiq.actor(max_retries=0, store_results=True)
def add_r(a: int, b: int) -> int:
    return a + b
