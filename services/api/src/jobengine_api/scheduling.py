"""Schedules on the API side: validation against the catalog (the same models as a submit), the job of a
tick built by the submit path (prepare_job), the writes behind /v1/schedules, the declared-schedules upsert
and the firing loop's wiring (jobengine.schedules holds the engine itself)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from jobengine import keys, metrics, scripts
from jobengine.catalog import Catalog
from jobengine.schedules.declared import DeclaredSpec
from jobengine.schedules.loop import Broken, FiringLoop, LoopConfig
from jobengine.schedules.spec import ScheduleSpec
from jobengine.schedules.store import Row, ScheduleStore, spec_json
from jobengine.schedules.ticks import Rule, jitter
from jobengine.settings import Settings

from .models import Submissions
from .problems import Problem, invalid, validation_errors
from .store import PreparedJob, prepare_job

log = logging.getLogger(__name__)
SPEC_ADAPTER: TypeAdapter[ScheduleSpec] = TypeAdapter(ScheduleSpec)


def first_tick(spec: ScheduleSpec, member: str, created_at: float, after: float) -> tuple[int | None, float | str]:
    """The next tick after `after` (None: the schedule has ended) and its due score (tick + jitter)."""
    tick = Rule.of(spec, created_at).next_after(after)
    if tick is None:
        return None, ""
    return tick, tick + jitter(member, tick, spec.jitter_seconds)


@dataclass
class Schedules:
    """What the routes and the lifespan use; one per API process."""

    settings: Settings
    catalog: Catalog
    submissions: Submissions
    queues: frozenset[str]
    store: ScheduleStore

    # --- validation ---

    def check_job(self, spec: ScheduleSpec) -> None:
        """422 naming the field unless the schedule's job is a valid submission (type, payload.<field>, queue)."""
        try:
            sub = self.submissions.single.validate_python(spec.job_doc())
        except ValidationError as exc:
            skip = self.submissions.tags if len(self.submissions.tags) > 1 else None
            errors = validation_errors(exc.errors(include_url=False), skip_tag=set(skip) if skip else None)
            unknown = any(e["type"] in ("union_tag_invalid", "union_tag_not_found") for e in exc.errors())
            detail = (f"Unknown job type; known types: {', '.join(sorted(self.submissions.tags))}." if unknown
                      else "The schedule's job does not match its type's schema.")
            raise invalid(errors, detail) from None
        if sub.queue is not None and sub.queue not in self.queues:
            raise invalid([{"field": "queue", "message": f"unknown queue {sub.queue!r}; declared: "
                            f"{', '.join(sorted(self.queues))}"}], "No worker serves this queue.")

    def validate(self, doc: Any) -> ScheduleSpec:
        try:
            spec = SPEC_ADAPTER.validate_python(doc)
        except ValidationError as exc:
            raise invalid(validation_errors(exc.errors(include_url=False)), "The schedule is not valid.") from None
        self.check_job(spec)
        return spec

    # --- the job of a tick (the loop's JobBuilder, and :trigger) ---

    def build_job(self, spec: ScheduleSpec, tenant: str, tick: int, trace_meta: dict[str, str] | None,
                  idempotency: tuple[str, int] | None) -> PreparedJob:
        if spec.type not in self.submissions.tags:
            raise Broken(f"job type {spec.type!r} is not in this API's catalog")
        try:
            sub = self.submissions.single.validate_python(spec.job_doc())
        except ValidationError as exc:
            err = exc.errors()[0]
            raise Broken(f"the job no longer validates: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        if sub.queue is not None and sub.queue not in self.queues:
            raise Broken(f"queue {sub.queue!r} is no longer declared")
        meta = {**(trace_meta or {}), "schedule": spec.name, "schedule_tick": tick}
        job = prepare_job(sub, self.catalog[spec.type], self.settings, trace_meta=meta, tenant=tenant)
        if idempotency is not None:
            scripts.set_enqueue_idempotency(job.keys, job.args, *idempotency)
        return job

    # --- writes ---

    async def create(self, tenant: str, spec: ScheduleSpec, source: str = "api") -> str:
        now = time.time()
        member = keys.schedule_member(tenant, spec.name)
        tick, score = first_tick(spec, member, now, now)
        # the limit is for what clients create; the platform's file is never refused by it (its schedules count)
        limit = self.settings.max_schedules_per_tenant if source == "api" else 0
        return await self.store.create(tenant, spec, next_tick=tick, score=score, source=source, now=now,
                                       max_per_tenant=limit)

    async def replace(self, row: Row, spec: ScheduleSpec, source: str | None = None) -> bool:
        """A new spec: its next tick computed again from now (a tick fired already is not fired twice: its
        idempotency key is kept)."""
        now = time.time()
        tick, score = first_tick(spec, row.member, row.created_at, now)
        return await self.store.replace(row, spec, next_tick=tick, score=score, now=now, source=source)

    async def upsert_declared(self, specs: list[DeclaredSpec]) -> dict[str, int]:
        """Write the declared schedules; delete the declared ones no longer declared."""
        counts = {"created": 0, "changed": 0, "unchanged": 0, "deleted": 0}
        wanted = set()
        for declared in specs:
            spec = ScheduleSpec.model_validate(declared.model_dump(exclude={"tenant"}))
            self.check_job(spec)
            wanted.add(keys.schedule_member(declared.tenant, spec.name))
            for _ in range(5):  # (a concurrent writer: read again)
                row = await self.store.get(declared.tenant, spec.name)
                if row is None:
                    result = await self.create(declared.tenant, spec, source="declared")
                    if result == "created":
                        counts["created"] += 1
                        break
                    continue
                if row.fields.get("source") == "declared" and row.fields.get("declared_spec") == spec_json(spec):
                    counts["unchanged"] += 1  # as the file had it: next tick, history, a pause through the API kept
                    break
                if await self.replace(row, spec, source="declared"):
                    counts["changed"] += 1
                    break
        for member in await self.store.declared() - wanted:
            tenant, name = member.split(":", 1)
            if await self.store.delete(tenant, name):
                counts["deleted"] += 1
        return counts

    def loop(self, held_back: Any = None) -> FiringLoop:
        s = self.settings
        config = LoopConfig(interval=s.scheduler_interval_seconds, lease=s.scheduler_lease_seconds,
                            batch=s.scheduler_batch, runs_kept=s.schedule_runs_kept,
                            tick_key_ttl=s.schedule_tick_key_ttl_seconds,
                            broken_retry=s.schedule_broken_retry_seconds,
                            refused_retry=s.backlog_retry_after_seconds)
        return FiringLoop(self.store, self.build_job, config, held_back=held_back)

    async def refresh_gauges(self) -> None:
        for state, count in (await self.store.state_counts()).items():
            metrics.SCHEDULES.labels(state).set(count)


def conflict_declared(name: str) -> Problem:
    return Problem(409, "schedule-declared", f"Schedule {name!r} is declared in the schedules file "
                   "(JOBENGINE_SCHEDULES_FILE): change or remove it there. Pause, resume and trigger work here.")
