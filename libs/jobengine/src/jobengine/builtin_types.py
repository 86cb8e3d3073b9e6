"""Declarations of the built-in job types. Implementations live in jobengine_worker.jobs.builtin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

from .catalog import JobType, RetryPolicy

MAX_PRIMES_RANGE = 1_000_000
MAX_PRIMES_HIGHEST = 10**12


class PrimesInput(BaseModel):
    """The primes between lowest and highest, both included."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"lowest": 10, "highest": 17}]})

    lowest: StrictInt = Field(ge=0, le=MAX_PRIMES_HIGHEST, description="Start of the range (included).")
    highest: StrictInt = Field(ge=0, le=MAX_PRIMES_HIGHEST, description="End of the range (included).")

    @model_validator(mode="after")
    def _check_range(self) -> PrimesInput:
        if self.lowest > self.highest:
            raise ValueError("lowest must be <= highest")
        if self.highest - self.lowest > MAX_PRIMES_RANGE:
            raise ValueError(f"range too big: highest - lowest must be <= {MAX_PRIMES_RANGE}")
        return self


class PrimesResult(BaseModel):
    primes: list[int]
    count: int


class SleepInput(BaseModel):
    """Hold a worker for a while: sleeping (I/O-like) or spinning (CPU-bound). For load tests."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"seconds": 0.1}]})

    seconds: StrictFloat = Field(0.0, ge=0, le=3600, description="How long the job runs.")
    cpu: bool = Field(False, description="Spin the CPU instead of sleeping.")
    steps: StrictInt = Field(1, ge=1, le=1000, description="Progress reports over the run.")


class SleepResult(BaseModel):
    slept: float


class EchoInput(BaseModel):
    """Return the message. Can fail on purpose, to exercise retries and failure handling."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"message": "hello"}]})

    message: str = Field("", max_length=10_000)
    fail: bool = Field(False, description="Raise an error on every attempt.")
    fail_attempts: StrictInt = Field(0, ge=0, le=100, description="Raise an error on the first N attempts only.")


class EchoResult(BaseModel):
    message: str
    attempt: int


JOB_TYPES = [
    JobType(
        name="primes",
        description="Find the primes in [lowest, highest] (the seed's example).",
        input_model=PrimesInput,
        result_model=PrimesResult,
        function="jobengine_worker.jobs.builtin.primes",
        timeout=120,
        retry=RetryPolicy(max_retries=2, base_delay=1.0),
    ),
    JobType(
        name="sleep",
        description="Sleep or spin the CPU for a given time; for load tests.",
        input_model=SleepInput,
        result_model=SleepResult,
        function="jobengine_worker.jobs.builtin.sleep",
        timeout=3600,
    ),
    JobType(
        name="echo",
        description="Return the message; optionally fail on purpose.",
        input_model=EchoInput,
        result_model=EchoResult,
        function="jobengine_worker.jobs.builtin.echo",
        timeout=30,
        retry=RetryPolicy(max_retries=3, base_delay=0.5, factor=2.0, jitter=0.1),
    ),
]
