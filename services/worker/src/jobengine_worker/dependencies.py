"""Fan-in: the results of a job's dependencies, read for the jobs that have some (their meta names them:
{name or id: job id}) before they run, and handed to the executor with the job, bounded in size
(JOBENGINE_DEPENDENCY_RESULTS_MAX_BYTES). Jobs without dependencies cost nothing here."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson
import redis

from jobengine import keys, metrics
from jobengine.context import TOO_LARGE
from jobengine.jobdata import parse_ts

from .claimed import Claimed


def read_results(client: redis.Redis, jobs: Sequence[Claimed], max_bytes: int) -> None:
    """Set each job's dependency_results ({key: result, or None for a dependency that did not finish}), one
    round trip for the batch; observe how long each waited for its dependencies."""
    wanted = [job for job in jobs if job.dependencies]
    if not wanted:
        return
    pipe = client.pipeline(transaction=False)
    for job in wanted:
        for dep_id in job.dependencies.values():  # type: ignore[union-attr]
            pipe.xrevrange(keys.results(dep_id), "+", "-", count=1)
        pipe.hget(keys.job(job.id), "enqueued_at")
    replies = iter(pipe.execute())
    for job in wanted:
        out: dict[str, Any] = {}
        size = 0
        for name in job.dependencies:  # type: ignore[union-attr]
            entries = next(replies)
            value = None
            if entries:
                fields = entries[0][1]
                raw = fields.get(b"return_value")
                if fields.get(b"type") == b"1" and raw:
                    size += len(raw)
                    value = orjson.loads(base64.b64decode(raw))
            out[name] = value
        job.dependency_results = {TOO_LARGE: size} if size > max_bytes else out
        queued = parse_ts(next(replies))
        if queued and job.created_at:
            metrics.JOB_DEFERRED_SECONDS.labels(job.queue, job.type).observe(
                max(0.0, queued.timestamp() - job.created_at))
