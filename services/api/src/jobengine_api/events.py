"""Job events for server-sent events: one reader per tenant per API process, fanned out to local subscribers.

The scripts write each state change to the tenant's bounded stream jobengine:events:<tenant> (lua/_events.lua).
An SSE client does not get a Redis connection of its own: the process's EventHub runs one XREAD BLOCK loop per
tenant that has subscribers and hands every entry to each subscriber's queue, so 2,000 open streams cost one
connection per tenant, not 2,000. A subscriber that falls too far behind is closed (the client resumes with
Last-Event-ID from the stream itself, which holds JOBENGINE_EVENTS_MAX_LEN entries).

The scripts write a tenant's events only while someone listens (keys.events_listened): a reader marks its tenant
for JOBENGINE_EVENTS_RESUME_SECONDS, renewed while it runs, so a client that reconnects within that resumes;
webhooks and a callback secret mark it for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from jobengine import keys
from jobengine.redis_conn import TRANSIENT_ERRORS

from .problems import unavailable

log = logging.getLogger(__name__)

EVENT_TYPES = ("job.queued", "job.deferred", "job.started", "job.progress", "job.retrying", "job.finished", "job.failed",
               "job.canceled")
TERMINAL_TYPES = frozenset({"job.finished", "job.failed", "job.canceled"})
SUBSCRIBER_BUFFER = 2000  # events a subscriber may lag behind before it is closed (it resumes by Last-Event-ID)
READ_COUNT = 500  # entries one XREAD or XRANGE takes
GATHER_SECONDS = 0.05  # after a read that found entries, the reader waits this long before the next: under load,
# each fan-out carries more events (one wake-up and one write per stream a batch), for 50 ms more latency
CLOSED = None  # put in a subscriber's queue: the stream ends (it lagged, or the process stops)


WHOLE_ENTRY = 1 << 62  # the event index of an id given as a bare stream id: after every event of that entry


def stream_id(value: str | bytes) -> tuple[int, int, int]:
    """An event id '<ms>-<seq>-<n>' (event n of stream entry <ms>-<seq>) as a comparable triple; a bare stream
    id ('<ms>-<seq>' or '<ms>') stands for its entry's last event. ValueError when it is neither."""
    text = value.decode() if isinstance(value, bytes) else value
    parts = text.split("-")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not an event id: {text!r}")
    numbers = [int(p) for p in parts]
    return numbers[0], numbers[1] if len(numbers) > 1 else 0, numbers[2] if len(numbers) > 2 else WHOLE_ENTRY


def entry_events(entry_id: str, fields: dict[bytes, bytes]) -> list[dict[str, Any]]:
    """A stream entry's events as the API's event documents (the SSE data:). Field e holds one event a line,
    '<type> <job id> <queue> <status> <job type>' (lua/_events.lua); p, a job.progress entry's progress."""
    ms = int(entry_id.split("-", 1)[0])
    at = datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"
    out = []
    for n, line in enumerate(fields.get(b"e", b"").decode().split("\n")):
        etype, job_id, queue, status, job_type = (line.split(" ", 4) + [""] * 5)[:5]
        out.append({"id": f"{entry_id}-{n}", "type": etype, "job_id": job_id,
                    "job_type": job_type.removesuffix("()"),  # RQ's description, '<type>()'
                    "queue": queue, "status": status, "at": at})
    if b"p" in fields:
        out[0]["progress"] = orjson.loads(fields[b"p"])
    return out


class JobTypes:
    """The job type of events whose entry lacks it (the claim and complete scripts do not read it: a hash field
    a job less): remembered from the job's earlier events (its job.queued has it), else read from the job's hash,
    one pipelined read a batch. Bounded: the oldest jobs are forgotten first."""

    def __init__(self, redis: Any, size: int = 100_000) -> None:
        self.redis = redis
        self.size = size
        self.known: OrderedDict[str, str] = OrderedDict()

    async def fill(self, events: list[dict[str, Any]]) -> None:
        missing: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            if event["job_type"]:
                self._remember(event["job_id"], event["job_type"])
            elif (known := self.known.get(event["job_id"])) is not None:
                event["job_type"] = known
            else:
                missing.setdefault(event["job_id"], []).append(event)
        if not missing:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in missing:
                pipe.hget(keys.job(job_id), "description")
            found = await pipe.execute()
        for (job_id, waiting), description in zip(missing.items(), found, strict=True):
            job_type = (description or b"").decode().removesuffix("()")
            if job_type:
                self._remember(job_id, job_type)
            for event in waiting:
                event["job_type"] = job_type

    def _remember(self, job_id: str, job_type: str) -> None:
        self.known[job_id] = job_type
        if len(self.known) > self.size:
            self.known.popitem(last=False)


