"""Each API operation as a Call: the request to send and how to read its answer (no I/O here). Client and
AsyncClient send Calls with the same retry rules; a new endpoint (workers, queue pause, bulk operations,
schedules) is one builder here and a thin method on each client."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from .errors import ApiError, Conflict, NotFound, Unauthorized, from_problem
from .models import (Accepted, BatchItem, Job, JobTypeInfo, Operation, Page, QueuePause, QueueStats, Schedule,
                     ScheduleDetail, SchedulePage, StatusChange, Triggered, WorkerInfo)

T = TypeVar("T")


@dataclass
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    extra_timeout: float = 0.0  # a long poll holds the answer this much longer
    retry: bool = True  # False: one try (a probe must report what it sees)
    # False for an action the server does not make idempotent (an operation's create, a schedule's trigger): no
    # try after one that may have reached the server (a lost answer, a proxy's 502/504), lest it run twice
    resend: bool = True
    # After a try that may have reached the server (the answer was lost), an error of a later try can mean
    # "already done by the lost one": replay maps it to the result, or returns None to raise it.
    replay: Callable[[ApiError], T | None] | None = None


def _job_path(job_id: str) -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}"


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def submit(body: dict[str, Any], idempotency_key: str | None,
           result_model: type[BaseModel] | None = None) -> Call[Accepted]:
    key = idempotency_key or new_idempotency_key()  # one per logical submit: every retry sends the same one

    def parse(response: httpx.Response) -> Accepted:
        accepted = Accepted.model_validate(response.json())
        accepted.replayed = response.status_code == 200 or response.headers.get("idempotent-replayed") == "true"
        accepted.idempotency_key = key
        accepted._result_model = result_model
        return accepted

    return Call("POST", "/v1/jobs", parse, json=body, headers={"Idempotency-Key": key})


def submit_batch(items: Sequence[dict[str, Any]], offset: int) -> Call[list[BatchItem]]:
    """One chunk of a batch; `offset` turns the chunk's indexes into the caller's. Each item must carry an
    idempotency_key (submit_many gives one) so that retrying the chunk queues nothing twice."""

    keys = [item.get("idempotency_key") for item in items]

    def parse(response: httpx.Response) -> list[BatchItem]:
        out = []
        for result in response.json()["results"]:
            index = offset + int(result["index"])
            if "error" in result:
                err = result["error"]
                error = from_problem(int(err.get("status", 0)), err, retry_after=err.get("retry_after"))
                out.append(BatchItem(index=index, error=error, idempotency_key=keys[result["index"]]))
            else:
                out.append(BatchItem(index=index, id=result["id"], status=result["status"],
                                     replayed=bool(result.get("replayed", False)),
                                     idempotency_key=keys[result["index"]]))
        return out

    return Call("POST", "/v1/jobs:batch", parse, json={"jobs": list(items)})


def get_job(job_id: str, result_model: type[BaseModel] | None = None, wait: float = 0.0) -> Call[Job[Any]]:
    model: Any = Job[result_model] if result_model is not None else Job  # type: ignore[valid-type]

    def parse(response: httpx.Response) -> Job[Any]:
        return model.model_validate(response.json())  # type: ignore[no-any-return]

    params = {"wait": f"{wait:g}"} if wait > 0 else None
    return Call("GET", _job_path(job_id), parse, params=params, extra_timeout=wait)


def list_jobs(*, status: str | None = None, job_type: str | None = None, queue: str | None = None,
              limit: int = 50, cursor: str | None = None) -> Call[Page]:
    params: dict[str, Any] = {"limit": limit}
    for name, value in (("status", status), ("type", job_type), ("queue", queue), ("cursor", cursor)):
        if value is not None:
            params[name] = value
    return Call("GET", "/v1/jobs", lambda r: Page.model_validate(r.json()), params=params)


def _replayed(job_id: str, statuses: Collection[str] | None) -> Callable[[ApiError], StatusChange | None]:
    """After a lost answer, the 409 of a later try naming a state the lost try leads to is that try's effect, not
    an error: the job's state is returned (`statuses` None: any state the API refuses to change)."""

    def replay(error: ApiError) -> StatusChange | None:
        status = error.extra.get("job_status")
        if isinstance(error, Conflict) and isinstance(status, str) and (statuses is None or status in statuses):
            return StatusChange(id=job_id, status=status)
        return None

    return replay


def cancel(job_id: str) -> Call[StatusChange]:
    return Call("DELETE", _job_path(job_id), lambda r: StatusChange.model_validate(r.json()),
                replay=_replayed(job_id, {"canceled"}))


def retry(job_id: str) -> Call[StatusChange]:
    # a job the API will not requeue is no longer failed or canceled: the lost try requeued it (it may have run
    # since); had it not, this try would have
    return Call("POST", f"{_job_path(job_id)}/retry", lambda r: StatusChange.model_validate(r.json()),
                replay=_replayed(job_id, None))


def job_types() -> Call[list[JobTypeInfo]]:
    return Call("GET", "/v1/job-types", lambda r: [JobTypeInfo.model_validate(t) for t in r.json()["items"]])


