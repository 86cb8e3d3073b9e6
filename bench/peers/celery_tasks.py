"""add(a, b) for Celery with Redis as broker and result backend; each run also counts itself (INCR)."""

import os

import redis
from celery import Celery

URL = os.environ["BENCH_REDIS_URL"]
app = Celery("bench", broker=URL, backend=URL)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)
_counter = redis.Redis.from_url(URL)


@app.task(name="add")
def add(a: int, b: int) -> int:
    _counter.incr("bench:done")
    return a + b
