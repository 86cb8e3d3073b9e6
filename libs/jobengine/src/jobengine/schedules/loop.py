"""The firing loop: in every API process (docs/guarantees.md, "Schedules"), no leader.

Each step takes the due schedules (take_schedules.lua leases them to this process), reads their hashes,
computes one step each (ticks.decide), builds the jobs with the API's own submit path (the `build` callable:
the same validation, tenant, queue, backlog limit and quota as a submit), and sends every step to fire.lua in
one pipeline. fire.lua refuses a step computed from a hash that has changed since, so however many
processes run this loop, each tick is acted on once. A schedule that still has due ticks (catch-up) is due
again at once and handled in the next step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from .. import keys, metrics, scripts, tracing
from ..background import Background
from .spec import ScheduleSpec
from .store import Row, ScheduleStore
from .ticks import Rule, Step, decide, jitter

log = logging.getLogger(__name__)


class Broken(Exception):
    """The schedule cannot make its job: its type left the catalog, or its payload no longer validates."""


class BuiltJob(Protocol):
    id: str
    keys: list[str]
    args: list[Any]


class JobBuilder(Protocol):
    def __call__(self, spec: ScheduleSpec, tenant: str, tick: int, trace_meta: dict[str, str] | None,
                 idempotency: tuple[str, int] | None) -> BuiltJob:
        """The job of one tick, ready for enqueue.lua; `idempotency`: (key, ttl) of the tick, or None (trigger).
        Raises Broken."""
        ...


@dataclass(frozen=True)
class LoopConfig:
    interval: float = 1.0
    lease: float = 10.0
    batch: int = 500
    runs_kept: int = 20
    tick_key_ttl: int = 3600
    broken_retry: float = 60.0
    refused_retry: float = 1.0


OUTCOME = {scripts.FIRE_WRITTEN: "enqueued", scripts.FIRE_SKIPPED_OVERLAP: "skipped_overlap",
           scripts.FIRE_SKIPPED_MISSED: "skipped_missed", scripts.FIRE_QUEUE_FULL: "refused_backpressure",
           scripts.FIRE_TENANT_QUOTA: "refused_backpressure", scripts.FIRE_BROKEN: "broken"}


def parse_spec(row: Row, cache: dict[tuple[str, str], tuple[ScheduleSpec, Rule]]) -> tuple[ScheduleSpec, Rule]:
    """The spec and rule of a hash, cached per (member, version): a spec changes only with its version."""
    key = (row.member, row.version)
    hit = cache.get(key)
    if hit is None:
        spec = ScheduleSpec.model_validate_json(row.fields["spec"])
        hit = (spec, Rule.of(spec, row.created_at))
        if len(cache) > 200_000:
            cache.clear()
        cache[key] = hit
    return hit


def tick_idempotency(row: Row, spec: ScheduleSpec, tick: int, ttl: int) -> tuple[str, int]:
    return keys.schedule_tick(row.member, row.fields.get("incarnation", ""), tick), ttl + spec.misfire_grace_seconds


class FiringLoop(Background):
    task_name = "schedules"

    def __init__(self, store: ScheduleStore, build: JobBuilder, config: LoopConfig, *,
                 held_back: Callable[[], bool] | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.store = store
        self.build = build
        self.config = config
        self.held_back = held_back or (lambda: False)  # e.g. the API's memory guard: fire nothing meanwhile
        self.clock = clock
        self._specs: dict[tuple[str, str], tuple[ScheduleSpec, Rule]] = {}

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                wait = await self.step()
            except Exception as exc:  # noqa: BLE001 - Redis away or a surprise: the loop outlives it
                log.warning("schedules step failed", extra={"error": repr(exc)})
                wait = self.config.interval
            if wait > 0:
                await self.pause(wait)
            else:
                await asyncio.sleep(0)

    async def step(self) -> float:
        """One take and its steps; returns how long to sleep before the next."""
        if self.held_back():
            return self.config.interval
        now = self.clock()
        members, earliest = await self.store.take(now, self.config.lease, self.config.batch)
        if members:
            await self.handle(members, now)
            return 0.0  # look again at once: more may be due (a full batch, a catch-up)
        if earliest < 0:
            return self.config.interval
        return max(0.0, min(self.config.interval, earliest - self.clock()))

    async def handle(self, members: list[str], now: float) -> None:
        rows = await self.store.read(members)
        calls: list[tuple[list[str], list[Any]]] = []
        notes: list[tuple[str, Step | None, Any]] = []
        for member, row in zip(members, rows, strict=True):
            if row is None or row.state in ("paused", "ended"):
                # deleted or paused since the take: that write removed it from the due zset (and a resume since
                # has put it back: it is not ours to remove)
                continue
            try:
                spec, rule = parse_spec(row, self._specs)
            except ValidationError as exc:  # a spec written by another version of the API
                calls.append(self._broken(row, now, f"stored spec not valid here: {exc.errors()[0]['msg']}"))
                notes.append((member, None, None))
                continue
            try:
                call, step, span = self._plan(row, spec, rule, now)
            except Exception as exc:  # noqa: BLE001 - one schedule's surprise must not stop the others
                log.exception("schedule step not computed", extra={"schedule": row.name, "tenant": row.tenant})
                call, step, span = self._broken(row, now, f"step not computed: {exc!r}"), None, None
            if call is not None:
                calls.append(call)
                notes.append((member, step, span))
        try:
            replies = await self.store.fire_many(calls)
        finally:
            for _, _, span in notes:
                if span is not None:
                    span.end()
        for (member, step, _), reply in zip(notes, replies, strict=True):
            if isinstance(reply, Exception):
                log.error("schedule step failed in Redis", extra={"schedule": member, "error": repr(reply)})
                continue  # (leased: looked at again when the lease ends)
            code, value = reply
            outcome = OUTCOME.get(code)
            if outcome is None:
                continue
            if code == scripts.FIRE_SKIPPED_MISSED:
                metrics.SCHEDULE_FIRES.labels(outcome).inc(int(value or 1))
                continue
            metrics.SCHEDULE_FIRES.labels(outcome).inc()
            if code == scripts.FIRE_WRITTEN and step is not None and step.kind == "fire":
                metrics.SCHEDULE_LATENESS.observe(max(0.0, step.late + self.clock() - now))

    def _plan(self, row: Row, spec: ScheduleSpec, rule: Rule, now: float
              ) -> tuple[tuple[list[str], list[Any]] | None, Step | None, Any]:
        cfg, member = self.config, row.member
        pending = row.fields.get("pending", "")
        common = {"member": member, "version": row.version, "next_read": row.next, "overlap": spec.overlap,
                  "now": now, "runs_kept": cfg.runs_kept}
        if pending:  # overlap=queue_one: a tick waits for the previous run to end
            tick = int(pending)
            next_tick = int(row.next) if row.next else None
            step = Step("pending", tick, next_tick)
            return self._with_job(row, spec, step, now, common, retry=now + cfg.interval)
        if not row.next:
            return None, None, None
        step = decide(rule, spec, member, int(row.next), now)
        if step.kind == "wait":
            return (scripts.fire_keys(keys.schedule(member), keys.schedule_runs(member)),
                    scripts.fire_args(step="rescore", tick=step.tick, next_tick=row.next,
                                      next_score=step.tick + jitter(member, step.tick, spec.jitter_seconds),
                                      retry_score=now + cfg.interval, **common)), step, None
        if step.kind == "skip":
            return (scripts.fire_keys(keys.schedule(member), keys.schedule_runs(member)),
                    scripts.fire_args(step="skip", tick=step.tick, next_tick=_t(step.next_tick),
                                      next_score=step.next_score(member, spec), retry_score=now + cfg.interval,
                                      extra=step.skipped, **common)), step, None
        return self._with_job(row, spec, step, now, common, retry=now + cfg.refused_retry)

    def _with_job(self, row: Row, spec: ScheduleSpec, step: Step, now: float, common: dict[str, Any], retry: float
                  ) -> tuple[tuple[list[str], list[Any]], Step, Any]:
        member = row.member
        span, meta = tracing.start_fire(row.tenant, row.name, step.tick)
        try:
            job = self.build(spec, row.tenant, step.tick, meta,
                             tick_idempotency(row, spec, step.tick, self.config.tick_key_ttl))
        except Broken as exc:
            if span is not None:
                span.set_attribute("jobengine.schedule.outcome", "broken")
                span.end()
            return self._broken(row, now, str(exc)), step, None
        if span is not None:
            span.set_attribute("jobengine.job.id", job.id)
        next_score = step.next_score(member, spec)
        return (scripts.fire_keys(keys.schedule(member), keys.schedule_runs(member), job.keys),
                scripts.fire_args(step="fire" if step.kind == "fire" else "pending", tick=step.tick,
                                  next_tick=_t(step.next_tick), next_score=next_score, retry_score=retry,
                                  job_args=job.args, **common)), step, span

    def _broken(self, row: Row, now: float, why: str) -> tuple[list[str], list[Any]]:
        log.warning("schedule broken", extra={"schedule": row.name, "tenant": row.tenant, "error": why})
        member = row.member
        return (scripts.fire_keys(keys.schedule(member), keys.schedule_runs(member)),
                scripts.fire_args(step="broken", member=member, version=row.version, next_read=row.next,
                                  tick=int(row.next or now), next_tick=row.next, next_score="", overlap="allow",
                                  now=now, runs_kept=self.config.runs_kept,
                                  retry_score=now + self.config.broken_retry, extra=why[:500]))


def _t(tick: int | None) -> str:
    return "" if tick is None else str(tick)
