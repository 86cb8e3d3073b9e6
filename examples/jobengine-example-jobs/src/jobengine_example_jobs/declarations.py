"""Declarations only (models, queue, policy): this is all the API imports."""

from pydantic import BaseModel, ConfigDict, Field

from jobengine.catalog import JobType, RetryPolicy


class WordCountInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=100_000)
    top: int = Field(3, ge=1, le=100)


class WordCountResult(BaseModel):
    words: int
    top: list[tuple[str, int]]


JOB_TYPES = [
    JobType(
        name="wordcount",
        description="Count words and return the most frequent ones.",
        input_model=WordCountInput,
        result_model=WordCountResult,
        function="jobengine_example_jobs.tasks.wordcount",
        queue="low",
        timeout=30,
        retry=RetryPolicy(max_retries=1),
    )
]
