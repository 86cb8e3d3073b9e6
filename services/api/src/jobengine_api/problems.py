"""RFC 9457 problem details: every error of the API is application/problem+json."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis.exceptions import OutOfMemoryError
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobengine.redis_conn import TRANSIENT_ERRORS, PoolExhausted

from .responses import ProblemResponse

log = logging.getLogger(__name__)

TYPE_PREFIX = "urn:jobengine:problem:"
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 409: "Conflict", 415: "Unsupported Media Type", 429: "Too Many Requests",
           413: "Content Too Large", 422: "Unprocessable Content", 500: "Internal Server Error",
           503: "Service Unavailable"}


class Problem(Exception):
    """Raise anywhere in a handler to answer with a problem document."""

    def __init__(self, status: int, slug: str, detail: str, *, title: str | None = None,
                 errors: list[dict[str, str]] | None = None, headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title or _TITLES.get(status, "Error")
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self, instance: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": TYPE_PREFIX + self.slug, "title": self.title, "status": self.status,
                               "detail": self.detail, "instance": instance}
        if self.errors is not None:
            doc["errors"] = self.errors
        doc.update(self.extra)
        return doc

    def response(self, instance: str) -> ProblemResponse:
        return ProblemResponse(self.body(instance), status_code=self.status, headers=self.headers)


class BodyTooLarge(Exception):
    """Raised by the body-limit middleware while a streamed body is being read."""


class BodyTimeout(Exception):
    """Raised by the body-limit middleware when the body is not in by its deadline."""


def field_path(loc: Iterable[Any], skip: int = 0) -> str:
    parts = [str(p) for p in list(loc)[skip:]]
    return ".".join(parts) if parts else "body"


def validation_errors(errors: Sequence[Mapping[str, Any]], *, prefix: str = "", skip_tag: set[str] | None = None
                      ) -> list[dict[str, str]]:
    """Pydantic errors -> [{"field", "message"}]. `skip_tag` drops the discriminator tag pydantic puts in loc."""
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if skip_tag and loc and loc[0] in skip_tag:
            loc = loc[1:]
        if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            loc = ["type"]
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            message = "malformed JSON: " + str(err.get("ctx", {}).get("error", message))
        path = field_path(loc)
        out.append({"field": f"{prefix}{path}" if prefix else path, "message": message})
    return out


def invalid(errors: list[dict[str, str]], detail: str = "The request is not valid.") -> Problem:
    return Problem(422, "validation", detail, title="Validation failed", errors=errors)


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", f"{what} was not found (it may have expired).")


def unavailable(detail: str = "Redis is unreachable; retry shortly.") -> Problem:
    return Problem(503, "unavailable", detail, headers={"Retry-After": "1"})


REDIS_FULL_RETRY_AFTER = 5  # seconds: memory comes back as jobs end and their keys expire, not at once


def redis_full(detail: str = "Redis is out of memory and refuses new writes; retry later.") -> Problem:
    """Redis refused a write: used memory is over its maxmemory (noeviction), or near it (the API's memory
    guard). Nothing was written."""
    return Problem(503, "redis-out-of-memory", detail, headers={"Retry-After": str(REDIS_FULL_RETRY_AFTER)})


def too_many(reason: str, retry_after: int, queue: str) -> Problem:
    """429 for a submission refused by a backlog limit ("queue_full"), the tenant's backlog quota
    ("tenant_quota") or the key's rate limit ("rate_limited")."""
    if reason == "queue_full":
        return Problem(429, "queue-full", f"Queue {queue!r} is at its backlog limit; retry later.",
                       headers={"Retry-After": str(retry_after)}, extra={"queue": queue})
    if reason == "tenant_quota":
        return Problem(429, "tenant-quota", "Your tenant holds as many unfinished jobs as its quota allows; retry "
                       "when some have ended.", headers={"Retry-After": str(retry_after)})
    return Problem(429, "rate-limited", "This API key's submission rate limit is exhausted; retry later.",
                   headers={"Retry-After": str(retry_after)})


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    async def on_problem(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, Problem)
        return exc.response(request.url.path)

    async def on_request_validation(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, (RequestValidationError, ValidationError))
        errors = []
        for item in validation_errors(exc.errors()):
            # FastAPI prefixes the location kind (path, query, header, body); keep the name only.
            field = item["field"].split(".", 1)
            if field[0] in ("path", "query", "header", "cookie", "body") and len(field) == 2:
                item["field"] = field[1]
            errors.append(item)
        return invalid(errors).response(request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        return Problem(exc.status_code, slug, detail, headers=exc.headers).response(request.url.path)

    async def on_too_large(request: Request, exc: Exception) -> ProblemResponse:
        return too_large(request.app.state.settings.max_body_bytes).response(request.url.path)

    async def on_body_timeout(request: Request, exc: Exception) -> ProblemResponse:
        timeout = request.app.state.settings.http_body_timeout_seconds
        problem = Problem(408, "request-timeout", f"The request body did not arrive within {timeout:g} s.",
                          headers={"Connection": "close"})  # the rest of the body must not be read as a request
        return problem.response(request.url.path)

    async def on_redis_down(request: Request, exc: Exception) -> ProblemResponse:
        log.warning("redis unavailable", extra={"error": repr(exc), "path": request.url.path})
        if isinstance(exc, PoolExhausted):  # Redis may be fine: this process has no free connection
            return Problem(503, "redis-pool-exhausted", f"The API's Redis connection pool is exhausted ({exc}); "
                           "retry shortly.", headers={"Retry-After": "1"}).response(request.url.path)
        return unavailable().response(request.url.path)

    async def on_redis_full(request: Request, exc: Exception) -> ProblemResponse:
        log.warning("redis out of memory", extra={"error": repr(exc), "path": request.url.path})
        return redis_full().response(request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> ProblemResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return Problem(500, "internal", "An unexpected error occurred.").response(request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(BodyTooLarge, on_too_large)
    app.add_exception_handler(BodyTimeout, on_body_timeout)
    for error in TRANSIENT_ERRORS:
        app.add_exception_handler(error, on_redis_down)
    app.add_exception_handler(OutOfMemoryError, on_redis_full)  # a cancel or retry; submits count it first
    app.add_exception_handler(Exception, on_unexpected)


def too_large(limit: int) -> Problem:
    return Problem(413, "too-large", f"The request body is larger than {limit} bytes.")
