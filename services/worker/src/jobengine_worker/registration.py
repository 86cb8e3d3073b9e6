"""The worker's registration in RQ's data model (rq:worker:<name>, rq:workers, rq:workers:<queue>) and its
heartbeat, which also renews the claims of the jobs it holds."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from jobengine import keys
from jobengine.jobdata import utcnow_str

from .claimed import Claimed


def worker_fields(queues: list[str], pool: str = "") -> dict[str, str | int]:
    """The fields RQ's Worker.refresh reads (it fills in its own version and defaults for the rest), and the
    pool (jobengine_pool) GET /v1/workers shows."""
    now = utcnow_str()
    return {"birth": now, "last_heartbeat": now, "queues": ",".join(queues), "pid": os.getpid(),
            "hostname": socket.gethostname(), "state": "idle", "python_version": sys.version,
            "successful_job_count": 0, "failed_job_count": 0, "jobengine_pool": pool}


def register(client: redis.Redis, name: str, queues: list[str], ttl: int, pool: str = "") -> None:
    key = keys.worker(name)
    with client.pipeline() as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=worker_fields(queues, pool))
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


@dataclass(frozen=True)
class Stats:
    """What GET /v1/workers shows beside RQ's fields, written with each heartbeat (no round trip of its own):
    jobs ended here finished and failed (RQ's successful_job_count and failed_job_count), the current job's
    start (RQ timestamp, '' when idle) and the memory of the worker's processes (RSS bytes, 0 unknown)."""

    finished: int = 0
    failed: int = 0
    job_since: str = ""
    rss_bytes: int = 0


@dataclass(frozen=True)
class Beat:
    cancel_current: bool  # the running job has a cancel asked for (its pub/sub message was missed)
    paused: frozenset[str]  # the queues served that are paused (the idle wait leaves them out)


def heartbeat(client: redis.Redis, name: str, ttl: int, expiry: int, held: Iterable[Claimed],
              current: Claimed | None, stats: Stats = Stats(), queues: Iterable[str] = ()) -> Beat:
    """Renew the worker key (with `stats`) and the claims on every job held (to `expiry`), so nobody recovers
    them, and read which of `queues` are paused: one round trip."""
    key = keys.worker(name)
    queues = list(queues)
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping={"last_heartbeat": utcnow_str(), "state": "busy" if current else "idle",
                                "current_job": current.id if current else "",
                                "successful_job_count": stats.finished, "failed_job_count": stats.failed,
                                "jobengine_job_since": stats.job_since, "jobengine_rss_bytes": stats.rss_bytes})
        pipe.expire(key, ttl)
        pipe.sadd(keys.WORKERS_SET, key)
        for job in held:
            pipe.zadd(keys.started_registry(job.queue), {job.member: expiry}, xx=True)
        for q in queues:
            pipe.exists(keys.paused(q))
        if current is not None:
            pipe.hget(keys.job(current.id), "jobengine_cancel")
        replies = pipe.execute()
    flags = replies[len(replies) - len(queues) - (current is not None):][:len(queues)]
    paused = frozenset(q for q, flag in zip(queues, flags, strict=True) if flag)
    return Beat(current is not None and bool(replies[-1]), paused)


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(*pids: int | None) -> int:
    """Resident memory of these processes (Linux /proc; 0 where it cannot be read)."""
    total = 0
    for pid in pids:
        if pid is None:
            continue
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total
