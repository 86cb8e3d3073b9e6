"""The trivial job of the benchmarks: add(a, b), as a jobengine job type (JOBENGINE_JOB_TYPE_MODULES=bench.jobs)."""

from pydantic import BaseModel, ConfigDict

from jobengine.catalog import JobType


class AddInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int
    b: int


class AddResult(BaseModel):
    sum: int


def add(payload: AddInput) -> AddResult:
    return AddResult(sum=payload.a + payload.b)


JOB_TYPES = [JobType(name="add", input_model=AddInput, result_model=AddResult, function="bench.jobs.add", timeout=30)]
