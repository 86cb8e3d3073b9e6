"""What the API answers, as pydantic models. Unknown fields are kept (extra="allow"): a newer server adds
fields without breaking an older client."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

from .errors import ApiError, JobFailed

R = TypeVar("R")
TERMINAL = frozenset({"finished", "failed", "canceled"})
STATUSES = ("deferred", "queued", "scheduled", "started", "finished", "failed", "canceled")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Progress(_Model):
    """What the job last reported with current_job().progress(fraction, message)."""

    fraction: float | None = None
    message: str | None = None


class JobSummary(_Model):
    """A job as GET /v1/jobs lists it."""

    id: str
    type: str
    queue: str
    status: str
    created_at: datetime | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def done(self) -> bool:
        """Finished, failed or canceled: the status will not change again (unless retried)."""
        return self.status in TERMINAL


class Job(JobSummary, Generic[R]):
    """A job as GET /v1/jobs/{id} reads it. `result` is the result model's instance when the client was told
    the job type (typed use), else the JSON value."""

    payload: dict[str, Any] | None = None
    result: R | None = None
    error: str | None = None
    attempts: int = 0
    retries_left: int | None = None
    scheduled_for: datetime | None = None
    progress: Progress | None = None
    worker: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    def raise_for_failure(self) -> Job[R]:
        """Raise JobFailed when the job failed or was canceled; return the job otherwise."""
        if self.status in ("failed", "canceled"):
            raise JobFailed(self)
        return self


class Accepted(_Model):
    """The answer to a submit: the job's id and where to read it. `replayed` is true when the Idempotency-Key
    had already been used with the same body (the earlier job is returned, nothing new is queued)."""

    id: str
    status: str
    type: str
    queue: str
    location: str
    run_at: datetime | None = None
    replayed: bool = False
    idempotency_key: str | None = None
    _result_model: Any = PrivateAttr(default=None)  # the job type's result model when submitted typed


class BatchItem(_Model):
    """One item of submit_many: `index` is its position in the jobs given; `error` is set when refused (a 429's
    `retry_after` tells when to send it again: with the same `idempotency_key`, it is queued at most once)."""

    index: int
    id: str | None = None
    status: str | None = None
    replayed: bool = False
    error: ApiError | None = None
    idempotency_key: str | None = None
    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    @property
    def ok(self) -> bool:
        return self.error is None


class BatchResult(_Model):
    accepted: int
    rejected: int
    items: list[BatchItem]


class Page(_Model):
    """One page of GET /v1/jobs; pass `next_cursor` back for the next one (None: no more)."""

    items: list[JobSummary]
    next_cursor: str | None = None


class StatusChange(_Model):
    """The answer to cancel (`canceled`, or `canceling` while its worker stops it) and retry (`queued`)."""

    id: str
    status: str


class JobTypeInfo(_Model):
    name: str
    description: str = ""
    queue: str
    timeout: int
    retry: dict[str, Any]
    result_ttl: int
    max_payload_bytes: int | None = None
    input_schema: dict[str, Any]
    result_schema: dict[str, Any]


class QueueStats(_Model):
    name: str
    depth: int
    in_flight: int
    scheduled: int
    failed: int
    finished: int
    canceled: int
    workers: int
