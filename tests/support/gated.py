"""A test job type whose end the test decides: it reports progress, then blocks until the test opens its gate.

Tests drive jobs through the real worker with it (no hand-written Redis writes of a job's outcome), so they see
exactly what the worker's scripts write. Loaded with tests.support.jobs (it appends JOB_TYPES there).
"""

from __future__ import annotations

import time
from pathlib import Path

import redis
from pydantic import BaseModel, ConfigDict, Field

from jobengine.catalog import JobType, RetryPolicy
from jobengine.context import current_job

GATE_KEY = "test:gate:{}"  # a list: the test pushes "finish" or "fail:<message>"
GATE_TIMEOUT = 60  # seconds a job waits for its gate before failing (a test that forgot to open it)


class GateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    redis_url: str  # where the gate lives (the test's Redis)
    progress: float | None = Field(None, ge=0, le=1)  # reported before waiting, with message "waiting"
    value: str = ""  # returned as the result on "finish"


class GateResult(BaseModel):
    value: str
    attempt: int


class GateFailure(RuntimeError):
    """Raised when the test opens the gate with "fail:<message>"."""


def gated(payload: GateInput) -> GateResult:
    ctx = current_job()
    if payload.progress is not None:
        ctx.progress(payload.progress, "waiting")
    client = redis.Redis.from_url(payload.redis_url)
    try:
        reply = client.blpop([GATE_KEY.format(ctx.job_id)], timeout=GATE_TIMEOUT)
    finally:
        client.close()
    if reply is None:
        raise GateFailure(f"gate not opened within {GATE_TIMEOUT} s")
    command = reply[1].decode()
    if command.startswith("fail:"):
        raise GateFailure(command.removeprefix("fail:"))
    return GateResult(value=payload.value, attempt=ctx.attempt)


class FileGateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gate_path: str  # the job ends once this file exists
    done_path: str  # a line appended as each run returns: the test sees the end even while Redis is down


def file_gated(payload: FileGateInput) -> GateResult:
    """gated without Redis: for tests that stop Redis while the job runs."""
    gate, deadline = Path(payload.gate_path), time.monotonic() + GATE_TIMEOUT
    while not gate.exists():
        if time.monotonic() > deadline:
            raise GateFailure(f"gate not opened within {GATE_TIMEOUT} s")
        time.sleep(0.01)
    with open(payload.done_path, "a") as done:
        done.write(current_job().job_id + "\n")
    return GateResult(value="", attempt=current_job().attempt)


def open_gate(client: redis.Redis, job_id: str, command: str = "finish") -> None:
    """Let the job end: "finish" returns its value, "fail:<message>" raises GateFailure(<message>)."""
    client.rpush(GATE_KEY.format(job_id), command)


JOB_TYPES = [
    JobType(name="gated", input_model=GateInput, result_model=GateResult, function="tests.support.gated.gated",
            timeout=GATE_TIMEOUT + 30, retry=RetryPolicy(max_retries=0)),
    JobType(name="file_gated", input_model=FileGateInput, result_model=GateResult,
            function="tests.support.gated.file_gated", timeout=GATE_TIMEOUT + 30, retry=RetryPolicy(max_retries=0)),
]
