"""Job types for tests only (loaded with JOBENGINE_JOB_TYPE_MODULES=tests.support.jobs)."""

from __future__ import annotations

import os
import signal
import time

import redis
from pydantic import BaseModel, ConfigDict, Field

from jobengine.catalog import JobType, RetryPolicy
from jobengine.context import current_job


class RunInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(0.0, ge=0, le=600)
    counter_url: str = ""  # Redis URL where each run increments test:runs:<job id>


class RunResult(BaseModel):
    attempt: int


def _count(url: str) -> None:
    if url:
        # a well-behaved job waits out a Redis restart: a job of a claimed batch may run while Redis is
        # down (test_hard_redis_restart_loses_no_accepted_job failed about one run in three when it didn't)
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.incr(f"test:runs:{current_job().job_id}")
                break
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client.close()


def counted(payload: RunInput) -> RunResult:
    """Counts its runs in Redis (for at-least-once checks), then sleeps."""
    _count(payload.counter_url)
    time.sleep(payload.seconds)
    return RunResult(attempt=current_job().attempt)


def chaos(payload: RunInput) -> RunResult:
    """Records each run as '<supervisor pid> <time>' in test:runs:<job id> (which worker ran it, when)."""
    if payload.counter_url:
        # a well-behaved job: its own Redis write waits out the outages the chaos test causes
        client = redis.Redis.from_url(payload.counter_url)
        record, deadline = f"{os.getppid()} {time.time():.3f}", time.monotonic() + 20
        while True:
            try:
                client.rpush(f"test:runs:{current_job().job_id}", record)
                break
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client.close()
    time.sleep(payload.seconds)
    return RunResult(attempt=current_job().attempt)


def hang(payload: RunInput) -> RunResult:
    """Ignores the soft timeout and cancels: blocks the signals, then sleeps (like a stuck C call)."""
    _count(payload.counter_url)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGUSR1})
    time.sleep(payload.seconds)
    return RunResult(attempt=current_job().attempt)


def crash(payload: RunInput) -> RunResult:
    """Kills its own process, as a segfault or the OOM killer would."""
    _count(payload.counter_url)
    if current_job().attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return RunResult(attempt=current_job().attempt)


JOB_TYPES = [
    JobType(name="counted", input_model=RunInput, result_model=RunResult, function="tests.support.jobs.counted",
            timeout=60, retry=RetryPolicy(max_retries=0)),
    JobType(name="chaos", input_model=RunInput, result_model=RunResult, function="tests.support.jobs.chaos",
            timeout=60, retry=RetryPolicy(max_retries=0)),
    JobType(name="hang", input_model=RunInput, result_model=RunResult, function="tests.support.jobs.hang",
            timeout=1, retry=RetryPolicy(max_retries=0)),
    JobType(name="crash", input_model=RunInput, result_model=RunResult, function="tests.support.jobs.crash",
            timeout=30, retry=RetryPolicy(max_retries=1, base_delay=0, jitter=0)),
]
