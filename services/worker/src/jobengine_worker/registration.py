"""The worker's registration in RQ's data model (rq:worker:<name>, rq:workers, rq:workers:<queue>) and its
heartbeat, which also renews the claims of the jobs it holds."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterable

import redis

from jobengine import keys
from jobengine.jobdata import utcnow_str

from .claimed import Claimed


def worker_fields(queues: list[str]) -> dict[str, str | int]:
    """The fields RQ's Worker.refresh reads (it fills in its own version and defaults for the rest)."""
    now = utcnow_str()
    return {"birth": now, "last_heartbeat": now, "queues": ",".join(queues), "pid": os.getpid(),
            "hostname": socket.gethostname(), "state": "idle", "python_version": sys.version}


def register(client: redis.Redis, name: str, queues: list[str], ttl: int) -> None:
    key = keys.worker(name)
    with client.pipeline() as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=worker_fields(queues))
        pipe.expire(key, ttl)
        pipe.sadd(keys.WORKERS_SET, key)
        for q in queues:
            pipe.sadd(keys.workers_of_queue(q), key)
            pipe.sadd(keys.QUEUES_SET, keys.queue(q))
        pipe.execute()


def unregister(client: redis.Redis, name: str, queues: list[str]) -> None:
    key = keys.worker(name)
    with client.pipeline() as pipe:
        pipe.delete(key)
        pipe.srem(keys.WORKERS_SET, key)
        for q in queues:
            pipe.srem(keys.workers_of_queue(q), key)
        pipe.execute()


def heartbeat(client: redis.Redis, name: str, ttl: int, expiry: int, held: Iterable[Claimed],
              current: Claimed | None) -> bool:
    """Renew the worker key and the claims on every job held (to `expiry`), so nobody recovers them.
    Returns whether the running job (`current`) has a cancel asked for: one whose pub/sub message was missed,
    e.g. during a reconnect."""
    key = keys.worker(name)
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping={"last_heartbeat": utcnow_str(), "state": "busy" if current else "idle",
                                "current_job": current.id if current else ""})
        pipe.expire(key, ttl)
        pipe.sadd(keys.WORKERS_SET, key)
        for job in held:
            pipe.zadd(keys.started_registry(job.queue), {job.member: expiry}, xx=True)
        if current is not None:
            pipe.hget(keys.job(current.id), "jobengine_cancel")
        replies = pipe.execute()
    return current is not None and bool(replies[-1])
