"""The asynchronous client: AsyncClient has Client's methods as coroutines (list is an async iterator)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
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
AsyncProgressCallback = Callable[[Job[Any]], Awaitable[None] | None]


class AsyncClient:
    """Client for asyncio (same arguments, same retries; see Client)."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = 10.0,
                 retries: RetryPolicy | int | None = None, headers: Mapping[str, str] | None = None,
                 long_poll: float = LONG_POLL, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = Settings(url, api_key, timeout, retries, headers, long_poll)
        self._http = httpx.AsyncClient(transport=transport, **self.settings.http_kwargs())

    @property
    def url(self) -> str:
        return self.settings.url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, call: calls.Call[T]) -> T:
        attempts = Attempts(call, self.settings.retries)
        while True:
            try:
                response = await self._http.request(call.method, call.path,
                                                    **attempts.request_kwargs(self.settings.timeout))
            except httpx.TransportError as exc:
                outcome: T | Retry = attempts.after_transport_error(exc)
            else:
                outcome = attempts.after_response(response)
            if not isinstance(outcome, Retry):
                return outcome
            await asyncio.sleep(outcome.delay)

    async def submit(self, job_type: JobTypeRef, payload: Payload = None, *, queue: str | None = None,
                     delay_seconds: float | None = None, run_at: datetime | None = None, timeout: int | None = None,
                     retry: Mapping[str, Any] | None = None, result_ttl: int | None = None,
                     idempotency_key: str | None = None) -> Accepted:
        body = {"type": type_name(job_type), "payload": payload_json(job_type, payload),
                **options_json(queue=queue, delay_seconds=delay_seconds, run_at=run_at, timeout=timeout,
                               retry=retry, result_ttl=result_ttl)}
        return await self.send(calls.submit(body, idempotency_key, result_model(job_type)))

    async def submit_many(self, jobs: Iterable[NewJob | Mapping[str, Any]], *, chunk_size: int = MAX_BATCH
                          ) -> BatchResult:
        bodies = batch_bodies(jobs)
        items: list[BatchItem] = []
        offset = 0
        while offset < len(bodies):
            chunk = bodies[offset:offset + chunk_size]
            try:
                done: list[BatchItem] = await self.send(calls.submit_batch(chunk, offset))
                items.extend(done)
            except InvalidRequest as exc:
                chunk_size = smaller_batch(exc, len(chunk)) or 0
                if not chunk_size:
                    raise
                continue  # the server's limit is lower: the same jobs again, in smaller chunks
            offset += len(chunk)
        return batch_result(items)

    @overload
    async def get(self, job: JobRef, *, result_model: type[M]) -> Job[M]: ...

    @overload
    async def get(self, job: JobRef, *, result_model: JobSpec | None = None) -> Job[Any]: ...

    async def get(self, job: JobRef, *, result_model: ResultModel = None) -> Job[Any]:
        return await self.send(calls.get_job(job_id(job), model_of(job, result_model)))

    @overload
    async def wait(self, job: JobRef, *, timeout: float | None = None, on_progress: AsyncProgressCallback | None = None,
             poll_interval: float = 0.5, result_model: type[M]) -> Job[M]: ...

    @overload
    async def wait(self, job: JobRef, *, timeout: float | None = None, on_progress: AsyncProgressCallback | None = None,
             poll_interval: float = 0.5, result_model: JobSpec | None = None) -> Job[Any]: ...

    async def wait(self, job: JobRef, *, timeout: float | None = None,
                   on_progress: AsyncProgressCallback | None = None, poll_interval: float = 0.5,
                   result_model: ResultModel = None) -> Job[Any]:
        """See Client.wait; `on_progress` may be a plain function or a coroutine function."""
        state = WaitState(timeout, self.settings.long_poll, poll_interval if on_progress else None)
        ident, model = job_id(job), model_of(job, result_model)
        while True:
            try:
                current = await self.send(calls.get_job(ident, model, wait=state.next_wait()))
            except InvalidRequest as exc:
                if state.adapt(exc):
                    continue
                raise
            if on_progress is not None and state.is_news(current):
                maybe = on_progress(current)
                if inspect.isawaitable(maybe):
                    await maybe
            if current.done:
                return current
            if state.expired():
                raise WaitTimeout(current, timeout or 0.0)
            if pause := state.pause():
                await asyncio.sleep(pause)

    async def list_page(self, *, status: str | None = None, type: str | None = None, queue: str | None = None,
                        limit: int = 50, cursor: str | None = None) -> Page:
        return await self.send(calls.list_jobs(status=status, job_type=type, queue=queue, limit=limit,
                                               cursor=cursor))

    async def cancel(self, job: JobRef) -> StatusChange:
        return await self.send(calls.cancel(job_id(job)))

    async def retry(self, job: JobRef) -> StatusChange:
        return await self.send(calls.retry(job_id(job)))

    async def job_types(self) -> list[JobTypeInfo]:
        return await self.send(calls.job_types())

    async def job_type(self, name: str) -> JobTypeInfo:
        return await self.send(calls.job_type(name))

    async def queues(self) -> list[QueueStats]:
        return await self.send(calls.queues())

    async def health(self) -> dict[str, Any]:
        alive = (await self.send(calls.healthz())).get("status") == "ok"
        try:
            await self.send(calls.readyz())
        except ApiError as exc:
            return {"alive": alive, "ready": False, "detail": exc.detail}
        except TransportError as exc:
            return {"alive": alive, "ready": False, "detail": str(exc)}
        return {"alive": alive, "ready": True, "detail": ""}

    # last in the class: below it, `list` in an annotation would name this method
    async def list(self, *, status: str | None = None, type: str | None = None, queue: str | None = None,
                   page_size: int = 100, limit: int | None = None) -> AsyncIterator[JobSummary]:
        cursor, count = None, 0
        while True:
            page = await self.list_page(status=status, type=type, queue=queue, limit=page_size, cursor=cursor)
            for item in page.items:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
