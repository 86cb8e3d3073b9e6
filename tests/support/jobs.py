"""Job types for tests only (loaded with JOBENGINE_JOB_TYPE_MODULES=tests.support.jobs)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

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


def _record_run(url: str, write: Callable[[redis.Redis, str], Any]) -> None:
    """Write this run into Redis at `url`, waiting out a Redis restart as a well-behaved job does: a job of a
    claimed batch may run while Redis is down (test_hard_redis_restart_loses_no_accepted_job failed about
    one run in three when it didn't, and the chaos test restarts Redis on purpose)."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                write(client, f"test:runs:{current_job().job_id}")
                return
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        client.close()


def _count(url: str) -> None:
    if url:
        _record_run(url, lambda client, key: client.incr(key))


def counted(payload: RunInput) -> RunResult:
    """Counts its runs in Redis (for at-least-once checks), then sleeps."""
    _count(payload.counter_url)
    time.sleep(payload.seconds)
    return RunResult(attempt=current_job().attempt)


def chaos(payload: RunInput) -> RunResult:
    """Records each run as '<supervisor pid> <time>' in test:runs:<job id> (which worker ran it, when)."""
    if payload.counter_url:
        record = f"{os.getppid()} {time.time():.3f}"
        _record_run(payload.counter_url, lambda client, key: client.rpush(key, record))
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


class PoisonInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    how: str = Field(pattern="^(interrupt|exit|os_exit|bigint)$")


class PoisonResult(BaseModel):
    value: int


def poison(payload: PoisonInput) -> PoisonResult:
    """Ends as job code must not: raises KeyboardInterrupt, calls sys.exit(3) or os._exit(7), or returns an
    int the result encoder cannot write (above 64 bits)."""
    if payload.how == "interrupt":
        raise KeyboardInterrupt
    if payload.how == "exit":
        sys.exit(3)
    if payload.how == "os_exit":
        os._exit(7)
    return PoisonResult(value=2**70)


JOB_TYPES = [
    JobType(name="counted", input_model=RunInput, result_model=RunResult, function="tests.support.jobs.counted",
            timeout=60, retry=RetryPolicy(max_retries=0)),
    JobType(name="chaos", input_model=RunInput, result_model=RunResult, function="tests.support.jobs.chaos",
            timeout=60, retry=RetryPolicy(max_retries=0)),
    JobType(name="hang", input_model=RunInput, result_model=RunResult, function="tests.support.jobs.hang",
            timeout=1, retry=RetryPolicy(max_retries=0)),
    JobType(name="crash", input_model=RunInput, result_model=RunResult, function="tests.support.jobs.crash",
            timeout=30, retry=RetryPolicy(max_retries=1, base_delay=0, jitter=0)),
    JobType(name="poison", input_model=PoisonInput, result_model=PoisonResult, function="tests.support.jobs.poison",
            timeout=30, retry=RetryPolicy(max_retries=1, base_delay=0, jitter=0)),
]

from tests.support import gated as _gated  # noqa: E402 - the gated job type joins the test catalog

JOB_TYPES += _gated.JOB_TYPES

from tests.support import flowjobs as _flowjobs  # noqa: E402 - the workflow test job types too

JOB_TYPES += _flowjobs.JOB_TYPES
