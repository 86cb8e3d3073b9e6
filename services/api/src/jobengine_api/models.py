"""Request and response models.

The submit body is a discriminated union on "type" built from the catalog at start, so each job
type's payload is validated by its own input model and /docs shows every type's schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, create_model, field_validator

from jobengine.catalog import Catalog, JobType, RetryPolicy
from jobengine.settings import QUEUE_NAME_PATTERN

from .events import EVENT_TYPES

MAX_DELAY_SECONDS = 365 * 86_400
MAX_TTL_SECONDS = 365 * 86_400
MAX_TIMEOUT_SECONDS = 7 * 86_400
IDEMPOTENCY_KEY_MAX = 200


JOB_ID_REGEX = r"^[A-Za-z0-9_-]{1,64}$"
FLOW_NAME_REGEX = JOB_ID_REGEX  # a node's name in a flow
MAX_DEPENDS_ON = 100_000  # a model bound; the settings' limits (JOBENGINE_MAX_DEPENDS_ON, ...) are checked after


class Dependency(BaseModel):
    """One dependency with its policy: `success` (default) waits for it to finish; `any` waits for it to end
    in any state (finished, failed, canceled)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=JOB_ID_REGEX, description="The id of a job of the caller's tenant.")
    on: Literal["success", "any"] = "success"