def sse_bytes(event: dict[str, Any]) -> bytes:
    """The event as SSE lines (id, event, data): encoded once, sent to every stream that wants it."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event["id"].encode(), event["type"].encode(), orjson.dumps(event))


Event = tuple[dict[str, Any], bytes]  # the document and its SSE encoding


def decoded(entries: Iterable[tuple[Any, Any]]) -> list[dict[str, Any]]:
    return [event for entry_id, fields in entries
            for event in entry_events(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, fields)]


async def _encoded(types: JobTypes, entries: Iterable[tuple[Any, Any]],
                   wanted: Any = None) -> list[Event]:
    """The entries' events, typed and SSE-encoded; only those of jobs in `wanted` when given (a reader whose
    streams all follow single jobs encodes nothing else)."""
    events = decoded(entries)
    if wanted is not None:
        events = [event for event in events if event["job_id"] in wanted]
    await types.fill(events)
    return [(event, sse_bytes(event)) for event in events]


@dataclass(eq=False)
class Subscriber:
    """One open SSE stream's queue of event batches (one XREAD's entries: one wake-up of the stream a batch, not
    one an event), filtered by the stream itself."""

    job_id: str | None = None  # one job's events only (None: the tenant's)
    queue: asyncio.Queue[list[Event] | None] = field(default_factory=asyncio.Queue)
    pending: int = 0  # events queued and not yet taken
    lagged: bool = False

    def offer(self, batch: list[Event]) -> None:
        if self.lagged:
            return
        if self.pending + len(batch) > SUBSCRIBER_BUFFER:  # a slow client: end its stream rather than hold them
            self.lagged = True
            self.queue.put_nowait(CLOSED)
            return
        self.pending += len(batch)
        self.queue.put_nowait(batch)

    async def take(self) -> list[Event] | None:
        batch = await self.queue.get()
        if batch is not None:
            self.pending -= len(batch)
        return batch


class TenantReader:
    """The XREAD BLOCK loop of one tenant's stream, run while the tenant has subscribers in this process."""

    def __init__(self, hub: EventHub, tenant: str) -> None:
        self.hub = hub
        self.tenant = tenant
        self.key = keys.events(tenant)
        self.subscribers: set[Subscriber] = set()  # the tenant's whole stream (GET /v1/events)
        self.job_subscribers: dict[str, set[Subscriber]] = {}  # one job's (GET /v1/jobs/{id}/events), by job id
        self.started = asyncio.Event()  # the loop knows where it starts: entries after it reach subscribers
        self.task = asyncio.create_task(self.run(), name=f"events-{tenant}")

    async def run(self) -> None:
        redis = self.hub.redis
        last: str | None = None
        delay = 0.1
        marked: float | None = None  # (monotonic time starts near 0 on a fresh machine: not a "long ago")
        while self.subscribers or self.job_subscribers or last is None:
            try:
                if marked is None or time.monotonic() - marked > self.hub.resume_seconds / 3:  # the scripts write our events
                    await mark_listened(redis, self.tenant, self.hub.resume_seconds)
                    marked = time.monotonic()
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
                if entries:
                    last = entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0]
                batch = await _encoded(self.hub.types, entries, None if self.subscribers else self.job_subscribers)
                if batch:
                    for sub in tuple(self.subscribers):
                        sub.offer(batch)
                    if self.job_subscribers:
                        self._offer_by_job(batch)
            if reply:
                await asyncio.sleep(GATHER_SECONDS)
        self.hub.readers.pop(self.tenant, None)

    def _offer_by_job(self, batch: list[Event]) -> None:
        """Each job's events to its own followers only: 2,000 streams of one job each cost a dict lookup an
        event, not 2,000 filter calls."""
        by_job: dict[str, list[Event]] = {}
        for event in batch:
            if event[0]["job_id"] in self.job_subscribers:
                by_job.setdefault(event[0]["job_id"], []).append(event)
        for job_id, events in by_job.items():
            for sub in tuple(self.job_subscribers.get(job_id, ())):
                sub.offer(events)

    def add(self, sub: Subscriber, job_id: str | None) -> None:
        if job_id is None:
            self.subscribers.add(sub)
        else:
            self.job_subscribers.setdefault(job_id, set()).add(sub)

    def discard(self, sub: Subscriber, job_id: str | None) -> None:
        if job_id is None:
            self.subscribers.discard(sub)
        elif (subs := self.job_subscribers.get(job_id)) is not None:
            subs.discard(sub)
            if not subs:
                del self.job_subscribers[job_id]

    def all(self) -> list[Subscriber]:
        return [*self.subscribers, *(s for subs in self.job_subscribers.values() for s in subs)]


