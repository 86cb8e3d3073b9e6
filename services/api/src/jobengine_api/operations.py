"""Bulk operations (POST /v1/operations): retry failed jobs, cancel waiting jobs or delete ended jobs by a
filter, as a resource with an id, a state and counts, run in the background by every API process.

An operation is a hash (jobengine:op:<id>) listing the registries to walk (rq:failed:<q>, rq:scheduled:<q>
and rq:queue:<q>, rq:finished/failed/canceled:<q>) with its cursor and counts. bulk.lua does one step: at
most JOBENGINE_BULK_CHUNK_SIZE entries, the cursor and counts written in the same call, so Redis is never held
longer than one short script and a step re-sent (its reply lost) goes on from where the first run left off.
A step takes or renews the operation's lease (JOBENGINE_BULK_LEASE_SECONDS): one API process runs it at a
time, and any other resumes it once that process died (after its lease lapsed), from its cursor.
docs/guarantees.md ("Bulk operations") says what this guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import datetime, timezone
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from jobengine import keys, scripts
from jobengine.background import Background
from jobengine.jobdata import encode_exc_string, new_job_id, parse_ts, utcformat
from jobengine.redis_conn import TRANSIENT_ERRORS
from jobengine.settings import Settings

from .models import OperationRequest

log = logging.getLogger(__name__)

ENDED_TTL_SECONDS = 7 * 86_400  # an ended operation's hash is kept this long
LIST_LIMIT = 100  # GET /v1/operations: the newest operations
CANCEL_TEXT = encode_exc_string("canceled by a bulk operation")
ACTIVE_STATES = ("pending", "running")
# An API process that stops gives up the leases it holds: another one resumes its operations at once
# instead of after the lease (a rollout). KEYS: the operations' hashes; ARGV[1]: the owner.
RELEASE_LUA = """
for _, k in ipairs(KEYS) do
  if redis.call('HGET', k, 'lease_owner') == ARGV[1] then redis.call('HSET', k, 'lease_until', '0') end
end
return 0
"""
DELETABLE = ("finished", "failed", "canceled")


def _s(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def sources(request: OperationRequest, queues: list[str]) -> list[str]:
    """The registries the operation walks, in order. cancel: a queue's scheduled jobs before its list (a
    scheduled job that becomes due while the list is walked has been canceled already, if it matched)."""
    qs = [request.filter.queue] if request.filter.queue else sorted(queues)
    if request.action == "retry":
        return [keys.PREFIXES["failed"] + q for q in qs]
    if request.action == "cancel":
        return [key for q in qs for key in (keys.scheduled_registry(q), keys.queue(q))]
    statuses = request.filter.status or list(DELETABLE)
    return [keys.PREFIXES[s] + q for q in qs for s in DELETABLE if s in statuses]


def stamp(value: datetime | None) -> str:
    """An RQ timestamp of a filter's bound (a time without a zone is UTC), '' for none."""
    if value is None:
        return ""
    return utcformat(value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc))


