"""Recording outcomes once complete.lua has answered: metrics and the per-job log line."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jobengine import metrics

from .claimed import CRASH, Outcome

log = logging.getLogger("jobengine.worker")

# The per-job log line: a finished job's at DEBUG (one INFO line a job cost about a third of the worker's
# throughput), a job given back at INFO, every failure, retry, cancel and crash at WARNING.
LEVELS = {"finished": logging.DEBUG, "release": logging.INFO, "requeue": logging.INFO}
NOT_RECORDED = frozenset({"lost", "gone"})  # the claim was no longer ours, or the job expired
CRASH_LABELS = {"failed": "failed", "queued": "requeued", "canceled": "canceled"}


@dataclass(frozen=True)
class Series:
    """The labelled metric children of one (queue, job type): looked up once, not per job."""

    started: Any
    wait: Any
    run: Any
    e2e: Any
    busy: Any
    finished: dict[str, Any]


@lru_cache(maxsize=1024)
def series(queue: str, job_type: str) -> Series:
    return Series(
        started=metrics.JOBS_STARTED.labels(queue, job_type),
        wait=metrics.JOB_WAIT_SECONDS.labels(queue, job_type),
        run=metrics.JOB_RUN_SECONDS.labels(queue, job_type),
        e2e=metrics.JOB_E2E_SECONDS.labels(queue, job_type),
        busy=metrics.WORKER_BUSY.labels(queue),
        finished={outcome: metrics.JOBS_FINISHED.labels(queue, job_type, outcome) for outcome in metrics.OUTCOMES},
    )


def record(o: Outcome, status: str) -> None:
    """Count one recorded outcome (once: a repeated script call answers the status, see complete.lua) and
    log it."""
    job = o.job
    metric = CRASH_LABELS.get(status, "") if o.metric == CRASH else o.metric
    if metric and status not in NOT_RECORDED:
        s = series(job.queue, job.type)
        s.finished[metric].inc()
        if status in ("finished", "failed", "canceled") and job.created_at:
            s.e2e.observe(max(0.0, time.time() - job.created_at))
    level = LEVELS.get(o.outcome, logging.WARNING)
    if log.isEnabledFor(level):  # (the line's fields cost more than the check)
        log.log(level, "job %s", o.outcome, extra={"job_id": job.id, "job_type": job.type, "queue": job.queue,
                                                   "attempt": job.attempt, "status": status,
                                                   "run_seconds": o.run_seconds, **o.trace})
