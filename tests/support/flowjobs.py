"""Test job types of workflows (loaded with tests.support.jobs): a leaf that returns a number (or fails, on
demand), and a fan-in that returns what it read through current_job().dependency_results()."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobengine.catalog import JobType, RetryPolicy
from jobengine.context import current_job

from .jobs import _count


class LeafInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: int = 0
    fail: bool = False  # raise (after counting the run)
    seconds: float = Field(0.0, ge=0, le=60)  # sleep first
    counter_url: str = ""  # Redis URL where each run increments test:runs:<job id>


class LeafResult(BaseModel):
    value: int


class LeafFailure(RuntimeError):
    pass


def leaf(payload: LeafInput) -> LeafResult:
    time.sleep(payload.seconds)
    _count(payload.counter_url)
    if payload.fail:
        raise LeafFailure("asked to fail")
    return LeafResult(value=payload.value)


class FanInInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    counter_url: str = ""


class FanInResult(BaseModel):
    count: int  # dependencies whose result it read
    total: int  # the sum of their values
    missing: list[str] = Field(default_factory=list)  # those without a result (ended otherwise)


def fan_in(payload: FanInInput) -> FanInResult:
    _count(payload.counter_url)
    results: dict[str, Any] = current_job().dependency_results()
    values = {k: v["value"] for k, v in results.items() if v is not None}
    return FanInResult(count=len(values), total=sum(values.values()),
                       missing=sorted(k for k, v in results.items() if v is None))


JOB_TYPES = [
    JobType(name="leaf", input_model=LeafInput, result_model=LeafResult, function="tests.support.flowjobs.leaf",
            timeout=60, retry=RetryPolicy(max_retries=0)),
    JobType(name="leaf_retried", input_model=LeafInput, result_model=LeafResult,
            function="tests.support.flowjobs.leaf", timeout=60, retry=RetryPolicy(max_retries=2, base_delay=0, jitter=0)),
    JobType(name="fan_in", input_model=FanInInput, result_model=FanInResult, function="tests.support.flowjobs.fan_in",
            timeout=60, retry=RetryPolicy(max_retries=0)),
]
