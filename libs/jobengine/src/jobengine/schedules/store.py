"""The Redis side of schedules (async): take due ones, fire a step (fire.lua), and the writes of the API and
the declared-schedules upsert (create, replace, pause, resume, delete), each a WATCH/MULTI transaction that
bumps the version, so a step computed from what was there before is refused by fire.lua.

Layout (keys.py): the hash jobengine:schedule:<tenant>:<name>, the due zset, the tenant's name zset, the runs
list, and one set of members per state (the gauge reads SCARD, never scans the hashes).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from .. import keys, scripts
from ..scripts import Scripts
from .spec import NAME_PATTERN, ScheduleSpec

DECLARED_SET = "jobengine:schedules:declared"  # members written from JOBENGINE_SCHEDULES_FILE
HASH_FIELDS = ("spec", "version", "next", "state", "error", "last_job", "last_tick", "pending", "source",
               "created_at", "updated_at", "incarnation", "fires", "skipped", "refused")


def _s(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Row:
    """One schedule's hash, decoded."""

    member: str
    fields: dict[str, str]

    @property
    def tenant(self) -> str:
        return self.member.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.member.split(":", 1)[1]

    @property
    def version(self) -> str:
        return self.fields.get("version", "")

    @property
    def next(self) -> str:
        return self.fields.get("next", "")

    @property
    def state(self) -> str:
        return self.fields.get("state", "active")

    @property
    def created_at(self) -> float:
        return float(self.fields.get("created_at") or 0)

    def spec_doc(self) -> dict[str, Any]:
        return orjson.loads(self.fields["spec"])  # type: ignore[no-any-return]


def encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Raises ValueError for anything that is not a cursor we made."""
    import re

    try:
        name = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a valid cursor") from exc
    if not re.match(NAME_PATTERN, name):
        raise ValueError("not a valid cursor")
    return name


class ScheduleStore:
    def __init__(self, client: aioredis.Redis, *, runs_kept: int = 20) -> None:
        self.redis = client
        self.runs_kept = runs_kept
        self.scripts = Scripts.register(client)

    async def warm_up(self) -> None:
        for script in (self.scripts.take_schedules, self.scripts.fire):
            script.sha = await self.redis.script_load(script.script)

    # --- the firing loop ---

    async def take(self, now: float, lease: float, limit: int) -> tuple[list[str], float]:
        return scripts.parse_take(await self.scripts.take_schedules(
            keys=[], args=scripts.take_args(now=now, lease_end=now + lease, limit=limit)))

    async def read(self, members: Sequence[str]) -> list[Row | None]:
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            pipe.hgetall(keys.schedule(member))
        rows = await pipe.execute()
        return [Row(m, {_s(k): _s(v) for k, v in raw.items()}) if raw else None
                for m, raw in zip(members, rows, strict=True)]

    async def fire_many(self, calls: Sequence[tuple[list[str], list[Any]]]) -> list[tuple[int, str] | Exception]:
        """fire.lua once per (keys, args), in one pipeline (not a transaction: each call is atomic itself); a
        call that failed (a script error) is its exception, in its place: one schedule does not hold up others."""
        if not calls:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for call_keys, call_args in calls:
            await self.scripts.fire(keys=call_keys, args=call_args, client=pipe)  # (buffered in the pipeline)
        replies = await pipe.execute(raise_on_error=False)
        return [reply if isinstance(reply, Exception) else scripts.parse_fire(reply) for reply in replies]

    async def fire(self, call_keys: list[str], call_args: list[Any]) -> tuple[int, str]:
        return scripts.parse_fire(await self.scripts.fire(keys=call_keys, args=call_args))

    async def earliest(self) -> float | None:
        first = await self.redis.zrange(keys.SCHEDULES_DUE, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    # --- reads for the API ---

    async def get(self, tenant: str, name: str) -> Row | None:
        member = keys.schedule_member(tenant, name)
        raw = await self.redis.hgetall(keys.schedule(member))
        return Row(member, {_s(k): _s(v) for k, v in raw.items()}) if raw else None

    async def runs(self, member: str) -> list[dict[str, Any]]:
        """The last runs, newest first, each with its job's current status ('' once the job expired)."""
        runs = [orjson.loads(r) for r in await self.redis.lrange(keys.schedule_runs(member), 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        with_job = [run for run in runs if run.get("job_id")]
        for run in with_job:
            pipe.hget(keys.job(run["job_id"]), "status")
        for run, status in zip(with_job, await pipe.execute() if with_job else [], strict=True):
            run["job_status"] = _s(status)
        return runs

    async def list(self, tenant: str, cursor: str | None, limit: int) -> tuple[list[Row], str | None]:
        start = f"({cursor}" if cursor else "-"
        names = [_s(n) for n in await self.redis.zrangebylex(keys.tenant_schedules(tenant), start, "+", 0, limit + 1)]
        more = len(names) > limit
        names = names[:limit]
        rows = await self.read([keys.schedule_member(tenant, n) for n in names])
        found = [row for row in rows if row is not None]
        return found, (encode_cursor(names[-1]) if more and names else None)

    async def state_counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for state in keys.SCHEDULE_STATES:
            pipe.scard(keys.schedule_state(state))
        return dict(zip(keys.SCHEDULE_STATES, map(int, await pipe.execute()), strict=True))

    async def declared(self) -> set[str]:
        return {_s(m) for m in await self.redis.smembers(DECLARED_SET)}

    # --- writes (the API, the declared upsert) ---

    async def create(self, tenant: str, spec: ScheduleSpec, *, next_tick: int | None, score: float | str,
                     source: str, now: float, max_per_tenant: int) -> str:
        """'created', 'exists' (the name is taken) or 'limit' (the tenant holds max_per_tenant)."""
        member = keys.schedule_member(tenant, spec.name)
        key, names = keys.schedule(member), keys.tenant_schedules(tenant)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # the name zset only when there is a limit to hold: concurrent creates then retry
                    await pipe.watch(*((key, names) if max_per_tenant else (key,)))
                    if await pipe.exists(key):
                        return "exists"
                    if max_per_tenant and await pipe.zcard(names) >= max_per_tenant:
                        return "limit"
                    state = _state(spec, next_tick)
                    pipe.multi()
                    pipe.hset(key, mapping={
                        "spec": spec_json(spec), "version": 1, "next": "" if next_tick is None else next_tick,
                        "state": state, "error": "", "last_job": "", "last_tick": "", "pending": "",
                        "source": source, "created_at": now, "updated_at": now,
                        "incarnation": str(int(now * 1000)), "fires": 0, "skipped": 0, "refused": 0})
                    pipe.zadd(names, {spec.name: 0})
                    pipe.sadd(keys.schedule_state(state), member)
                    if state == "active":
                        pipe.zadd(keys.SCHEDULES_DUE, {member: float(score)})
                    if source == "declared":  # the file's spec as written: a later start compares with it
                        pipe.hset(key, "declared_spec", spec_json(spec))
                        pipe.sadd(DECLARED_SET, member)
                    await pipe.execute()
                    return "created"
                except WatchError:
                    continue

    async def replace(self, row: Row, spec: ScheduleSpec, *, next_tick: int | None, score: float | str,
                      now: float, source: str | None = None) -> bool:
        """Write a new spec (and so its next tick) over the version read in `row`; False when it changed since
        (the caller reads again) or was deleted."""
        key = keys.schedule(row.member)
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                current = _s(await pipe.hget(key, "version"))
                if current != row.version:
                    return False
                state = _state(spec, next_tick)
                pipe.multi()
                mapping: dict[str, Any] = {"spec": spec_json(spec), "version": int(row.version) + 1,
                                           "next": "" if next_tick is None else next_tick, "state": state,
                                           "error": "", "updated_at": now}
                if state != "active":
                    mapping["pending"] = ""
                if source is not None:
                    mapping["source"] = source
                pipe.hset(key, mapping=mapping)
                for other in keys.SCHEDULE_STATES:
                    if other != state:
                        pipe.srem(keys.schedule_state(other), row.member)
                pipe.sadd(keys.schedule_state(state), row.member)
                if state == "active":
                    pipe.zadd(keys.SCHEDULES_DUE, {row.member: float(score)})
                else:
                    pipe.zrem(keys.SCHEDULES_DUE, row.member)
                if source == "declared":
                    pipe.hset(key, "declared_spec", spec_json(spec))
                    pipe.sadd(DECLARED_SET, row.member)
                elif source == "api":
                    pipe.srem(DECLARED_SET, row.member)
                await pipe.execute()
                return True
            except WatchError:
                return False

    async def delete(self, tenant: str, name: str) -> bool:
        member = keys.schedule_member(tenant, name)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.schedule(member))
        pipe.delete(keys.schedule_runs(member))
        pipe.zrem(keys.tenant_schedules(tenant), name)
        pipe.zrem(keys.SCHEDULES_DUE, member)
        pipe.srem(DECLARED_SET, member)
        for state in keys.SCHEDULE_STATES:
            pipe.srem(keys.schedule_state(state), member)
        replies = await pipe.execute()
        return bool(replies[0])


def _state(spec: ScheduleSpec, next_tick: int | None) -> str:
    if spec.paused:
        return "paused"
    return "active" if next_tick is not None else "ended"


def spec_json(spec: ScheduleSpec) -> str:
    return orjson.dumps(spec.model_dump(mode="json", exclude_none=False)).decode()


def now() -> float:
    return time.time()
