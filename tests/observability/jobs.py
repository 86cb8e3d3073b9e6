"""Job types of the observability tests (JOBENGINE_JOB_TYPE_MODULES=tests.observability.jobs): one per outcome."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from jobengine.catalog import JobType, RetryPolicy
from jobengine.context import current_job


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(0.0, ge=0, le=60)


class Result(BaseModel):
    attempt: int


def ok(payload: Input) -> Result:
    time.sleep(payload.seconds)
    return Result(attempt=current_job().attempt)


def fail(payload: Input) -> Result:
    raise ValueError("obs_fail always fails")


def flaky(payload: Input) -> Result:
    """Fails its first attempt, succeeds on the retry."""
    if current_job().attempt == 1:
        raise ConnectionError("obs_flaky: first attempt fails")
    return Result(attempt=current_job().attempt)


def slow(payload: Input) -> Result:
    """Sleeps past its 1 s timeout (the soft timeout interrupts it)."""
    time.sleep(payload.seconds)
    return Result(attempt=current_job().attempt)


_NO_RETRY = RetryPolicy(max_retries=0)
JOB_TYPES = [
    JobType(name="obs_ok", input_model=Input, result_model=Result, function="tests.observability.jobs.ok",
            timeout=30, retry=_NO_RETRY),
    JobType(name="obs_fail", input_model=Input, result_model=Result, function="tests.observability.jobs.fail",
            timeout=30, retry=_NO_RETRY),
    JobType(name="obs_flaky", input_model=Input, result_model=Result, function="tests.observability.jobs.flaky",
            timeout=30, retry=RetryPolicy(max_retries=1, base_delay=0, jitter=0)),
    JobType(name="obs_slow", input_model=Input, result_model=Result, function="tests.observability.jobs.slow",
            timeout=1, retry=_NO_RETRY),
]