def job_type(name: str) -> Call[JobTypeInfo]:
    return Call("GET", f"/v1/job-types/{quote(name, safe='')}", lambda r: JobTypeInfo.model_validate(r.json()))


def queues() -> Call[list[QueueStats]]:
    return Call("GET", "/v1/queues", lambda r: [QueueStats.model_validate(q) for q in r.json()["items"]])


# --- operators (admin scope) ---

def workers() -> Call[list[WorkerInfo]]:
    return Call("GET", "/v1/workers", lambda r: [WorkerInfo.model_validate(w) for w in r.json()["items"]])


def _queue_path(name: str) -> str:
    return f"/v1/queues/{quote(name, safe='')}"


def pause_queue(name: str, refuse_submits: bool = False) -> Call[QueuePause]:
    # idempotent on the server: pausing a paused queue sets refuse_submits and keeps it paused
    return Call("POST", f"{_queue_path(name)}:pause", lambda r: QueuePause.model_validate(r.json()),
                json={"refuse_submits": refuse_submits})


def resume_queue(name: str) -> Call[QueuePause]:
    return Call("POST", f"{_queue_path(name)}:resume", lambda r: QueuePause.model_validate(r.json()))


def _operation_path(op_id: str) -> str:
    return f"/v1/operations/{quote(op_id, safe='')}"


def create_operation(action: str, filter: dict[str, Any]) -> Call[Operation]:
    # POST /v1/operations takes no Idempotency-Key: a second try after a lost answer would start a second
    # operation (harmless for the jobs, which it finds changed, but a second resource): never resent once it may
    # have been delivered; retried only when refused (429, 503) or never sent (connection refused)
    return Call("POST", "/v1/operations", lambda r: Operation.model_validate(r.json()),
                json={"action": action, "filter": filter}, resend=False)


def operations() -> Call[list[Operation]]:
    return Call("GET", "/v1/operations", lambda r: [Operation.model_validate(o) for o in r.json()["items"]])


def operation(op_id: str) -> Call[Operation]:
    return Call("GET", _operation_path(op_id), lambda r: Operation.model_validate(r.json()))


def cancel_operation(op_id: str) -> Call[Operation]:
    # idempotent: an ended operation is answered as it is
    return Call("POST", f"{_operation_path(op_id)}:cancel", lambda r: Operation.model_validate(r.json()))


# --- schedules (the caller's tenant) ---

def _schedule_path(name: str) -> str:
    return f"/v1/schedules/{quote(name, safe='')}"


def create_schedule(spec: dict[str, Any]) -> Call[Schedule]:
    # the name is the schedule's key: a retry after a lost answer creates nothing twice; it gets 409
    # schedule-exists, raised as Conflict (the SDK cannot tell the lost try's schedule from an older one)
    return Call("POST", "/v1/schedules", lambda r: Schedule.model_validate(r.json()), json=spec)


def list_schedules(*, limit: int = 50, cursor: str | None = None) -> Call[SchedulePage]:
    params: dict[str, Any] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/v1/schedules", lambda r: SchedulePage.model_validate(r.json()), params=params)


def get_schedule(name: str, next_runs: int = 5) -> Call[ScheduleDetail]:
    return Call("GET", _schedule_path(name), lambda r: ScheduleDetail.model_validate(r.json()),
                params={"next": next_runs})


def update_schedule(name: str, changes: dict[str, Any]) -> Call[Schedule]:
    # a merge of the fields given: sending it twice leaves the same schedule
    return Call("PATCH", _schedule_path(name), lambda r: Schedule.model_validate(r.json()), json=changes)


def _gone(error: ApiError) -> bool | None:
    """After a lost answer, the 404 of a later try is the lost try's delete."""
    return True if isinstance(error, NotFound) else None


def delete_schedule(name: str) -> Call[bool]:
    return Call("DELETE", _schedule_path(name), lambda r: True, replay=_gone)


def trigger_schedule(name: str) -> Call[Triggered]:
    # each trigger makes a job (no idempotency key on the server): never resent once it may have been delivered
    return Call("POST", f"{_schedule_path(name)}:trigger", lambda r: Triggered.model_validate(r.json()),
                resend=False)


def pause_schedule(name: str) -> Call[Schedule]:
    return Call("POST", f"{_schedule_path(name)}:pause", lambda r: Schedule.model_validate(r.json()))


def resume_schedule(name: str) -> Call[Schedule]:
    return Call("POST", f"{_schedule_path(name)}:resume", lambda r: Schedule.model_validate(r.json()))


def revoke_self() -> Call[bool]:
    # after a lost answer, the next try's 401 is the revoked key: done
    return Call("POST", "/v1/keys/self:revoke", lambda r: True,
                replay=lambda error: True if isinstance(error, Unauthorized) else None)


def healthz() -> Call[dict[str, Any]]:
    return Call("GET", "/healthz", lambda r: dict(r.json()), retry=False)


def readyz() -> Call[dict[str, Any]]:
    return Call("GET", "/readyz", lambda r: dict(r.json()), retry=False)
