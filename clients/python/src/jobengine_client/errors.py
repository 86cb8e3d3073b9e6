"""Exceptions: every API error carries the fields of the server's problem+json document (RFC 9457)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from .models import Job


class JobengineError(Exception):
    """Base of every exception this package raises."""


class TransportError(JobengineError):
    """The API could not be reached (connection refused or reset, timeout), after the retries."""


class ApiError(JobengineError):
    """An error answer of the API: `status`, and the problem document's `type`, `title`, `detail`,
    `instance`, `errors` (a list of {"field", "message"}) and any extension member in `extra`."""

    def __init__(self, status: int, problem: Mapping[str, Any] | None = None, *, retry_after: float | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        doc = dict(problem or {})
        self.status = status
        self.type: str = str(doc.pop("type", "about:blank"))
        self.title: str = str(doc.pop("title", f"HTTP {status}"))
        self.detail: str = str(doc.pop("detail", ""))
        self.instance: str | None = doc.pop("instance", None)
        doc.pop("status", None)
        self.errors: list[dict[str, str]] = list(doc.pop("errors", None) or [])
        self.extra: dict[str, Any] = doc
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        super().__init__(f"{status} {self.title}: {self.detail}" if self.detail else f"{status} {self.title}")

    @property
    def field_errors(self) -> dict[str, list[str]]:
        """The messages by field name (`payload.lowest`, `queue`, `Idempotency-Key`...)."""
        out: dict[str, list[str]] = {}
        for item in self.errors:
            out.setdefault(str(item.get("field", "")), []).append(str(item.get("message", "")))
        return out

    @property
    def slug(self) -> str:
        """The last part of `type` (`urn:jobengine:problem:queue-full` -> `queue-full`)."""
        return self.type.rsplit(":", 1)[-1].rsplit("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if self.instance is not None:
            doc["instance"] = self.instance
        if self.errors:
            doc["errors"] = self.errors
        doc.update(self.extra)
        return doc


class InvalidRequest(ApiError):
    """400, 413, 415, 422: the request is wrong; `errors` names the fields. Never retried."""


class Unauthorized(ApiError):
    """401: no API key, or an unknown, wrong or revoked one."""


class Forbidden(ApiError):
    """403: the API key lacks the scope of the operation."""


class NotFound(ApiError):
    """404: no such job (or job type) for this tenant; jobs expire after their result TTL."""


class Conflict(ApiError):
    """409: the job's state does not allow it (`extra["job_status"]`), or an Idempotency-Key reused with
    another body."""


class TooManyRequests(ApiError):
    """429: queue backlog limit, tenant quota or rate limit; retried after Retry-After until the retries end."""


class Unavailable(ApiError):
    """503 (Redis unreachable or full) or another 5xx; retried after Retry-After until the retries end."""


class JobFailed(JobengineError):
    """Raised by Job.raise_for_failure() for a failed or canceled job."""

    def __init__(self, job: Job[Any]) -> None:
        self.job = job
        super().__init__(f"job {job.id} {job.status}: {job.error or ''}".rstrip(": "))


class WaitTimeout(JobengineError):
    """wait() reached its timeout before the job ended; `job` is the last state read."""

    def __init__(self, job: Job[Any], timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(f"job {job.id} still {job.status} after {timeout:g} s")


class OperationTimeout(JobengineError):
    """wait_operation() reached its timeout before the operation ended; `operation` is the last state read
    (it goes on in the background)."""

    def __init__(self, operation: Any, timeout: float) -> None:
        self.operation = operation
        self.timeout = timeout
        super().__init__(f"operation {operation.id} still {operation.state} after {timeout:g} s")


_BY_STATUS: dict[int, type[ApiError]] = {400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
                                         409: Conflict, 413: InvalidRequest, 415: InvalidRequest,
                                         422: InvalidRequest, 429: TooManyRequests}


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (the API sends delta-seconds; an HTTP date is not used by it)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def from_response(response: httpx.Response) -> ApiError:
    """The exception of an error answer; a body that is not JSON still gives an ApiError with its status."""
    status = response.status_code
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        doc = {"title": response.reason_phrase or f"HTTP {status}", "detail": response.text[:500]}
    return from_problem(status, doc, retry_after=retry_after(response.headers), headers=response.headers)


def from_problem(status: int, doc: Mapping[str, Any], *, retry_after: float | None = None,
                 headers: Mapping[str, str] | None = None) -> ApiError:
    """The exception class of `status` (ApiError's subclasses) built from a problem document."""
    cls = _BY_STATUS.get(status) or (Unavailable if status >= 500 else ApiError)
    return cls(status, doc, retry_after=retry_after, headers=headers)
