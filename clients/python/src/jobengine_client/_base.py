"""What Client and AsyncClient share: configuration, the retry decisions of one Call, and the pure parts of
wait and submit_many. The two clients differ only in how they send a request and sleep."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from . import calls
from .config import resolve
from .errors import ApiError, InvalidRequest, TransportError, from_response
from .models import Accepted, BatchItem, BatchResult, Job, JobSummary, Operation, Progress
from .retry import RETRY_STATUSES, RetryPolicy
from .typed import JobSpec, JobTypeRef, NewJob, Payload, payload_json, result_model, type_name

log = logging.getLogger("jobengine_client")
T = TypeVar("T")

MAX_BATCH = 1000  # the API's default JOBENGINE_MAX_BATCH_SIZE; pass chunk_size= for a server set lower
LONG_POLL = 25.0  # seconds a long poll may last: under the API's default JOBENGINE_MAX_WAIT_SECONDS (30)
USER_AGENT = "jobengine-client/0.1"

JobRef = str | Accepted | JobSummary
ResultModel = type[BaseModel] | JobSpec | None


class Settings:
    """The resolved configuration of a client."""

    def __init__(self, url: str | None, api_key: str | None, timeout: float, retries: RetryPolicy | int | None,
                 headers: Mapping[str, str] | None, long_poll: float) -> None:
        self.url, self.api_key = resolve(url, api_key)
        self.timeout = timeout
        self.retries = RetryPolicy(attempts=retries) if isinstance(retries, int) else (retries or RetryPolicy())
        self.long_poll = long_poll
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if self.api_key:
            self.headers["Authorization"] = f"Bearer {self.api_key}"

    def http_kwargs(self) -> dict[str, Any]:
        return {"base_url": self.url, "headers": self.headers, "timeout": self.timeout}


class Retry:
    """The answer of Attempts: wait `delay` seconds, then try again."""

    __slots__ = ("delay",)

    def __init__(self, delay: float) -> None:
        self.delay = delay


class Attempts(Generic[T]):
    """The tries of one Call: decides after each failure whether to try again and after how long."""

    def __init__(self, call: calls.Call[T], policy: RetryPolicy) -> None:
        self.call = call
        self.policy = policy
        self.number = 0
        self.started = time.monotonic()
        self.maybe_sent = False  # a failed try may have reached the server (its answer was lost)

    def request_kwargs(self, timeout: float) -> dict[str, Any]:
        self.number += 1
        call = self.call
        kwargs: dict[str, Any] = {"params": call.params, "headers": call.headers}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.extra_timeout:
            kwargs["timeout"] = httpx.Timeout(timeout, read=timeout + call.extra_timeout)
        return kwargs

    def _next(self, retry_after: float | None) -> float | None:
        if not self.call.retry:
            return None
        return self.policy.next_delay(self.number, time.monotonic() - self.started, retry_after)

    def after_transport_error(self, exc: httpx.TransportError) -> Retry:
        # a refused connection sent nothing; a reset or a timeout after connecting may have delivered the request
        if not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
            self.maybe_sent = True
        if self.maybe_sent and not self.call.resend:
            raise TransportError(f"{self.call.method} {self.call.path}: {type(exc).__name__}: {exc}; the request "
                                 "may have reached the server and is not sent again (not idempotent): check "
                                 "before repeating it") from exc
        delay = self._next(None)
        if delay is None:
            raise TransportError(f"{self.call.method} {self.call.path}: {type(exc).__name__}: {exc} "
                                 f"(after {self.number} tries)") from exc
        log.info("retrying %s %s in %.2f s after %r", self.call.method, self.call.path, delay, exc)
        return Retry(delay)

    def after_response(self, response: httpx.Response) -> T | Retry:
        if response.status_code < 400:
            return self.call.parse(response)
        error = from_response(response)
        if self.maybe_sent and self.call.replay is not None:
            replayed = self.call.replay(error)
            if replayed is not None:
                return replayed
        if response.status_code in (502, 504) and not self.call.resend:
            raise error  # a proxy's answer: the API may have done it
        if response.status_code in RETRY_STATUSES:
            delay = self._next(error.retry_after)
            if delay is not None:
                log.info("retrying %s %s in %.2f s after %s", self.call.method, self.call.path, delay, error)
                return Retry(delay)
        raise error


def operation_filter(*, queue: str | None = None, type: str | None = None, tenant: str | None = None,
                     status: Iterable[str] | str | None = None, created_after: datetime | None = None,
                     created_before: datetime | None = None) -> dict[str, Any]:
    """The filter of a bulk operation as JSON: only the fields given."""
    out: dict[str, Any] = {}
    for name, value in (("queue", queue), ("type", type), ("tenant", tenant)):
        if value is not None:
            out[name] = value
    if status is not None:
        out["status"] = [status] if isinstance(status, str) else list(status)
    for name, when in (("created_after", created_after), ("created_before", created_before)):
        if when is not None:
            out[name] = when.isoformat()
    return out


def schedule_spec(name: str, job_type: JobTypeRef, payload: Payload, options: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule spec as JSON: name, type, payload (checked by the type's input model when given a declaration)
    and the other fields given (None values left out: the server's defaults apply)."""
    spec: dict[str, Any] = {"name": name, "type": type_name(job_type), "payload": payload_json(job_type, payload)}
    for key, value in options.items():
        if value is not None:
            spec[key] = value.isoformat() if isinstance(value, datetime) else value
    return spec


