"""Job events for server-sent events: one reader per tenant per API process, fanned out to local subscribers.

The scripts write each state change to the tenant's bounded stream jobengine:events:<tenant> (lua/_events.lua).
An SSE client does not get a Redis connection of its own: the process's EventHub runs one XREAD BLOCK loop per
tenant that has subscribers and hands every entry to each subscriber's queue, so 2,000 open streams cost one
connection per tenant, not 2,000. A subscriber that falls too far behind is closed (the client resumes with
Last-Event-ID from the stream itself, which holds JOBENGINE_EVENTS_MAX_LEN entries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from jobengine import keys
from jobengine.redis_conn import TRANSIENT_ERRORS

from .problems import unavailable

log = logging.getLogger(__name__)

EVENT_TYPES = ("job.queued", "job.started", "job.progress", "job.retrying", "job.finished", "job.failed",
               "job.canceled")
TERMINAL_TYPES = frozenset({"job.finished", "job.failed", "job.canceled"})
SUBSCRIBER_BUFFER = 2000  # events a subscriber may lag behind before it is closed (it resumes by Last-Event-ID)
READ_COUNT = 500  # entries one XREAD or XRANGE takes
CLOSED = None  # put in a subscriber's queue: the stream ends (it lagged, or the process stops)


def stream_id(value: str | bytes) -> tuple[int, int]:
    """A stream id as a comparable pair; ValueError when it is not one ('<ms>-<seq>' or '<ms>')."""
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def event_json(entry_id: str, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """A stream entry as the API's event document (the SSE data:): docs/events.md spells its fields."""
    job_type = fields.get(b"k", b"").decode()
    if job_type.endswith("()"):  # RQ's description, '<type>()'
        job_type = job_type[:-2]
    ms = int(entry_id.split("-", 1)[0])
    doc: dict[str, Any] = {
        "id": entry_id, "type": fields.get(b"t", b"").decode(), "job_id": fields.get(b"j", b"").decode(),
        "job_type": job_type, "queue": fields.get(b"q", b"").decode(), "status": fields.get(b"s", b"").decode(),
        "at": datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z",
    }
    if b"p" in fields:
        doc["progress"] = orjson.loads(fields[b"p"])
    return doc


def _decoded(entries: Iterable[tuple[Any, Any]]) -> list[dict[str, Any]]:
    out = []
    for entry_id, fields in entries:
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        out.append(event_json(eid, fields))
    return out


@dataclass(eq=False)
class Subscriber:
    """One open SSE stream's queue of events (already decoded; filtered by the reader of the stream)."""

    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_BUFFER))
    lagged: bool = False

    def offer(self, event: dict[str, Any]) -> None:
        if self.lagged:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:  # a slow client: end its stream rather than hold every event for it
            self.lagged = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSED)


class TenantReader:
    """The XREAD BLOCK loop of one tenant's stream, run while the tenant has subscribers in this process."""

    def __init__(self, hub: EventHub, tenant: str) -> None:
        self.hub = hub
        self.tenant = tenant
        self.key = keys.events(tenant)
        self.subscribers: set[Subscriber] = set()
        self.started = asyncio.Event()  # the loop knows where it starts: entries after it reach subscribers
        self.task = asyncio.create_task(self.run(), name=f"events-{tenant}")

    async def run(self) -> None:
        redis = self.hub.redis
        last: str | None = None
        delay = 0.1
        while self.subscribers or last is None:
            try:
                if last is None:  # start after the newest entry: a subscriber reads older ones itself
                    newest = await redis.xrevrange(self.key, "+", "-", count=1)
                    last = newest[0][0].decode() if newest else "0-0"
                    self.started.set()
                reply = await redis.xread({self.key: last}, count=READ_COUNT, block=self.hub.block_ms)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:  # Redis away: the streams stay open (heartbeats) and catch up after
                log.warning("events read failed", extra={"tenant": self.tenant, "error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for _key, entries in reply or ():
                events = _decoded(entries)
                if events:
                    last = events[-1]["id"]
                for event in events:
                    for sub in tuple(self.subscribers):
                        sub.offer(event)
        self.hub.readers.pop(self.tenant, None)


class EventHub:
    """The process's event readers, one per tenant with subscribers (see the module's docstring)."""

    def __init__(self, redis: Any, socket_timeout: float) -> None:
        self.redis = redis
        # a blocked XREAD must answer before the client's socket timeout counts it as failed
        self.block_ms = max(100, int(min(5.0, socket_timeout / 2) * 1000))
        self.start_timeout = socket_timeout * 2
        self.readers: dict[str, TenantReader] = {}

    async def subscribe(self, tenant: str) -> Subscriber:
        reader = self.readers.get(tenant)
        if reader is None or reader.task.done():
            reader = self.readers[tenant] = TenantReader(self, tenant)
        sub = Subscriber()
        reader.subscribers.add(sub)
        if not reader.started.is_set():
            try:  # the reader's first read: Redis unreachable -> 503 now, rather than a stream that never starts
                await asyncio.wait_for(reader.started.wait(), self.start_timeout)
            except TimeoutError:
                reader.subscribers.discard(sub)
                raise unavailable() from None
        return sub

    def unsubscribe(self, tenant: str, sub: Subscriber) -> None:
        reader = self.readers.get(tenant)
        if reader is not None:
            reader.subscribers.discard(sub)  # the reader ends after its current XREAD when none are left

    def subscribers(self) -> int:
        return sum(len(r.subscribers) for r in self.readers.values())

    async def close(self) -> None:
        readers = list(self.readers.values())
        for reader in readers:
            for sub in reader.subscribers:
                sub.queue.put_nowait(CLOSED) if not sub.queue.full() else None
            reader.task.cancel()
        for reader in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader.task
        self.readers.clear()

    async def history(self, tenant: str, after: str, limit: int) -> AsyncIterator[dict[str, Any]]:
        """The tenant's events after the id `after` (exclusive), oldest first, at most `limit`, read in pages."""
        start = f"({after}"
        sent = 0
        while sent < limit:
            entries = await self.redis.xrange(keys.events(tenant), start, "+", count=min(READ_COUNT, limit - sent))
            if not entries:
                return
            for event in _decoded(entries):
                yield event
            sent += len(entries)
            start = "(" + (entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0])

    async def oldest(self, tenant: str) -> str | None:
        first = await self.redis.xrange(keys.events(tenant), "-", "+", count=1)
        return first[0][0].decode() if first else None


async def follow(hub: EventHub, tenant: str, sub: Subscriber, after: str | None, limit: int,
                 matches: Any) -> AsyncIterator[dict[str, Any]]:
    """The events a subscriber sees: those after `after` from the stream first (a resume), then the live ones,
    each once (an entry both read back and fanned out is skipped by id), filtered by `matches(event)`."""
    seen = (0, 0)
    if after is not None:
        async for event in hub.history(tenant, after, limit):
            seen = stream_id(event["id"])
            if matches(event):
                yield event
    while True:
        event = await sub.queue.get()
        if event is CLOSED:
            return
        if stream_id(event["id"]) <= seen:
            continue
        if matches(event):
            yield event
