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
    paused: bool = False
    refuse_submits: bool = False
    paused_since: datetime | None = None


class QueuePause(_Model):
    """The answer to pause and resume of a queue."""

    name: str
    paused: bool
    refuse_submits: bool = False
    paused_since: datetime | None = None


class CurrentJob(_Model):
    id: str
    since: datetime | None = None


class WorkerInfo(_Model):
    """A live worker as GET /v1/workers reads it (figures as of its last heartbeat)."""

    name: str
    pool: str | None = None
    queues: list[str] = []
    state: str = ""
    current_job: CurrentJob | None = None
    last_heartbeat: datetime | None = None
    heartbeat_age_seconds: float | None = None
    jobs_finished: int = 0
    jobs_failed: int = 0
    rss_bytes: int | None = None
    hostname: str | None = None
    pid: int | None = None
    birth: datetime | None = None


OPERATION_ACTIONS = ("retry", "cancel", "delete")
OPERATION_ENDED = frozenset({"done", "canceled", "failed"})


class OperationCounts(_Model):
    examined: int = 0
    matched: int = 0
    skipped: int = 0


class Operation(_Model):
    """A bulk operation (POST /v1/operations): `state` pending, running, done, canceled or failed; `progress`
    0 to 1; `counts.matched`: jobs changed."""

    id: str
    action: str
    filter: dict[str, Any] = {}
    state: str
    counts: OperationCounts = OperationCounts()
    progress: float = 0.0
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def done(self) -> bool:
        """Ended (done, canceled or failed): the counts are final."""
        return self.state in OPERATION_ENDED


class Schedule(_Model):
    """A schedule as the API lists it: its spec (name, type, payload, cron or interval_seconds, timezone,
    overlap, catch_up...) and its state (active, paused, ended, broken), next_run_at and counters."""

    name: str
    type: str
    payload: dict[str, Any] = {}
    queue: str | None = None
    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: int | None = None
    overlap: str = "allow"
    catch_up: str = "skip"
    paused: bool = False
    state: str = ""
    error: str | None = None
    source: str = "api"
    version: int = 0
    next_run_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_job_id: str | None = None
    fires: int = 0
    skipped: int = 0
    refused: int = 0


class ScheduleRun(_Model):
    tick: datetime | None = None
    at: datetime | None = None
    outcome: str = ""
    job_id: str | None = None
    job_status: str | None = None
    count: int | None = None


class ScheduleDetail(Schedule):
    """GET /v1/schedules/{name}: the schedule, its next ticks and its last runs (newest first)."""

    next_runs: list[datetime] = []
    runs: list[ScheduleRun] = []


class SchedulePage(_Model):
    items: list[Schedule]
    next_cursor: str | None = None


class Triggered(_Model):
    """The answer to a schedule's :trigger: the job it made now."""

    id: str
    status: str
    location: str
