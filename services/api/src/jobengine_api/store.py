"""Every Redis operation of the API, async (redis.asyncio), one round trip where possible."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ExecAbortError, NoScriptError, ResponseError

from jobengine import keys
from jobengine.catalog import JobType
from jobengine.jobdata import (API_STATUS, JobView, build_job_hash, decode_result_entry, encode_exc_string, new_job_id,
                               parse_ts, utcformat)
from jobengine.redis_conn import PoolExhausted
from jobengine import scripts
from jobengine.scripts import Scripts
from jobengine.settings import Settings

from .fastlane import FastLane, pack
from .models import JobOptions

# Read-only snapshot of the declared queues in one round trip. ARGV: their names (never rq:queues:
# what a client could grow must not grow a scrape). rq:workers:<q> holds worker keys (RQ) or names.
QUEUE_STATS_LUA = """
local names, seen = {}, {}
for _, q in ipairs(ARGV) do
  if not seen[q] then seen[q] = true; names[#names + 1] = q end
end
local out = {}
for _, q in ipairs(names) do
  local live = 0
  for _, w in ipairs(redis.call('SMEMBERS', 'rq:workers:' .. q)) do
    local wk = w
    if string.sub(w, 1, 10) ~= 'rq:worker:' then wk = 'rq:worker:' .. w end
    if redis.call('EXISTS', wk) == 1 then live = live + 1 end
  end
  out[#out + 1] = {q, redis.call('LLEN', 'rq:queue:' .. q), redis.call('ZCARD', 'rq:wip:' .. q),
    redis.call('ZCARD', 'rq:scheduled:' .. q), redis.call('ZCARD', 'rq:failed:' .. q),
    redis.call('ZCARD', 'rq:finished:' .. q), redis.call('ZCARD', 'rq:canceled:' .. q), live,
    redis.call('LINDEX', '""" + keys.PREFIXES["paused"] + """' .. q, 0),
    redis.call('ZCARD', '""" + keys.PREFIXES["deferred"] + """' .. q)}
end
return out
"""
QUEUE_STAT_FIELDS = ("depth", "in_flight", "scheduled", "failed", "finished", "canceled", "workers", "deferred")

SUMMARY_FIELDS = ("status", "origin", "meta", "created_at", "enqueued_at", "started_at", "ended_at", keys.TENANT_FIELD)
# A job without the tenant field (written by the Producer without a tenant, or by stock RQ) belongs to no
# tenant: the field's absence matches no key's tenant (always a non-empty name), so no key reads, lists,
# cancels or retries it. With authentication off (development) the one implicit caller sees every job.
LIST_SCAN_BUDGET = 1000  # index entries one list request may look at, whatever the filters
CANCEL_MESSAGE = encode_exc_string("canceled through the API")


def fingerprint(options: JobOptions, exclude: set[str] | None = None) -> str:
    """sha256 of the canonical body: what an Idempotency-Key is bound to."""
    body = options.model_dump(mode="json", exclude_unset=True, exclude=exclude)
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(slots=True)
class PreparedJob:
    """One job ready for enqueue.lua: computed without I/O."""

    id: str
    type: str
    queue: str
    status: str
    run_at: datetime | None
    idempotency_key: str | None
    fingerprint: str
    keys: list[str]
    args: list[Any]


def prepare_job(sub: JobOptions, job_type: JobType, settings: Settings, *, idempotency_key: str | None = None,
                fp: str = "", trace_meta: dict[str, Any] | None = None, tenant: str = "default",
                key_id: str = "", now: datetime | None = None, job_id: str | None = None,
                dependencies: dict[str, str] | None = None) -> PreparedJob:
    """`key_id`: the caller's API key, whose token bucket the submission draws on (when rate limits are on).
    `now`: the submission's time (one for all the jobs of a batch); `job_id`: a new id (drawn by the batch).
    `dependencies`: {name or id: job id} of a job that waits for others (flows.py): written deferred."""
    now = now or datetime.now(timezone.utc)
    queue = sub.queue or job_type.queue or settings.default_queue
    run_at = sub.run_at
    if sub.delay_seconds:
        run_at = datetime.fromtimestamp(now.timestamp() + sub.delay_seconds, timezone.utc)
    if run_at is not None and run_at <= now:
        run_at = None  # due already: queue it now
    status = "scheduled" if run_at else "queued"
    meta = {**(trace_meta or {}), "tenant": tenant}
    if dependencies:
        status, run_at = "deferred", None
        meta["dependencies"] = dependencies  # the worker reads their results for the job (fan-in)
    retry = sub.retry or job_type.retry
    job_id = job_id or new_job_id()
    fields = build_job_hash(
        job_id=job_id, job_type=job_type.name, function=job_type.function,
        payload=sub.payload.model_dump(mode="json"),  # type: ignore[attr-defined]
        queue=queue, timeout=sub.timeout or job_type.timeout,
        result_ttl=sub.result_ttl or job_type.result_ttl, failure_ttl=job_type.failure_ttl,
        retry_intervals=retry.intervals(), status=status, meta=meta, now=now,
        tenant=tenant,  # a hash field too: reads, cancels and retries check it without decoding meta
    )
    idem_key = keys.idempotency(idempotency_key, tenant) if idempotency_key else ""
    rate = settings.rate_limit_per_second if key_id else 0.0
    quota = settings.tenant_quota(tenant)
    return PreparedJob(
        id=job_id, type=job_type.name, queue=queue, status=status, run_at=run_at,
        idempotency_key=idempotency_key, fingerprint=fp,
        # (by position: keywords cost 1 % of a submit here)
        keys=scripts.enqueue_keys(job_id, queue, idem_key, keys.rate_limit(key_id) if rate else "",
                                  keys.tenant_backlog(tenant) if quota else "",
                                  # auth off: the shared index, which the one caller who sees all lists
                                  keys.tenant_index(tenant) if settings.auth_enabled else ""),
        args=scripts.enqueue_args(job_id, queue, chain.from_iterable(fields.items()),
                                  run_at.timestamp() if run_at else 0, settings.index_max_age_seconds,
                                  settings.idempotency_ttl_seconds, fp, settings.max_queue_backlog, rate,
                                  settings.rate_limit_bucket, quota),
    )


@dataclass(slots=True)
class Enqueued:
    id: str
    status: str
    replayed: bool = False
    conflict: bool = False  # the idempotency key is bound to another body
    refused: str = ""  # nothing written: "queue_full" (backlog limit), "rate_limited" (the key's token bucket)
    # or "tenant_quota" (the tenant's jobs not yet ended)
    retry_after: int = 0  # seconds, when refused


def _enqueued(job: PreparedJob, raw: list[Any], settings: Settings) -> Enqueued:
    if raw[0] == scripts.ENQUEUE_WRITTEN:  # nearly every submit: answered without parsing the reply
        return Enqueued(job.id, job.status)
    reply = scripts.parse_enqueue(raw)
    code = reply.code
    if code == scripts.ENQUEUE_QUEUE_FULL:
        return Enqueued(job.id, "", refused="queue_full", retry_after=settings.backlog_retry_after_seconds)
    if code == scripts.ENQUEUE_TENANT_QUOTA:
        return Enqueued(job.id, "", refused="tenant_quota", retry_after=settings.backlog_retry_after_seconds)
    if code == scripts.ENQUEUE_RATE_LIMITED:  # number: milliseconds until the bucket holds a token again
        return Enqueued(job.id, "", refused="rate_limited", retry_after=max(1, -(-reply.number // 1000)))
    return Enqueued(reply.job, API_STATUS.get(reply.status, reply.status) or "expired", replayed=True,
                    conflict=reply.fingerprint != job.fingerprint)


def _s(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _as_dict(reply: Any) -> dict[bytes, bytes]:
    """A raw RESP2 field/value array (RESP3 already gives a map)."""
    if isinstance(reply, dict):
        return reply
    it = iter(reply)
    return dict(zip(it, it, strict=True))


STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
STREAM_ID_MAX = (1 << 64) - 1  # each part of a stream id is an unsigned 64-bit integer


def encode_cursor(entry_id: str) -> str:
    """The index entry (a stream id, 'ms-seq') of the last job of a page, opaque to clients."""
    return base64.urlsafe_b64encode(entry_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Raises ValueError for anything that is not a cursor we made."""
    try:
        entry_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a valid cursor") from exc
    if not STREAM_ID.match(entry_id):
        raise ValueError("not a valid cursor")
    ms, seq = (int(part) for part in entry_id.split("-"))
    if ms > STREAM_ID_MAX or seq > STREAM_ID_MAX or ms == seq == 0:  # Redis refuses these ("(0-0" has no before)
        raise ValueError("not a valid cursor")
    return f"{ms}-{seq}"


class JobStore:
    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.scripts = Scripts.register(client)
        wait = settings.redis_pool_timeout_seconds
        self.fast = FastLane(client, settings.redis_socket_timeout, 16, wait)  # submits (and script loads)
        # reads by id on a lane of their own: long-polls re-read while they wait, and must not queue submits
        self.reads = FastLane(client, settings.redis_socket_timeout, 8, wait)
        self.see_all = not settings.auth_enabled  # development: one implicit tenant that sees every job
        self._queue_stats = client.register_script(QUEUE_STATS_LUA)

    async def warm_up(self) -> None:
        """Load the scripts so the first requests do not pay a NOSCRIPT round trip."""
        for script in (self.scripts.enqueue, self.scripts.cancel, self.scripts.requeue, self._queue_stats):
            script.sha = await self.redis.script_load(script.script)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def aclose(self) -> None:
        await self.fast.aclose()
        await self.reads.aclose()

    def _owner(self, tenant: str | None) -> str | None:
        """The tenant whose jobs the caller may see; None: every job (no tenant given, or auth off)."""
        return None if self.see_all else tenant

    # --- submit ---

    async def enqueue(self, job: PreparedJob) -> Enqueued:
        script = self.scripts.enqueue
        command = pack(["EVALSHA", script.sha, len(job.keys), *job.keys, *job.args])
        try:  # the hot path: one await; the rarer cases below (a closure and a loop cost 3 % of a submit)
            reply = await self.fast.execute(command)
        except (NoScriptError, RedisConnectionError) as exc:
            reply = await self._enqueue_call(lambda: self.fast.execute(command), exc)
        return _enqueued(job, reply, self.settings)

    async def enqueue_many(self, jobs: list[PreparedJob]) -> list[Enqueued]:
        """All jobs in one write, atomically: MULTI, an EVALSHA each, EXEC. Redis runs them all or none: a
        refusal (out of memory while queueing them) leaves nothing written; a lost connection is answered
        by sending the transaction again (_enqueue_call); only a timeout leaves the outcome unknown
        (docs/guarantees.md, "Batches")."""
        if not jobs:
            return []
        script = self.scripts.enqueue
        commands = [pack(["EVALSHA", script.sha, len(job.keys), *job.keys, *job.args]) for job in jobs]
        replies = await self._enqueue_call(lambda: self._transaction(commands))
        return [_enqueued(job, reply, self.settings) for job, reply in zip(jobs, replies, strict=True)]

    async def _enqueue_call(self, send: Callable[[], Awaitable[Any]], error: Exception | None = None) -> Any:
        """send() of enqueue.lua calls (`error`: what a first send raised already). NOSCRIPT (Redis restarted
        or was flushed: nothing ran): load the script and send again. A connection lost on the way (a
        failover, a killed connection): the calls may or may not have run, so send them once more:
        enqueue.lua is safe to run twice (a job written by the first run answers "written" again), and the
        second answer is the true one. Not after a timeout (a second wait as long) nor when the pool had no
        connection (nothing was sent)."""
        loaded = resent = False
        while True:
            if error is None:
                try:
                    return await send()
                except (NoScriptError, RedisConnectionError) as exc:
                    error = exc
            if isinstance(error, NoScriptError):
                if loaded:
                    raise error
                loaded = True
                await self._load(self.scripts.enqueue)
            elif resent or isinstance(error, PoolExhausted):
                raise error
            else:
                resent = True
            error = None

    async def _transaction(self, commands: list[bytes]) -> list[Any]:
        """EXEC's replies; raises the error that made Redis refuse it (nothing was run then), or a command's
        error reply (NOSCRIPT: all of them, the same script)."""
        group = await self.fast.execute_many([MULTI, *commands, EXEC])
        refusal = next((reply for reply in group[:-1] if isinstance(reply, ResponseError)), None)
        replies = group[-1]
        if isinstance(replies, ExecAbortError) or replies is None:
            raise refusal or ExecAbortError("the batch's transaction was discarded")
        if isinstance(replies, Exception):
            raise replies
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies  # type: ignore[no-any-return]

    async def _load(self, script: Any) -> None:
        # through the fast lane: its connections notice a Redis restart before they are used
        sha = await self.fast.execute(pack(["SCRIPT", "LOAD", script.script]))
        assert _s(sha) == script.sha, "a script's sha is the hash of its source"

    # --- read ---

    async def get(self, job_id: str, tenant: str | None = None) -> dict[str, Any] | None:
        """The job, or None when it does not exist or (with `tenant`) belongs to another tenant."""
        # on the read lane (auto-pipelined like submits): this read sits on the path of every long-poll
        hash_reply, results = await self.reads.execute_many(
            [pack(["HGETALL", keys.job(job_id)]), pack(["XREVRANGE", keys.results(job_id), "+", "-", "COUNT", 1])])
        for reply in (hash_reply, results):
            if isinstance(reply, Exception):
                raise reply
        if not hash_reply:
            return None
        raw = _as_dict(hash_reply)
        owner = self._owner(tenant)
        if owner is not None and raw.get(TENANT_FIELD_B) != owner.encode():
            return None
        view = JobView.from_hash(job_id, raw)
        scheduled_for = None
        if view.rq_status == "scheduled" and view.queue:
            score = await self.redis.zscore(keys.scheduled_registry(view.queue), job_id)
            scheduled_for = datetime.fromtimestamp(score, timezone.utc) if score is not None else None
        return job_detail(view, decode_result_entry(_as_dict(results[0][1])) if results else None, scheduled_for)

    async def list(self, *, limit: int, cursor: str | None, status: str | None, job_type: str | None,
                   queue: str | None, tenant: str | None = None, created_after: datetime | None = None,
                   created_before: datetime | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first from an index stream; filters on the hashes; entries whose job expired are removed
        lazily. With `tenant`, that tenant's own index (enqueue.lua writes a job to its tenant's index, or to the
        shared one when it has none or authentication is off), so other tenants' jobs cost nothing; the shared
        index when the caller sees every job (auth off: the jobs submitted with auth off, and the Producer's
        jobs without a tenant).
        created_after/created_before bound the stream ids (their submit times): no scan outside them.
        The cursor is the stream id of the page's last job: stable while jobs come and go. A filter (status,
        type, queue) that matches few jobs may still spend the scan budget: the page then comes back short,
        with a cursor to go on from."""
        owner = self._owner(tenant)
        tenant_b = owner.encode() if owner is not None else None
        index = keys.tenant_index(owner) if owner is not None else keys.JOB_INDEX
        if cursor:
            newest = f"({cursor}"
        elif created_before is not None:
            newest = f"({max(1, int(created_before.timestamp() * 1000))}-0"
        else:
            newest = "+"
        oldest = f"{max(0, int(created_after.timestamp() * 1000))}-0" if created_after is not None else "-"
        items: list[dict[str, Any]] = []
        scanned = 0
        last = ""  # the last entry looked at
        chunk = max(2 * limit, 50)
        while len(items) < limit and scanned < LIST_SCAN_BUDGET:
            entries = await self.redis.xrevrange(index, newest, oldest, count=chunk)
            if not entries:
                return items, None
            pipe = self.redis.pipeline(transaction=False)
            for _, fields in entries:
                pipe.hmget(keys.job(_s(fields.get(b"id"))), *SUMMARY_FIELDS)
            rows = await pipe.execute()
            gone: list[str] = []
            for (entry_id, fields), row in zip(entries, rows, strict=True):
                scanned += 1
                last = _s(entry_id)
                if row[0] is None:
                    gone.append(last)
                    continue
                if tenant_b is not None and row[-1] != tenant_b:
                    continue
                summary = job_summary(_s(fields.get(b"id")), row)
                if ((status and summary["status"] != status) or (job_type and summary["type"] != job_type)
                        or (queue and summary["queue"] != queue)):
                    continue
                items.append(summary)
                if len(items) >= limit:
                    break
            if gone:
                await self.redis.xdel(index, *gone)
            if len(entries) < chunk and len(items) < limit:
                return items, None
            newest = f"({last}"
        # the scan budget spent (or the page full): go on after the last entry looked at, which is the caller's
        # own (a tenant's index holds its jobs alone) or one it may see (the shared index, auth off)
        return items, (encode_cursor(last) if last else None)

    # --- state changes ---

    async def cancel(self, job_id: str, tenant: str = "", token: str | None = None) -> tuple[str, str]:
        """tenant: another tenant's job (or one of no tenant) is 'missing'; '' checks nothing. `token`: this
        call's, new unless given: when redis-py re-sends the script (its reply was lost), the repeat
        answers as the first run did."""
        now = time.time()
        return scripts.parse_change(await self.scripts.cancel(keys=[], args=scripts.cancel_args(
            job_id=job_id, now=now, stamp=utcformat(datetime.fromtimestamp(now, timezone.utc)),
            message=CANCEL_MESSAGE, owner=self._owner(tenant) or "", token=token or new_token())))

    async def requeue(self, job_id: str, tenant: str = "", token: str | None = None) -> tuple[str, str]:
        """As cancel: tenant checked, a repeat of the same call (token) answers the same."""
        return scripts.parse_change(await self.scripts.requeue(keys=[], args=scripts.requeue_args(
            job_id=job_id, stamp=utcformat(datetime.now(timezone.utc)), owner=self._owner(tenant) or "",
            token=token or new_token())))

    async def workers(self) -> list[dict[str, Any]]:
        """The live workers (their rq:worker:<name> hash exists: a dead one's expires within its TTL), by name.
        Members of rq:workers whose hash is gone are removed on the way (RQ leaves them behind too)."""
        members = sorted(await self.redis.smembers(keys.WORKERS_SET))
        if not members:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for key in members:
            pipe.hmget(key, *WORKER_FIELDS)
        rows = await pipe.execute()
        now = time.time()
        out, dead = [], []
        for key, row in zip(members, rows, strict=True):
            if row[0] is None and row[1] is None:  # no birth, no heartbeat: the hash expired
                dead.append(key)
                continue
            out.append(worker_view(_s(key)[len(keys.PREFIXES["worker"]):], row, now))
        if dead:
            await self.redis.srem(keys.WORKERS_SET, *dead)
        return out

    async def queue_stats(self, known: list[str]) -> list[dict[str, Any]]:
        rows = await self._queue_stats(keys=[], args=known)
        stats = [{"name": _s(row[0]), **dict(zip(QUEUE_STAT_FIELDS, map(int, [*row[1:8], *row[9:10]]), strict=True)),
                  **pause_view(row[8] if len(row) > 8 else None)} for row in rows]
        return sorted(stats, key=lambda s: s["name"])

    # --- pause ---

    async def pause(self, queue: str, refuse_submits: bool) -> dict[str, Any]:
        """Mark the queue paused (the claim script skips it): a list of one element, so KEDA reads it with LLEN."""
        marker = orjson.dumps({"since": utcformat(datetime.now(timezone.utc)), "refuse_submits": refuse_submits})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.paused(queue))
            pipe.rpush(keys.paused(queue), marker)
            await pipe.execute()
        return {"name": queue, "paused": True, **pause_view(marker)}

    async def resume(self, queue: str) -> dict[str, Any]:
        """Remove the marker and wake an idle worker of the queue (as a submit does)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.paused(queue))
            pipe.lpush(keys.notify(queue), "1")
            pipe.ltrim(keys.notify(queue), 0, 0)
            await pipe.execute()
        return {"name": queue, "paused": False, "refuse_submits": False, "paused_since": None}

    async def paused_queues(self, known: list[str]) -> dict[str, dict[str, Any]]:
        """The paused queues among `known`, with their marker (one round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for q in known:
                pipe.lindex(keys.paused(q), 0)
            markers = await pipe.execute()
        return {q: pause_view(m) for q, m in zip(known, markers, strict=True) if m is not None}


TENANT_FIELD_B = keys.TENANT_FIELD.encode()
WORKER_FIELDS = ("birth", "last_heartbeat", "queues", "state", "current_job", "jobengine_job_since",
                 "successful_job_count", "failed_job_count", "jobengine_rss_bytes", "jobengine_pool", "hostname", "pid")


def pause_view(marker: bytes | None) -> dict[str, Any]:
    """A queue's pause fields from its marker (None: not paused). A marker written by hand (not JSON) still
    pauses the queue, as the claim script only checks that it exists."""
    if marker is None:
        return {"paused": False, "refuse_submits": False, "paused_since": None}
    try:
        doc = orjson.loads(marker)
    except orjson.JSONDecodeError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    return {"paused": True, "refuse_submits": doc.get("refuse_submits") is True,
            "paused_since": parse_ts(doc.get("since")) if isinstance(doc.get("since"), str) else None}


def _int(value: bytes | None) -> int | None:
    try:
        return int(value) if value not in (None, b"") else None  # type: ignore[arg-type]
    except ValueError:
        return None


def worker_view(name: str, row: list[bytes | None], now: float) -> dict[str, Any]:
    (birth, beat, queues, state, current, since, finished, failed, rss, pool, host, pid) = row
    last = parse_ts(beat)
    return {
        "name": name, "pool": _s(pool) or None, "queues": [q for q in _s(queues).split(",") if q],
        "state": _s(state) or "unknown",
        "current_job": {"id": _s(current), "since": parse_ts(since)} if current else None,
        "last_heartbeat": last, "heartbeat_age_seconds": round(max(0.0, now - last.timestamp()), 3) if last else None,
        "jobs_finished": _int(finished) or 0, "jobs_failed": _int(failed) or 0, "rss_bytes": _int(rss) or None,
        "hostname": _s(host) or None, "pid": _int(pid), "birth": parse_ts(birth),
    }
MULTI, EXEC = pack(["MULTI"]), pack(["EXEC"])


def new_token() -> str:
    """A state-changing script call's token (cancel.lua, requeue.lua)."""
    return os.urandom(8).hex()


