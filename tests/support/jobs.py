"""Job types for tests only (loaded with JOBENGINE_JOB_TYPE_MODULES=tests.support.jobs)."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

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


# Writes the run once however often it is sent: a write whose reply was lost to a Redis restart is sent again,
# and without the token that second send recorded one run twice (a chaos CI failure: two identical
# '<pid> <time>' entries, "run twice" by one worker at one instant).
_ONCE = """
if redis.call('SET', KEYS[2], 1, 'NX', 'EX', 3600) then
  if ARGV[1] == '' then return redis.call('INCR', KEYS[1]) end
  return redis.call('RPUSH', KEYS[1], ARGV[1])
end
return 0
"""


def _record_run(url: str, entry: str = "") -> None:
    """Record this run in Redis at `url` (INCR test:runs:<job id>, or RPUSH `entry` onto it), waiting out a Redis
    restart as a well-behaved job does: a job of a claimed batch may run while Redis is down
    (test_hard_redis_restart_loses_no_accepted_job failed about one run in three when it didn't, and the chaos
    test restarts Redis on purpose)."""
    client = redis.Redis.from_url(url)
    key = f"test:runs:{current_job().job_id}"
    token = f"test:run-token:{uuid.uuid4().hex}"
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                client.eval(_ONCE, 2, key, token, entry)
                return
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        client.close()


def _count(url: str) -> None:
    if url:
        _record_run(url)


def counted(payload: RunInput) -> RunResult:
    """Counts its runs in Redis (for at-least-once checks), then sleeps."""
    _count(payload.counter_url)
    time.sleep(payload.seconds)
    return RunResult(attempt=current_job().attempt)


def chaos(payload: RunInput) -> RunResult:
    """Records each run as '<supervisor pid> <time>' in test:runs:<job id> (which worker ran it, when)."""
    if payload.counter_url:
        _record_run(payload.counter_url, f"{os.getppid()} {time.time():.3f}")
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