class JobOptions(BaseModel):
    """Fields every submission may carry besides type and payload; unset ones use the job type's defaults."""

    model_config = ConfigDict(extra="forbid")

    # numbers are strict (strict=True): JSON true/false is not a number, and pydantic's lax mode would take it as 1/0
    queue: str | None = Field(None, pattern=QUEUE_NAME_PATTERN,
                              description="Queue; default: the job type's. A declared queue only: a job type's own or "
                              "one the deployment's workers serve (otherwise 422, listing them).")
    delay_seconds: float | None = Field(None, ge=0, le=MAX_DELAY_SECONDS, strict=True,
                                        description="Run after this delay.")
    run_at: datetime | None = Field(None, description="Run at this time (RFC 3339; UTC when no offset), at most "
                                    "365 days ahead.")
    timeout: int | None = Field(None, ge=1, le=MAX_TIMEOUT_SECONDS, strict=True,
                                description="Seconds before a run is killed.")
    retry: RetryPolicy | None = Field(None, description="Overrides the job type's retry policy.")
    result_ttl: int | None = Field(None, ge=1, le=MAX_TTL_SECONDS, strict=True,
                                   description="Seconds the result stays readable.")
    depends_on: list[Annotated[str, Field(pattern=JOB_ID_REGEX)] | Dependency] | None = Field(
        None, min_length=1, max_length=MAX_DEPENDS_ON,
        description="Jobs (ids of the caller's tenant) this job waits for: it is `deferred` until they end, then "
        "queued, or ended by on_dependency_failure when one it requires ends failed or canceled. A plain id "
        "requires success. Not with delay_seconds or run_at; POST /v1/jobs only (not in a batch).")
    on_dependency_failure: Literal["fail", "cancel"] = Field(
        "fail", description="What a required dependency that ends failed or canceled does to this job.")
    callback_url: str | None = Field(None, max_length=2048, description="POSTed the job's end event (job.finished, "
                                     "job.failed or job.canceled), signed per Standard Webhooks with the tenant's "
                                     "callback secret (POST /v1/webhooks/callback-secret:rotate), at least once.")

    @field_validator("run_at")
    @classmethod
    def _one_schedule(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if info.data.get("delay_seconds") is not None:
            raise ValueError("give delay_seconds or run_at, not both")
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if value > datetime.now(timezone.utc) + timedelta(seconds=MAX_DELAY_SECONDS):
            raise ValueError(f"at most {MAX_DELAY_SECONDS // 86_400} days ahead (as delay_seconds)")
        return value


class BatchItemOptions(JobOptions):
    idempotency_key: str | None = Field(None, min_length=1, max_length=IDEMPOTENCY_KEY_MAX,
                                        description="Like the Idempotency-Key header, for this item.")


def _model_name(job_type: str, suffix: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", job_type) if part) + suffix


def _submission_model(job_type: JobType, base: type[JobOptions], suffix: str) -> type[JobOptions]:
    return create_model(  # type: ignore[call-overload,no-any-return]
        _model_name(job_type.name, suffix),
        __base__=base,
        __doc__=job_type.description or f"A {job_type.name} job.",
        type=(Literal[job_type.name], Field(description="The job type.")),  # type: ignore[valid-type]
        payload=(job_type.input_model, Field(description=f"Input of {job_type.name}.")),
    )


def _union(models: list[type[JobOptions]]) -> Any:
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007


@dataclass(frozen=True)
class Submissions:
    """Validators of submit bodies, built once from the catalog."""

    single: TypeAdapter[Any]
    batch_item: TypeAdapter[Any]
    tags: frozenset[str]

    @classmethod
    def build(cls, catalog: Catalog) -> Submissions:
        types = list(catalog)
        if not types:
            raise RuntimeError("the job catalog is empty: no job type can be submitted")
        single = [_submission_model(t, JobOptions, "Job") for t in types]
        batch = [_submission_model(t, BatchItemOptions, "BatchItem") for t in types]
        return cls(TypeAdapter(_union(single)), TypeAdapter(_union(batch)), frozenset(t.name for t in types))

    def openapi_components(self, max_batch: int) -> dict[str, Any]:
        """JSON schemas of the submit bodies, for /openapi.json (the handlers read raw bytes for speed)."""
        ref = "#/components/schemas/{model}"
        components: dict[str, Any] = {}
        for name, adapter in (("JobSubmission", self.single), ("BatchJobItem", self.batch_item)):
            schema = adapter.json_schema(ref_template=ref)
            components.update(schema.pop("$defs", {}))
            components[name] = schema
        components["BatchSubmission"] = {
            "type": "object", "title": "BatchSubmission", "required": ["jobs"], "additionalProperties": False,
            "properties": {"jobs": {"type": "array", "minItems": 1, "maxItems": max_batch,
                                    "items": {"$ref": ref.format(model="BatchJobItem")}}},
        }
        return components


# --- responses (documentation; handlers build plain dicts rendered by orjson) ---

class JobAccepted(BaseModel):
    id: str
    status: str
    type: str
    queue: str
    location: str
    run_at: datetime | None = None


class BatchItemAccepted(BaseModel):
    index: int
    id: str
    status: str
    replayed: bool = False


class FieldError(BaseModel):
    field: str
    message: str


class ProblemDetail(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class BatchItemRejected(BaseModel):
    index: int
    error: ProblemDetail


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItemAccepted | BatchItemRejected]


class Progress(BaseModel):
    fraction: float | None = None
    message: str | None = None


class JobSummary(BaseModel):
    id: str
    type: str
    queue: str
    status: str
    created_at: datetime | None
    enqueued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None


class JobDetail(JobSummary):
    payload: dict[str, Any] | None
    result: Any = None
    error: str | None = None
    attempts: int
    retries_left: int | None
    scheduled_for: datetime | None = None
    progress: Progress | None = None
    worker: str | None = None


class JobList(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None


class JobStatusChange(BaseModel):
    id: str
    status: str


class JobTypeInfo(BaseModel):
    name: str
    description: str
    queue: str
    timeout: int
    retry: RetryPolicy
    result_ttl: int
    max_payload_bytes: int | None = None
    input_schema: dict[str, Any]
    result_schema: dict[str, Any]


class JobTypeList(BaseModel):
    items: list[JobTypeInfo]


class QueueStats(BaseModel):
    name: str
    depth: int
    in_flight: int
    scheduled: int
    failed: int
    finished: int
    canceled: int
    workers: int
    deferred: int = Field(0, description="Jobs waiting for their dependencies (rq:deferred:<name>).")
    paused: bool = Field(description="Its jobs are not claimed (POST /v1/queues/{name}:pause).")
    refuse_submits: bool = Field(False, description="Paused with refuse_submits: submits to it get 409.")
    paused_since: datetime | None = None


class QueueList(BaseModel):
    items: list[QueueStats]


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refuse_submits: bool = Field(False, description="Refuse submits to the queue (409) while it is paused; "
                                 "default: accept them, they run after the resume.")


class QueuePause(BaseModel):
    name: str
    paused: bool
    refuse_submits: bool = False
    paused_since: datetime | None = None


class CurrentJob(BaseModel):
    id: str
    since: datetime | None = Field(None, description="When the worker started it.")


class WorkerInfo(BaseModel):
    name: str
    pool: str | None
    queues: list[str]
    state: str = Field(description="busy or idle, as of the last heartbeat")
    current_job: CurrentJob | None
    last_heartbeat: datetime | None
    heartbeat_age_seconds: float | None
    jobs_finished: int
    jobs_failed: int
    rss_bytes: int | None = Field(description="Resident memory of the worker's processes (supervisor and executor).")
    hostname: str | None
    pid: int | None
    birth: datetime | None


class WorkerList(BaseModel):
    items: list[WorkerInfo]


OperationAction = Literal["retry", "cancel", "delete"]


class OperationFilter(BaseModel):
    """Which jobs a bulk operation changes: all of its action's jobs by default, narrowed by each field given."""

    model_config = ConfigDict(extra="forbid")
    queue: str | None = Field(None, pattern=QUEUE_NAME_PATTERN, description="One declared queue; default: all.")
    type: str | None = Field(None, max_length=200, description="Job type name.")
    tenant: str | None = Field(None, min_length=1, max_length=200, description="Jobs submitted by this tenant.")
    status: list[Literal["finished", "failed", "canceled"]] | None = Field(
        None, min_length=1, description="delete only: which ended jobs (default: all three).")
    created_after: datetime | None = Field(None, description="Jobs submitted at or after this time.")
    created_before: datetime | None = Field(None, description="Jobs submitted before this time.")


class OperationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: OperationAction = Field(description="retry: failed jobs, with a fresh retry budget; cancel: waiting "
                                    "(queued or scheduled) jobs; delete: ended (finished, failed, canceled) jobs.")
    filter: OperationFilter = Field(default_factory=OperationFilter)


class OperationCounts(BaseModel):
    examined: int = Field(description="Registry entries looked at so far.")
    matched: int = Field(description="Jobs that matched the filter and were changed.")
    skipped: int = Field(description="Entries left alone: not matching, changed since, or after the operation began.")


class Operation(BaseModel):
    id: str
    action: OperationAction
    filter: OperationFilter
    state: Literal["pending", "running", "done", "canceled", "failed"]
    counts: OperationCounts
    progress: float = Field(description="Registries walked, 0 to 1 (by registry, then position).")
    error: str | None = Field(None, description="failed: the error Redis answered a step with.")
    created_at: datetime
    updated_at: datetime | None
    ended_at: datetime | None


class OperationList(BaseModel):
    items: list[Operation]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="Where events are POSTed: http:// or https://; private, loopback and link-local "
                     "addresses are refused unless JOBENGINE_WEBHOOKS_ALLOW_PRIVATE.")
    events: list[str] = Field(default_factory=list, description="Event types sent (empty: all of them).")
    description: str = Field("", max_length=200)

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if unknown := sorted(set(value) - set(EVENT_TYPES)):
            raise ValueError(f"unknown event type {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})")
        return value


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    events: list[str] | None = None
    description: str | None = Field(None, max_length=200)
    enabled: bool | None = None

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else WebhookCreate._known(value)