def job_summary(job_id: str, row: list[bytes | None]) -> dict[str, Any]:
    raw = {name.encode(): value for name, value in zip(SUMMARY_FIELDS, row, strict=True) if value is not None}
    view = JobView.from_hash(job_id, raw, with_payload=False)
    return {"id": view.id, "type": view.type, "queue": view.queue, "status": view.status,
            "created_at": view.created_at, "enqueued_at": view.enqueued_at, "started_at": view.started_at,
            "ended_at": view.ended_at}


def job_detail(view: JobView, last_result: dict[str, Any] | None, scheduled_for: datetime | None
               ) -> dict[str, Any]:
    result = error = None
    if last_result:
        if last_result["type"] == 1 and view.status == "finished":
            result = last_result.get("return_value")
        elif last_result["type"] in (2, 3) and view.status != "finished":
            error = last_result.get("exc_string")
    return {
        "id": view.id, "type": view.type, "queue": view.queue, "status": view.status, "payload": view.payload,
        "result": result, "error": error, "attempts": view.attempts, "retries_left": view.retries_left,
        "created_at": view.created_at, "enqueued_at": view.enqueued_at, "started_at": view.started_at,
        "ended_at": view.ended_at, "scheduled_for": scheduled_for, "progress": view.progress,
        "worker": view.worker_name,
    }
