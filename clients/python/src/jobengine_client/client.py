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
                    batch_result, job_id, model_of, op_id, operation_filter, schedule_spec, smaller_batch)
from .errors import ApiError, InvalidRequest, OperationTimeout, TransportError, WaitTimeout
from .models import (Accepted, BatchItem, BatchResult, Job, JobSummary, JobTypeInfo, Operation, Page, QueuePause,
                     QueueStats, Schedule, ScheduleDetail, SchedulePage, StatusChange, Triggered, WorkerInfo)
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

    # --- operators (admin scope) ---

    def workers(self) -> list[WorkerInfo]:
        """The live workers: pool, queues, state, current job and since when, heartbeat age, jobs finished and
        failed, memory (admin scope)."""
        return self.send(calls.workers())

    def pause_queue(self, name: str, *, refuse_submits: bool = False) -> QueuePause:
        """Pause a queue: workers claim none of its jobs until resumed (running ones finish); submits are still
        accepted unless `refuse_submits` (then 409 queue-paused). Idempotent, so retried as any read."""
        return self.send(calls.pause_queue(name, refuse_submits))

    def resume_queue(self, name: str) -> QueuePause:
        return self.send(calls.resume_queue(name))

    def start_operation(self, action: str, *, queue: str | None = None, type: str | None = None,
                        tenant: str | None = None, status: Iterable[str] | str | None = None,
                        created_after: datetime | None = None, created_before: datetime | None = None) -> Operation:
        """Start a bulk operation: `action` retry (failed jobs), cancel (waiting ones) or delete (ended ones;
        `status` narrows it) on the jobs of the filter. Not sent again once a try may have reached the server (the
        API takes no Idempotency-Key here): a lost answer raises TransportError; see operations()."""
        return self.send(calls.create_operation(action, operation_filter(
            queue=queue, type=type, tenant=tenant, status=status, created_after=created_after,
            created_before=created_before)))

    def operations(self) -> list[Operation]:
        """The newest bulk operations (100 at most)."""
        return self.send(calls.operations())

    def operation(self, op: str | Operation) -> Operation:
        return self.send(calls.operation(op_id(op)))

    def cancel_operation(self, op: str | Operation) -> Operation:
        """Stop an operation at its next step (jobs changed stay changed); an ended one is returned as it is."""
        return self.send(calls.cancel_operation(op_id(op)))

    def wait_operation(self, op: str | Operation, *, timeout: float | None = None,
                       on_progress: Callable[[Operation], None] | None = None, poll_interval: float = 0.5
                       ) -> Operation:
        """Read the operation every `poll_interval` seconds until it has ended (done, canceled, failed) and return
        it; `on_progress(op)` after each read. OperationTimeout after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.operation(op)
            if on_progress is not None:
                on_progress(current)
            if current.done:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise OperationTimeout(current, timeout or 0.0)
            time.sleep(poll_interval)

    # --- schedules (the caller's tenant) ---

    def create_schedule(self, name: str, job_type: JobTypeRef, payload: Payload = None, *, cron: str | None = None,
                        interval_seconds: int | None = None, **options: Any) -> Schedule:
        """Create a schedule: one of `cron` (with `timezone=`) or `interval_seconds`; `options` are the other fields
        of a schedule spec (queue, timeout, retry, result_ttl, start_at, end_at, jitter_seconds, overlap,
        catch_up, catch_up_limit, misfire_grace_seconds, paused). Conflict when the name exists."""
        return self.create_schedule_spec(schedule_spec(name, job_type, payload, {
            "cron": cron, "interval_seconds": interval_seconds, **options}))

    def create_schedule_spec(self, spec: Mapping[str, Any]) -> Schedule:
        """Create a schedule from a whole spec (a JSON object as POST /v1/schedules takes it)."""
        return self.send(calls.create_schedule(dict(spec)))

    def schedules_page(self, *, limit: int = 50, cursor: str | None = None) -> SchedulePage:
        return self.send(calls.list_schedules(limit=limit, cursor=cursor))

    def schedules(self, *, page_size: int = 100) -> Iterator[Schedule]:
        """The tenant's schedules by name, following the cursors."""
        cursor = None
        while True:
            page = self.schedules_page(limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def schedule(self, name: str, *, next_runs: int = 5) -> ScheduleDetail:
        """A schedule with its next `next_runs` ticks and its last runs (job ids and their status)."""
        return self.send(calls.get_schedule(name, next_runs))

    def update_schedule(self, name: str, **changes: Any) -> Schedule:
        """Change the fields given (None clears an optional one; cron replaces interval_seconds and back)."""
        body = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in changes.items()}
        return self.send(calls.update_schedule(name, body))

    def delete_schedule(self, name: str) -> None:
        """Delete a schedule (its jobs stay). A retry after a lost answer that finds it gone is a success."""
        self.send(calls.delete_schedule(name))

    def trigger_schedule(self, name: str) -> Triggered:
        """Run the schedule's job now. Not sent again once a try may have reached the server (each try would
        make a job): a lost answer raises TransportError."""
        return self.send(calls.trigger_schedule(name))

    def pause_schedule(self, name: str) -> Schedule:
        return self.send(calls.pause_schedule(name))

    def resume_schedule(self, name: str) -> Schedule:
        """Resume from the next tick after now (ticks of the pause are not caught up)."""
        return self.send(calls.resume_schedule(name))

    def revoke_key(self) -> None:
        """Revoke this client's own API key in every API process (a one-use key); every later call gets 401."""
        self.send(calls.revoke_self())

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