async def mark_listened(redis: Any, tenant: str, seconds: int) -> None:
    """The tenant's events are written for `seconds` more at least (a key kept with no expiry stays so)."""
    key = keys.events_listened(tenant)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(key, 1, ex=seconds, nx=True)
        pipe.expire(key, seconds, gt=True)
        await pipe.execute()


class EventHub:
    """The process's event readers, one per tenant with subscribers (see the module's docstring)."""

    def __init__(self, redis: Any, socket_timeout: float, resume_seconds: int = 3600) -> None:
        self.redis = redis
        self.resume_seconds = resume_seconds  # a tenant's events are written this long after its last stream
        # a blocked XREAD must answer before the client's socket timeout counts it as failed
        self.block_ms = max(100, int(min(5.0, socket_timeout / 2) * 1000))
        self.start_timeout = socket_timeout * 2
        self.readers: dict[str, TenantReader] = {}
        self.types = JobTypes(redis)

    async def subscribe(self, tenant: str, job_id: str | None = None) -> Subscriber:
        """A subscriber of the tenant's events, or of one job's (job_id) only."""
        reader = self.readers.get(tenant)
        if reader is None or reader.task.done():
            reader = self.readers[tenant] = TenantReader(self, tenant)
        sub = Subscriber(job_id=job_id)
        reader.add(sub, job_id)
        if not reader.started.is_set():
            try:  # the reader's first read: Redis unreachable -> 503 now, rather than a stream that never starts
                await asyncio.wait_for(reader.started.wait(), self.start_timeout)
            except TimeoutError:
                reader.discard(sub, job_id)
                raise unavailable() from None
        return sub

    def unsubscribe(self, tenant: str, sub: Subscriber) -> None:
        reader = self.readers.get(tenant)
        if reader is not None:
            reader.discard(sub, sub.job_id)  # the reader ends after its current XREAD when none are left

    def subscribers(self) -> int:
        return sum(len(r.all()) for r in self.readers.values())

    async def close(self) -> None:
        readers = list(self.readers.values())
        for reader in readers:
            for sub in reader.all():
                sub.queue.put_nowait(CLOSED)
            reader.task.cancel()
        for reader in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader.task
        self.readers.clear()

    async def history(self, tenant: str, after: str, limit: int) -> AsyncIterator[list[Event]]:
        """The tenant's events after the event id `after` (exclusive), oldest first, from at most `limit` entries,
        in pages."""
        ms, seq, n = bound = stream_id(after)
        start = f"{ms}-{seq}"  # its entry too: the events after the n-th of it
        sent = 0
        while sent < limit:
            entries = await self.redis.xrange(keys.events(tenant), start, "+", count=min(READ_COUNT, limit - sent))
            if not entries:
                return
            page = [e for e in await _encoded(self.types, entries) if stream_id(e[0]["id"]) > bound]
            if page:
                yield page
            sent += len(entries)
            start = "(" + (entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0])


async def follow(hub: EventHub, tenant: str, sub: Subscriber, after: str | None, limit: int,
                 matches: Any, seen: tuple[int, int, int] | None = None) -> AsyncIterator[list[Event]]:
    """The events a subscriber sees, in batches: those after `after` from the stream first (a resume), then the
    live ones, each once (an entry both read back and fanned out is skipped by id), filtered by
    `matches(event)` (None: all). `seen`: the last event id a caller read back itself."""
    if after is not None:
        async for page in hub.history(tenant, after, limit):
            seen = stream_id(page[-1][0]["id"])
            if chosen := [e for e in page if matches is None or matches(e[0])]:
                yield chosen
    while True:
        batch = await sub.take()
        if batch is None:
            return
        if seen is not None:  # (only a resumed stream can see an entry twice, and only until the first new one)
            batch = [e for e in batch if stream_id(e[0]["id"]) > seen]
            if batch:
                seen = None
        if matches is not None:
            batch = [e for e in batch if matches(e[0])]
        if batch:
            yield batch
