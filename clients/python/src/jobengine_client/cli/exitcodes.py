"""The CLI's exit codes: scripts branch on them (also listed in clients/python/README.md)."""

from __future__ import annotations

from ..errors import (ApiError, Conflict, Forbidden, InvalidRequest, JobengineError, NotFound, OperationTimeout,
                      TooManyRequests, TransportError, Unauthorized, Unavailable, WaitTimeout)

OK = 0
JOB_FAILED = 1  # the job ended failed or canceled (submit --wait, get --wait); an operation did not end done
USAGE = 2  # bad arguments or options, or a request the API refused as invalid (400, 413, 415, 422)
NOT_FOUND = 3  # no such job or job type (404)
AUTH = 4  # no key, a wrong key (401) or a missing scope (403)
UNAVAILABLE = 5  # the API did not answer, or answered 429/5xx after the retries
TIMEOUT = 6  # --wait-timeout passed before the job (or the bulk operation) ended
CONFLICT = 7  # the state forbids it (409: cancel an ended job, a schedule name taken, a queue refusing submits)
INTERRUPTED = 130  # Ctrl-C (the shells' 128 + SIGINT); a job being waited for goes on

TABLE = [(OK, "success"),
         (JOB_FAILED, "the job failed or was canceled, or a followed bulk operation ended other than done"),
         (USAGE, "bad usage, or the API refused the request as invalid (400, 413, 415, 422)"),
         (NOT_FOUND, "no such job or job type (404)"), (AUTH, "no key, a wrong key or a missing scope (401, 403)"),
         (UNAVAILABLE, "API unreachable, or 429/5xx after the retries"),
         (TIMEOUT, "--wait-timeout passed before the job or operation ended"), (CONFLICT, "the state forbids it (409)"),
         (INTERRUPTED, "interrupted (Ctrl-C); a job being waited for goes on")]


def for_error(exc: JobengineError) -> int:
    if isinstance(exc, (Unauthorized, Forbidden)):
        return AUTH
    if isinstance(exc, NotFound):
        return NOT_FOUND
    if isinstance(exc, Conflict):
        return CONFLICT
    if isinstance(exc, InvalidRequest):
        return USAGE
    if isinstance(exc, (TransportError, Unavailable, TooManyRequests)):
        return UNAVAILABLE
    if isinstance(exc, (WaitTimeout, OperationTimeout)):
        return TIMEOUT
    if isinstance(exc, ApiError) and exc.status < 500:
        return USAGE
    return UNAVAILABLE
