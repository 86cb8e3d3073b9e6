"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar, overload

import httpx
from pydantic import BaseModel

from . import calls
from ._base import (LONG_POLL, MAX_BATCH, Attempts, JobRef, ResultModel, Retry, Settings, WaitState, batch_bodies,
                    batch_result, job_id, model_of, smaller_batch)
from .errors import ApiError, InvalidRequest, TransportError, WaitTimeout
from .models import Accepted, BatchItem, BatchResult, Job, JobSummary, JobTypeInfo, Page, QueueStats, StatusChange
from .retry import RetryPolicy
from .typed import JobSpec, JobTypeRef, NewJob, Payload, options_json, payload_json, result_model, type_name

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
ProgressCallback = Callable[[Job[Any]], None]


class Client:
    """A client of the jobengine HTTP API.

    `url` and `api_key` default to JOBENGINE_URL and JOBENGINE_API_KEY. `retries`: a RetryPolicy, or the number
    of tries; requests are retried on connection errors, 429, 502, 503 and 504 (honouring Retry-After), never on
    another 4xx. Use as a context manager, or call close().
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = 10.0,
                 retries: RetryPolicy | int | None = None, headers: Mapping[str, str] | None = None,
                 long_poll: float = LONG_POLL, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = Settings(url, api_key, timeout, retries, headers, long_poll)
        self._http = httpx.Client(transport=transport, **self.settings.http_kwargs())

    @property
    def url(self) -> str:
        return self.settings.url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, call: calls.Call[T]) -> T:
        """Send a Call (calls.py) with the retry policy; its parsed answer, or an ApiError / TransportError."""
        attempts = Attempts(call, self.settings.retries)
        while True:
            try:
                response = self._http.request(call.method, call.path,
                                              **attempts.request_kwargs(self.settings.timeout))
            except httpx.TransportError as exc:
                outcome: T | Retry = attempts.after_transport_error(exc)
            else:
                outcome = attempts.after_response(response)
            if not isinstance(outcome, Retry):
                return outcome
            time.sleep(outcome.delay)

    # --- jobs ---

    def submit(self, job_type: JobTypeRef, payload: Payload = None, *, queue: str | None = None,
               delay_seconds: float | None = None, run_at: datetime | None = None, timeout: int | None = None,
               retry: Mapping[str, Any] | None = None, result_ttl: int | None = None,
               idempotency_key: str | None = None) -> Accepted:
        """Submit one job. `job_type` is a name, or a job type declaration (typed use: `payload` is then checked
        by its input model, and get/wait of the returned handle parse the result into its result model).
        An Idempotency-Key (generated unless given) is sent with every try of this call: a retry after a lost
        answer returns the same job (`replayed`)."""
        body = {"type": type_name(job_type), "payload": payload_json(job_type, payload),
                **options_json(queue=queue, delay_seconds=delay_seconds, run_at=run_at, timeout=timeout,
                               retry=retry, result_ttl=result_ttl)}
        return self.send(calls.submit(body, idempotency_key, result_model(job_type)))

    def submit_many(self, jobs: Iterable[NewJob | Mapping[str, Any]], *, chunk_size: int = MAX_BATCH
                    ) -> BatchResult:
        """Submit jobs in batches of at most `chunk_size` (one request each). The result lists every item by its
        index in `jobs`: its id, or its error (an ApiError; items are accepted or refused one by one)."""
        bodies = batch_bodies(jobs)
        items: list[BatchItem] = []
        offset = 0
        while offset < len(bodies):
            chunk = bodies[offset:offset + chunk_size]
            try:
                done: list[BatchItem] = self.send(calls.submit_batch(chunk, offset))
                items.extend(done)
            except InvalidRequest as exc:
                chunk_size = smaller_batch(exc, len(chunk)) or 0
                if not chunk_size:
                    raise
                continue  # the server's limit is lower: the same jobs again, in smaller chunks
            offset += len(chunk)
        return batch_result(items)

    @overload
    def get(self, job: JobRef, *, result_model: type[M]) -> Job[M]: ...

    @overload
    def get(self, job: JobRef, *, result_model: JobSpec | None = None) -> Job[Any]: ...

    def get(self, job: JobRef, *, result_model: ResultModel = None) -> Job[Any]:
        """Read a job: status, result (as `result_model` when given or known from a typed submit), error,
        timings and progress. NotFound once it has expired."""
        return self.send(calls.get_job(job_id(job), model_of(job, result_model)))

    @overload
    def wait(self, job: JobRef, *, timeout: float | None = None, on_progress: ProgressCallback | None = None,
             poll_interval: float = 0.5, result_model: type[M]) -> Job[M]: ...

    @overload
    def wait(self, job: JobRef, *, timeout: float | None = None, on_progress: ProgressCallback | None = None,
             poll_interval: float = 0.5, result_model: JobSpec | None = None) -> Job[Any]: ...

    def wait(self, job: JobRef, *, timeout: float | None = None, on_progress: ProgressCallback | None = None,
             poll_interval: float = 0.5, result_model: ResultModel = None) -> Job[Any]:
        """Wait until the job has ended (long polls of GET /v1/jobs/{id}?wait=) and return it, whatever its
        outcome (see Job.raise_for_failure). `on_progress(job)` is called on each change of status or
        progress, read every `poll_interval` seconds. WaitTimeout after `timeout` seconds."""
        state = WaitState(timeout, self.settings.long_poll, poll_interval if on_progress else None)
        ident, model = job_id(job), model_of(job, result_model)
        while True:
            try:
                current = self.send(calls.get_job(ident, model, wait=state.next_wait()))
            except InvalidRequest as exc:
                if state.adapt(exc):
                    continue
                raise
            if on_progress is not None and state.is_news(current):
                on_progress(current)
            if current.done:
                return current
            if state.expired():
                raise WaitTimeout(current, timeout or 0.0)
            if pause := state.pause():
                time.sleep(pause)

    def list_page(self, *, status: str | None = None, type: str | None = None, queue: str | None = None,
                  limit: int = 50, cursor: str | None = None) -> Page:
        """One page of the job list; its `next_cursor` reads the next."""
        return self.send(calls.list_jobs(status=status, job_type=type, queue=queue, limit=limit, cursor=cursor))

    def cancel(self, job: JobRef) -> StatusChange:
        """Cancel a job: `canceled` when it had not started, `canceling` while its worker stops it.
        Conflict when it has already ended."""
        return self.send(calls.cancel(job_id(job)))

    def retry(self, job: JobRef) -> StatusChange:
        """Queue a failed or canceled job again (same id). Conflict for a job in another state."""
        return self.send(calls.retry(job_id(job)))

    # --- catalog, queues, probes ---

    def job_types(self) -> list[JobTypeInfo]:
        return self.send(calls.job_types())

    def job_type(self, name: str) -> JobTypeInfo:
        return self.send(calls.job_type(name))

    def queues(self) -> list[QueueStats]:
        """Depth, in-flight, scheduled, failed... per declared queue (admin scope)."""
        return self.send(calls.queues())

    def health(self) -> dict[str, Any]:
        """{"alive": bool, "ready": bool, "detail": str}: /healthz and /readyz, tried once each.
        TransportError when the API does not answer at all."""
        alive = self.send(calls.healthz()).get("status") == "ok"
        try:
            self.send(calls.readyz())
        except ApiError as exc:
            return {"alive": alive, "ready": False, "detail": exc.detail}
        except TransportError as exc:
            return {"alive": alive, "ready": False, "detail": str(exc)}
        return {"alive": alive, "ready": True, "detail": ""}

    # last in the class: below it, `list` in an annotation would name this method
    def list(self, *, status: str | None = None, type: str | None = None, queue: str | None = None,
             page_size: int = 100, limit: int | None = None) -> Iterator[JobSummary]:
        """The jobs, newest first, following the cursors page after page (at most `limit` when given)."""
        cursor, count = None, 0
        while True:
            page = self.list_page(status=status, type=type, queue=queue, limit=page_size, cursor=cursor)
            for item in page.items:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