class Operations:
    """The operations' Redis side: create, read, list, cancel (one or two round trips each)."""

    def __init__(self, client: aioredis.Redis, runner: OperationRunner | None = None) -> None:
        self.redis = client
        self.runner = runner  # woken when an operation is created here: its first step at once

    async def create(self, request: OperationRequest, queues: list[str]) -> dict[str, Any]:
        op_id = new_job_id()
        now = datetime.now(timezone.utc)
        f = request.filter
        fields = {
            "action": request.action, "filter": orjson.dumps(f.model_dump(mode="json", exclude_none=True)),
            "sources": ",".join(sources(request, queues)), "si": 1, "offset": 0, "state": "pending",
            "f_type": f.type or "", "f_tenant": f.tenant or "", "f_after": stamp(f.created_after),
            "f_before": stamp(f.created_before), "begun": utcformat(now), "created_at": utcformat(now),
            "examined": 0, "matched": 0, "skipped": 0, "lease_owner": "", "lease_until": "0",
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.operation(op_id), mapping=fields)
            pipe.zadd(keys.OPERATIONS, {op_id: now.timestamp()})
            pipe.sadd(keys.OPERATIONS_ACTIVE, op_id)
            await pipe.execute()
        if self.runner is not None:
            self.runner.wake()
        view = await self.get(op_id)
        assert view is not None
        return view

    async def get(self, op_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(keys.operation(op_id))
        return operation_view(op_id, raw) if raw else None

    async def list(self) -> list[dict[str, Any]]:
        ids = [_s(i) for i in await self.redis.zrevrange(keys.OPERATIONS, 0, LIST_LIMIT - 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for op_id in ids:
                pipe.hgetall(keys.operation(op_id))
            rows = await pipe.execute()
        gone = [op_id for op_id, raw in zip(ids, rows, strict=True) if not raw]
        if gone:  # expired: out of the listing
            await self.redis.zrem(keys.OPERATIONS, *gone)
        return [operation_view(op_id, raw) for op_id, raw in zip(ids, rows, strict=True) if raw]

    async def cancel(self, op_id: str) -> dict[str, Any] | None:
        """Stop an operation at its next step (what it changed stays changed)."""
        key = keys.operation(op_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, "state")
            reply = await pipe.execute()
        state = _s(reply[0])
        if not state:
            return None
        if state in ACTIVE_STATES:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"state": "canceled", "ended_at": utcformat(datetime.now(timezone.utc))})
                pipe.expire(key, ENDED_TTL_SECONDS)
                pipe.srem(keys.OPERATIONS_ACTIVE, op_id)
                await pipe.execute()
        return await self.get(op_id)


def operation_view(op_id: str, raw: dict[bytes, bytes]) -> dict[str, Any]:
    def g(name: str) -> str:
        return _s(raw.get(name.encode()))

    def n(name: str) -> int:
        try:
            return int(g(name) or 0)
        except ValueError:
            return 0

    total = len([s for s in g("sources").split(",") if s])
    si, pos, size = n("si"), n("pos"), n("size")
    state = g("state")
    progress = 1.0 if state == "done" or not total else min(1.0, (si - 1 + (pos / size if size else 0)) / total)
    return {
        "id": op_id, "action": g("action"), "filter": orjson.loads(g("filter") or "{}"), "state": state,
        "counts": {"examined": n("examined"), "matched": n("matched"), "skipped": n("skipped")},
        "progress": round(progress, 4), "error": g("error") or None, "created_at": parse_ts(g("created_at")),
        "updated_at": parse_ts(g("updated_at")), "ended_at": parse_ts(g("ended_at")),
    }


class OperationRunner(Background):
    """Every API process runs this loop: it looks for operations not yet ended (every `interval` seconds, or
    at once when this process created one), and runs each in steps, under its lease, pausing between steps
    (JOBENGINE_BULK_PAUSE_SECONDS) so that other clients are served in between."""

    def __init__(self, client: aioredis.Redis, bulk_script: Any, settings: Settings, interval: float = 1.0) -> None:
        super().__init__()
        self.redis = client
        self.script = bulk_script
        self.settings = settings
        self.interval = interval
        self.owner = f"{os.uname().nodename}.{os.getpid()}.{os.urandom(4).hex()}"
        self._wake = asyncio.Event()
        self._release = client.register_script(RELEASE_LUA)
        self._held: set[str] = set()  # operations this process ran a step of

    task_name = "bulk operations"

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is None:
            return
        await super().stop()
        if self._held:
            try:
                async with asyncio.timeout(2):
                    await self._release(keys=[keys.operation(i) for i in sorted(self._held)], args=[self.owner])
            except (TimeoutError, *TRANSIENT_ERRORS) as exc:  # its leases lapse by themselves
                log.warning("bulk operations: leases not released", extra={"error": repr(exc)})

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_pending()
            except TRANSIENT_ERRORS as exc:
                log.warning("bulk operations: Redis unavailable", extra={"error": repr(exc)})
            except Exception:  # noqa: BLE001 - the loop must outlive any surprise
                log.exception("bulk operations: a step failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def fail(self, op_id: str, exc: Exception) -> None:
        """End an operation whose step Redis refused: what its earlier steps changed stays changed."""
        log.error("bulk operation failed", extra={"operation": op_id, "error": repr(exc)})
        self._held.discard(op_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.operation(op_id), mapping={"state": "failed", "error": str(exc)[:500],
                                                      "ended_at": utcformat(datetime.now(timezone.utc))})
            pipe.expire(keys.operation(op_id), ENDED_TTL_SECONDS)
            pipe.srem(keys.OPERATIONS_ACTIVE, op_id)
            await pipe.execute()

    async def run_pending(self) -> None:
        for op_id in sorted(_s(i) for i in await self.redis.smembers(keys.OPERATIONS_ACTIVE)):
            if self._stopping.is_set():
                return
            await self.run(op_id)

    async def run(self, op_id: str) -> str:
        """Steps of one operation until it ends, another process holds it, or this process stops."""
        settings = self.settings
        while not self._stopping.is_set():
            now = time.time()
            try:
                step = scripts.parse_bulk(await self.script(keys=[], args=scripts.bulk_args(
                    op_id=op_id, owner=self.owner, now=now,
                    stamp=utcformat(datetime.fromtimestamp(now, timezone.utc)), limit=settings.bulk_chunk_size,
                    lease_seconds=settings.bulk_lease_seconds, cancel_text=CANCEL_TEXT)))
            except ResponseError as exc:  # an error reply (a registry key of the wrong type, say): it would recur
                if isinstance(exc, NoScriptError):
                    raise
                await self.fail(op_id, exc)
                return "failed"
            if step.state == "running":
                self._held.add(op_id)
            else:
                self._held.discard(op_id)
            if step.state == "missing":  # its hash expired or was deleted: nothing to run
                await self.redis.srem(keys.OPERATIONS_ACTIVE, op_id)
                return step.state
            if step.state != "running":
                if step.state == "done":
                    await self.redis.expire(keys.operation(op_id), ENDED_TTL_SECONDS)
                    log.info("bulk operation done", extra={"operation": op_id})
                return step.state
            if settings.bulk_pause_seconds:
                await asyncio.sleep(settings.bulk_pause_seconds)
            else:
                await asyncio.sleep(0)
        return "stopped"
