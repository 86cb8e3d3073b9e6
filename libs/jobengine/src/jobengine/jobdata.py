"""Job records in RQ's data model: build the rq:job:<id> hash, read it back into a view.

The hash is the one RQ itself writes (JSON `data`, zlib-compressed unless small, JSON `meta`, RQ's
timestamp format), so RQ's Job.fetch(..., serializer=JSONSerializer) and `rq info` read our jobs. Pure
functions: no I/O, shared by the API (async) and the worker (sync).
"""

from __future__ import annotations

import base64
import os
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import orjson

from . import keys

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # rq.utils.utcformat
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Statuses the API exposes; RQ's 'stopped' (a job stopped while running) reads as canceled.
API_STATUS = {
    "queued": "queued",
    "deferred": "deferred",  # waiting for its dependencies (depends_on, flows)
    "scheduled": "scheduled",
    "started": "started",
    "finished": "finished",
    "failed": "failed",
    "canceled": "canceled",
    "stopped": "canceled",
}
TERMINAL = frozenset({"finished", "failed", "canceled"})


@lru_cache(maxsize=8)  # a batch of jobs submitted at one moment formats it once
def utcformat(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def utcnow_str() -> str:
    return utcformat(datetime.now(timezone.utc))


def parse_ts(value: bytes | str | None) -> datetime | None:
    if not value:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    try:  # fast path: RQ's format is ISO 8601 with a Z (strptime costs ~12 us a call)
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except ValueError:
        pass
    for fmt in (TIMESTAMP_FORMAT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def new_job_id() -> str:
    return uuid.uuid4().hex


def new_job_ids(n: int) -> list[str]:
    """n ids like new_job_id's (random UUIDs, version 4, as hex) from one read of the OS's random source."""
    raw = bytearray(os.urandom(16 * n))
    for i in range(6, 16 * n, 16):
        raw[i] = raw[i] & 0x0F | 0x40  # version 4
        raw[i + 2] = raw[i + 2] & 0x3F | 0x80  # RFC 4122 variant
    text = raw.hex()
    return [text[i:i + 32] for i in range(0, 32 * n, 32)]


COMPRESS_DATA_FROM = 256  # bytes: zlib makes a smaller `data` larger, and costs more than the job's encoding


def encode_data(function: str, payload: dict[str, Any]) -> bytes:
    """RQ's `data` field: (func_name, instance, args, kwargs) serialized as JSON, zlib-compressed when that
    pays. RQ itself always compresses, and reads the field either way (it falls back to the raw bytes when
    they are not zlib's)."""
    data = orjson.dumps([function, None, [payload], {}])
    return zlib.compress(data, 1) if len(data) >= COMPRESS_DATA_FROM else data


def decode_data(raw: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    if raw[:1] != b"[":  # JSON as it is starts with '['; a zlib stream never does
        raw = zlib.decompress(raw)
    func, _instance, args, kwargs = orjson.loads(raw)
    return func, args, kwargs


def build_job_hash(
    *,
    job_id: str,
    job_type: str,
    function: str,
    payload: dict[str, Any],
    queue: str,
    timeout: int,
    result_ttl: int,
    failure_ttl: int,
    retry_intervals: list[float],
    status: str,
    meta: dict[str, Any],
    now: datetime,
    tenant: str | None = None,
) -> dict[str, Any]:
    stamp = utcformat(now)
    # Redis keeps a small hash as one list and finds a field by walking it from the front, so the fields the
    # worker's claim reads or writes for every job come first (status, the claim, the attempt count, what
    # the job runs); the claim and attempt fields exist from the start (a missing one is a walk of the list).
    fields: dict[str, Any] = {
        "status": status,
        "jobengine_claim": "",
        "jobengine_attempts": 0,
        "data": encode_data(function, payload),
        "meta": orjson.dumps({"type": job_type, **meta}),
        "timeout": timeout,
    }
    if tenant:  # read by the claim and complete scripts for each job too (its events), and by every tenant check
        fields[keys.TENANT_FIELD] = tenant
    if retry_intervals:
        # RQ's Retry fields: retries_left counts down; intervals are fixed at submit time.
        fields["retries_left"] = len(retry_intervals)
        fields["retry_intervals"] = orjson.dumps(retry_intervals)
    fields.update({
        "enqueued_at": stamp,
        "created_at": stamp,
        "result_ttl": result_ttl,
        "failure_ttl": failure_ttl,
        "started_at": "",
        "ended_at": "",
        "worker_name": "",
        "last_heartbeat": "",
        "origin": queue,
        "description": f"{job_type}()",
        "success_callback_name": "",
        "failure_callback_name": "",
        "stopped_callback_name": "",
        "group_id": "",
    })
    return fields


def encode_return_value(value: Any) -> str:
    """RQ's Result stream keeps return_value as base64 of the serializer's bytes."""
    return base64.b64encode(orjson.dumps(value)).decode()


def encode_exc_string(text: str) -> str:
    return base64.b64encode(zlib.compress(text.encode())).decode()


def decode_result_entry(fields: dict[bytes, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": int(fields.get(b"type", b"0"))}
    if rv := fields.get(b"return_value"):
        try:
            out["return_value"] = orjson.loads(base64.b64decode(rv))
        except (ValueError, orjson.JSONDecodeError):
            out["return_value"] = None
    if exc := fields.get(b"exc_string"):
        try:
            out["exc_string"] = zlib.decompress(base64.b64decode(exc)).decode()
        except (ValueError, zlib.error):
            out["exc_string"] = exc.decode(errors="replace")
    return out


@dataclass
class JobView:
    """What the API reports about one job."""

    id: str
    type: str
    queue: str
    status: str
    rq_status: str
    payload: dict[str, Any] | None
    meta: dict[str, Any]
    created_at: datetime | None
    enqueued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    worker_name: str | None
    attempts: int
    retries_left: int | None
    progress: dict[str, Any] | None
    scheduled_for: datetime | None = None

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[bytes, bytes], *, with_payload: bool = True) -> JobView:
        meta: dict[str, Any] = {}
        if raw.get(b"meta"):
            try:
                meta = orjson.loads(raw[b"meta"])
            except orjson.JSONDecodeError:
                meta = {}
        payload = None
        if with_payload and raw.get(b"data"):
            try:
                _, args, kwargs = decode_data(raw[b"data"])
                payload = args[0] if args else kwargs
            except (ValueError, orjson.JSONDecodeError, IndexError):
                payload = None
        rq_status = raw.get(b"status", b"").decode() or "queued"
        started = parse_ts(raw.get(b"started_at"))
        progress = None
        if raw.get(b"jobengine_progress"):
            try:
                progress = orjson.loads(raw[b"jobengine_progress"])
            except orjson.JSONDecodeError:
                progress = None
        return cls(
            id=job_id,
            type=str(meta.get("type", "")),
            queue=raw.get(b"origin", b"").decode(),
            status=API_STATUS.get(rq_status, rq_status),
            rq_status=rq_status,
            payload=payload,
            meta=meta,
            created_at=parse_ts(raw.get(b"created_at")),
            enqueued_at=parse_ts(raw.get(b"enqueued_at")),
            started_at=started,
            ended_at=parse_ts(raw.get(b"ended_at")),
            worker_name=raw.get(b"worker_name", b"").decode() or None,
            # runs started so far: claim.lua counts them (a recovered or retried run counts too)
            attempts=int(raw[b"jobengine_attempts"]) if raw.get(b"jobengine_attempts") else 0,
            retries_left=int(raw[b"retries_left"]) if raw.get(b"retries_left") else None,
            progress=progress,
        )