def op_id(op: str | Operation) -> str:
    return op if isinstance(op, str) else op.id


def job_id(job: JobRef) -> str:
    return job if isinstance(job, str) else job.id


def model_of(job: JobRef, model: ResultModel) -> type[BaseModel] | None:
    """The result model to parse with: the one given (a model or a job type declaration), else the one the job
    was submitted with."""
    if model is not None:
        return model if isinstance(model, type) else result_model(model)
    if isinstance(job, Accepted):
        return job._result_model  # type: ignore[no-any-return]
    return None


class WaitState:
    """The pure part of wait(): how long each long poll lasts, and when progress is news."""

    def __init__(self, timeout: float | None, long_poll: float, poll_interval: float | None) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.long_poll = long_poll
        self.poll_interval = poll_interval  # with a progress callback: read this often to see reports
        self.seen: tuple[str, Progress | None] | None = None

    def next_wait(self) -> float:
        wait = self.long_poll if self.poll_interval is None else min(self.long_poll, self.poll_interval)
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.monotonic())
        return max(0.0, wait)

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def pause(self) -> float:
        """Seconds to sleep after a read of a job still running: none while long polls do the waiting."""
        if self.long_poll > 0:
            return 0.0
        pause = self.poll_interval or 0.5
        if self.deadline is not None:
            pause = min(pause, self.deadline - time.monotonic())
        return max(0.0, pause)

    def adapt(self, error: ApiError) -> bool:
        """A server whose JOBENGINE_MAX_WAIT_SECONDS is below the client's long poll refuses it (422 naming `wait`,
        "must be <= N"): long polls of N seconds from then on. False for any other error."""
        limit = server_limit(error, "wait", r"must be <= ([0-9.e+]+)")
        if limit is None or limit >= self.long_poll:
            return False
        self.long_poll = limit
        return True

    def is_news(self, job: Job[Any]) -> bool:
        state = (job.status, job.progress)
        news = state != self.seen
        self.seen = state
        return news


def server_limit(error: ApiError, field: str, pattern: str) -> float | None:
    """A limit of the server's settings stated in a 422's message for `field` (the API words them in
    routes/jobs.py: "must be <= 30", "between 1 and 1000 jobs per batch"); None when the error is another."""
    if not isinstance(error, InvalidRequest):
        return None
    for message in error.field_errors.get(field, []):
        found = re.search(pattern, message)
        if found:
            try:
                return float(found.group(1))
            except ValueError:
                return None
    return None


def smaller_batch(error: ApiError, size: int) -> int | None:
    """The server's batch limit when it refused a chunk of `size` jobs for being too many (a server with a
    JOBENGINE_MAX_BATCH_SIZE below the client's chunk size); None for any other error."""
    limit = server_limit(error, "jobs", r"between 1 and (\d+) jobs")
    return int(limit) if limit is not None and 1 <= limit < size else None


def batch_bodies(jobs: Iterable[NewJob | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The items of submit_many as JSON, each with an idempotency_key (a fresh one unless given)."""
    out = []
    for job in jobs:
        body = job.to_json() if isinstance(job, NewJob) else dict(job)
        body.setdefault("idempotency_key", calls.new_idempotency_key())
        out.append(body)
    return out


def batch_result(items: list[BatchItem]) -> BatchResult:
    items.sort(key=lambda item: item.index)
    accepted = sum(1 for item in items if item.ok)
    return BatchResult(accepted=accepted, rejected=len(items) - accepted, items=items)
