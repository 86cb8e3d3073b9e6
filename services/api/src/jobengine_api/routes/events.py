"""Server-sent events: GET /v1/jobs/{id}/events (one job until it ends) and GET /v1/events (the caller's tenant).

SSE `id:` is the Redis stream id of the event (so Last-Event-ID resumes from the stream), `event:` its type,
`data:` the event document (events.event_json). Heartbeats are SSE comments every
JOBENGINE_EVENTS_HEARTBEAT_SECONDS. Tenant isolation as for reads: a tenant's stream is the only one read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from jobengine.jobdata import TERMINAL
from jobengine.metrics import EVENT_STREAMS

from ..deps import ContextDep, JobId, ReadPrincipal
from ..events import EVENT_TYPES, TERMINAL_TYPES, EventHub, follow, stream_id
from ..problems import invalid, not_found
from .jobs import PROBLEMS, problems

router = APIRouter(prefix="/v1", tags=["events"])

CLOCK_MARGIN_MS = 5000  # a job's history is read from its created_at less this (the API's and Redis's clocks)
SSE_RESPONSE = {200: {"description": "An event stream (text/event-stream): `id:` the event id, `event:` its "
                      "type, `data:` the event as JSON.", "content": {"text/event-stream": {}}}}
LAST_EVENT_ID = Header(alias="Last-Event-ID", description="Resume after this event id (the last `id:` "
                       "received): events still in the bounded stream are sent first.")


def _hub(request: Request) -> EventHub:
    return request.app.state.events  # type: ignore[no-any-return]


def _resume_id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        ms, seq, n = stream_id(value.strip())
    except ValueError:
        raise invalid([{"field": "Last-Event-ID", "message": "not an event id (<ms>-<seq>-<n>)"}]) from None
    return f"{ms}-{seq}-{n}"


def _split(value: str | None, field: str, allowed: tuple[str, ...] | None = None) -> frozenset[str] | None:
    if not value:
        return None
    items = frozenset(v.strip() for v in value.split(",") if v.strip())
    if allowed is not None and (unknown := sorted(items - set(allowed))):
        raise invalid([{"field": field, "message": f"unknown event type {', '.join(unknown)} (known: "
                                                    f"{', '.join(allowed)})"}])
    return items


def _response(request: Request, stream: AsyncIterator[Any]) -> EventSourceResponse:
    ctx = request.app.state.ctx
    # X-Accel-Buffering: a buffering proxy (nginx ingress) would hold the events back
    return EventSourceResponse(_counted(stream), ping=ctx.settings.events_heartbeat_seconds,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _counted(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    EVENT_STREAMS.inc()
    try:
        async for item in stream:
            yield item
    finally:
        EVENT_STREAMS.dec()


@router.get("/events", summary="The tenant's job events (server-sent events)",
            responses={**SSE_RESPONSE, **PROBLEMS})
async def tenant_events(
    request: Request, ctx: ContextDep, principal: ReadPrincipal,
    queue: Annotated[str | None, Query(description="Only these queues (comma-separated).")] = None,
    type: Annotated[str | None, Query(description="Only these event types (comma-separated), e.g. "  # noqa: A002
                                      "job.finished,job.failed.")] = None,
    last_event_id: Annotated[str | None, LAST_EVENT_ID] = None,
) -> EventSourceResponse:
    queues, types = _split(queue, "queue"), _split(type, "type", EVENT_TYPES)
    after = _resume_id(last_event_id)
    hub, tenant = _hub(request), principal.tenant

    def filtered(event: dict[str, Any]) -> bool:
        return (queues is None or event["queue"] in queues) and (types is None or event["type"] in types)

    matches = None if queues is None and types is None else filtered
    sub = await hub.subscribe(tenant)

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for batch in follow(hub, tenant, sub, after, ctx.settings.events_max_len, matches):
                yield b"".join(encoded for _, encoded in batch)  # one write a batch
        finally:
            hub.unsubscribe(tenant, sub)

    return _response(request, stream())


@router.get("/jobs/{job_id}/events", summary="A job's events until it ends (server-sent events)",
            responses={**SSE_RESPONSE, **problems(404), **PROBLEMS})
async def job_events(
    job_id: JobId, request: Request, ctx: ContextDep, principal: ReadPrincipal,
    last_event_id: Annotated[str | None, LAST_EVENT_ID] = None,
) -> EventSourceResponse:
    after = _resume_id(last_event_id)
    hub, tenant = _hub(request), principal.tenant
    sub = await hub.subscribe(tenant, job_id)  # before reading the job: a change in between is not missed
    try:
        job = await ctx.store.get(job_id, tenant)
    except BaseException:
        hub.unsubscribe(tenant, sub)
        raise
    if job is None:
        hub.unsubscribe(tenant, sub)
        raise not_found(f"Job {job_id}")
    if after is None:  # from its start: the stream's entries since it was created (stream ids are times)
        created = job.get("created_at")
        after = f"{max(0, int(created.timestamp() * 1000) - CLOCK_MARGIN_MS)}-0" if created else "0-0"
        snapshot = job
    else:
        snapshot = None
        if job["status"] in TERMINAL and not await _end_after(hub, tenant, job_id, after, ctx.settings.events_max_len):
            # a client that saw the end reconnects (EventSource does, by itself): 204 tells it the stream is over
            hub.unsubscribe(tenant, sub)
            return Response(status_code=204)  # type: ignore[return-value]

    def matches(event: dict[str, Any]) -> bool:
        return event["job_id"] == job_id

    limit = ctx.settings.events_max_len
    ended_at_get = job["status"] in TERMINAL

    async def stream() -> AsyncIterator[bytes | ServerSentEvent]:
        """The job's events in the stream after `after` (its history), then the live ones until its end. A job
        whose history is not in the stream (written before its tenant had a listener, or trimmed) gets its
        current state first, as one event without an id. An end in the history is the job's end only when
        nothing of the job follows it and the job has ended: a retried job's earlier failure is history."""
        try:
            mine: list[bytes] = []
            last_type, seen = None, None
            async for page in hub.history(tenant, after, limit):
                seen = stream_id(page[-1][0]["id"])
                for event, encoded in page:
                    if event["job_id"] == job_id:
                        mine.append(encoded)
                        last_type = event["type"]
            history_ends = last_type in TERMINAL_TYPES
            if snapshot is not None and (not mine or (ended_at_get and not history_ends)):
                event = _snapshot_event(snapshot)
                if not mine:  # nothing of it in the stream: its state, then what follows
                    yield ServerSentEvent(data=orjson.dumps(event).decode(), event=event["type"])
                    if ended_at_get:
                        return
                else:  # its end is not in the stream: what is, then its state (its end)
                    yield b"".join(mine)
                    yield ServerSentEvent(data=orjson.dumps(event).decode(), event=event["type"])
                    return
            if mine:
                yield b"".join(mine)
            if ended_at_get or (history_ends and await _ended_now(ctx, job_id, tenant)):
                return
            async for batch in follow(hub, tenant, sub, None, limit, matches, seen=seen):
                end = next((i for i, (event, _) in enumerate(batch) if event["type"] in TERMINAL_TYPES), None)
                yield b"".join(encoded for _, encoded in (batch if end is None else batch[:end + 1]))
                if end is not None:
                    return
            # (the subscriber was closed: the process stops or the client lagged; it resumes by Last-Event-ID)
        finally:
            hub.unsubscribe(tenant, sub)

    return _response(request, stream())


async def _ended_now(ctx: Any, job_id: str, tenant: str | None) -> bool:
    job = await ctx.store.get(job_id, tenant)
    return job is None or job["status"] in TERMINAL


async def _end_after(hub: EventHub, tenant: str, job_id: str, after: str, limit: int) -> bool:
    """Whether the job's end event is in the stream after the event id `after`."""
    async for page in hub.history(tenant, after, limit):
        if any(e["job_id"] == job_id and e["type"] in TERMINAL_TYPES for e, _ in page):
            return True
    return False


def _snapshot_event(job: dict[str, Any]) -> dict[str, Any]:
    status = job["status"]
    at = job.get("ended_at") or job.get("started_at") or job.get("created_at")
    return {"id": None, "type": "job.queued" if status == "scheduled" else f"job.{status}", "job_id": job["id"],
            "job_type": job.get("type", ""), "queue": job.get("queue", ""), "status": status,
            "at": at.isoformat().replace("+00:00", "Z") if at else None}
