"""/v1/schedules: cron and interval jobs of the caller's tenant (docs/guarantees.md, "Schedules").

Create, list (cursor), read (next fire times and the last runs with their jobs' status), change (a merge of
the fields given), delete, and the actions :trigger (run now), :pause and :resume. Reading needs the read
scope; everything else submit. Another tenant's schedule is a 404, as a missing one.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.responses import Response

from jobengine import keys, scripts, tracing
from jobengine.schedules.loop import Broken
from jobengine.schedules.spec import NAME_PATTERN, ScheduleSpec
from jobengine.schedules.store import Row, decode_cursor
from jobengine.schedules.ticks import Rule, jitter

from ..deps import ApiContext, ContextDep, ReadPrincipal, SubmitPrincipal
from ..jsonbody import decode, is_json, unsupported_media_type
from ..problems import Problem, invalid, not_found, too_many, validation_errors
from ..responses import JSONResponse
from ..scheduling import Schedules, conflict_declared
from .jobs import problems

router = APIRouter(prefix="/v1", tags=["schedules"])
PROBLEMS = problems(401, 403, 422, 503)
NEXT_RUNS_MAX = 50
ScheduleName = Annotated[str, Path(pattern=NAME_PATTERN, description="The schedule's name.")]


# --- response models (documentation; handlers build plain dicts) ---

class ScheduleRun(BaseModel):
    tick: datetime = Field(description="The tick (run now: the time of the trigger).")
    at: datetime = Field(description="When it was handled.")
    outcome: str = Field(description="enqueued, triggered, skipped_overlap, skipped_missed, buffered (overlap="
                         "queue_one: enqueued once the previous run ends) or broken.")
    job_id: str | None = None
    job_status: str | None = Field(None, description="The job's status now (null once it expired).")
    count: int | None = Field(None, description="skipped_missed: ticks skipped at once.")


class ScheduleInfo(ScheduleSpec):
    model_config = ConfigDict(extra="allow")

    state: str = Field(description="active, paused, ended (no tick left), or broken (see error).")
    error: str | None = Field(None, description="Why the schedule is broken.")
    source: str = Field(description="api, or declared (in the schedules file: change it there).")
    version: int
    next_run_at: datetime | None = Field(None, description="The next tick (plus jitter); null when not active.")
    created_at: datetime
    updated_at: datetime
    last_job_id: str | None = None
    fires: int = 0
    skipped: int = 0
    refused: int = Field(0, description="Fires refused by backpressure (queue full, tenant quota), then retried.")


class ScheduleDetail(ScheduleInfo):
    next_runs: list[datetime] = Field(description="The next ticks (jitter not added).")
    runs: list[ScheduleRun] = Field(description="The last runs, newest first.")


class ScheduleList(BaseModel):
    items: list[ScheduleInfo]
    next_cursor: str | None


class ScheduleTriggered(BaseModel):
    id: str = Field(description="The job's id.")
    status: str
    location: str


ScheduleChanges = create_model(  # every field optional: the fields given replace the stored ones (null clears)
    "ScheduleChanges", __config__=ConfigDict(extra="forbid"),
    **{name: (field.annotation | None, Field(None, description=field.description))  # type: ignore[operator]
       for name, field in ScheduleSpec.model_fields.items() if name != "name"},
)


def openapi_components(job_types: list[str]) -> dict[str, Any]:
    """The request bodies' schemas (the handlers read the raw body, as the submit routes do), with what the
    models check beyond their fields' types: a job type of the catalog, and one of cron or interval_seconds."""
    components: dict[str, Any] = {}
    for model in (ScheduleSpec, ScheduleChanges):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    spec = components["ScheduleSpec"]
    spec["properties"]["type"]["enum"] = sorted(job_types)
    spec["oneOf"] = [{"required": ["cron"], "properties": {"interval_seconds": {"type": "null"}}},
                     {"required": ["interval_seconds"], "properties": {"cron": {"type": "null"}}}]
    return components


def _body(ref: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ref}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _json(request: Request) -> Any:
    """The JSON body: 415 unless declared JSON, 422 naming what is wrong with it (the submit routes' decoder)."""
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        raise unsupported_media_type(content_type)
    return decode(await request.body())


def _iso(ts: float | str | None) -> datetime | None:
    if ts in (None, ""):
        return None
    return datetime.fromtimestamp(float(ts), timezone.utc)  # type: ignore[arg-type]


def _service(ctx: ApiContext) -> Schedules:
    service: Schedules | None = ctx.schedules
    if service is None:  # (a context built without schedules: tests of other parts)
        raise Problem(404, "not-found", "Schedules are not available.")
    return service


def _view(row: Row, spec: ScheduleSpec) -> dict[str, Any]:
    f = row.fields
    doc = spec.model_dump(mode="json")
    due = None
    if row.state in ("active", "broken") and row.next:
        due = int(row.next) + jitter(row.member, int(row.next), spec.jitter_seconds)
    doc.update(state=row.state, error=f.get("error") or None, source=f.get("source") or "api",
               version=int(f.get("version") or 0), next_run_at=_iso(due), created_at=_iso(f.get("created_at")),
               updated_at=_iso(f.get("updated_at")), last_job_id=f.get("last_job") or None,
               fires=int(f.get("fires") or 0), skipped=int(f.get("skipped") or 0), refused=int(f.get("refused") or 0))
    if f.get("pending"):
        doc["pending_tick"] = _iso(f["pending"])
    return doc


async def _row(service: Schedules, tenant: str, name: str) -> tuple[Row, ScheduleSpec]:
    row = await service.store.get(tenant, name)
    if row is None:
        raise not_found(f"Schedule {name}")
    return row, ScheduleSpec.model_validate_json(row.fields["spec"])


def _check_limits(ctx: ApiContext, spec: ScheduleSpec) -> None:
    """The submit's payload size limit (the job type's own, if it declares one): 413 naming payload."""
    ctx.limits.check_job(spec.job_doc())


@router.post("/schedules", status_code=201, summary="Create a schedule", openapi_extra=_body("ScheduleSpec"),
             responses={201: {"model": ScheduleInfo, "description": "Created; Location names it."},
                        **problems(409, 413, 415, 429), **PROBLEMS})
async def create_schedule(request: Request, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    service = _service(ctx)
    doc = await _json(request)
    ctx.limits.check_structure(doc, "")
    spec = service.validate(doc)
    _check_limits(ctx, spec)
    result = await service.create(principal.tenant, spec)
    if result == "exists":
        raise Problem(409, "schedule-exists", f"Schedule {spec.name!r} exists already; change it with PATCH.")
    if result == "limit":
        raise Problem(429, "schedule-limit", f"Your tenant holds {ctx.settings.max_schedules_per_tenant} schedules, "
                      "its limit (JOBENGINE_MAX_SCHEDULES_PER_TENANT); delete some first.",
                      headers={"Retry-After": "60"})
    row, stored = await _row(service, principal.tenant, spec.name)
    return JSONResponse(_view(row, stored), status_code=201, headers={"Location": f"/v1/schedules/{spec.name}"})


@router.get("/schedules", summary="List schedules by name",
            responses={200: {"model": ScheduleList}, **PROBLEMS})
async def list_schedules(
    ctx: ContextDep, principal: ReadPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
) -> Response:
    service = _service(ctx)
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError:
        raise invalid([{"field": "cursor", "message": "not a cursor returned by this API"}]) from None
    rows, next_cursor = await service.store.list(principal.tenant, after, limit)
    items = [_view(row, ScheduleSpec.model_validate_json(row.fields["spec"])) for row in rows]
    return JSONResponse({"items": items, "next_cursor": next_cursor})


@router.post("/schedules/{name}:trigger", status_code=202, summary="Run a schedule's job now",
             description="One job now, beside the ticks (no overlap policy; the next tick is unchanged).",
             responses={202: {"model": ScheduleTriggered}, **problems(404, 409, 429), **PROBLEMS})
async def trigger_schedule(name: ScheduleName, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    service = _service(ctx)
    row, spec = await _row(service, principal.tenant, name)
    now = time.time()
    span, meta = tracing.start_fire(row.tenant, row.name, now)
    try:
        try:
            job = service.build_job(spec, row.tenant, int(now), meta, None)
        except Broken as exc:
            raise Problem(409, "schedule-broken", f"Schedule {name!r} cannot make its job: {exc}.") from None
        code, value = await service.store.fire(
            scripts.fire_keys(keys.schedule(row.member), keys.schedule_runs(row.member), job.keys),
            scripts.fire_args(step="trigger", member=row.member, version=row.version, next_read=row.next,
                              tick=round(now, 3), next_tick=row.next, next_score="", overlap="allow", now=now,
                              runs_kept=ctx.settings.schedule_runs_kept, retry_score=now, job_args=job.args))
    finally:
        if span is not None:
            span.end()
    if code == scripts.FIRE_STALE:
        raise not_found(f"Schedule {name}")
    if code in (scripts.FIRE_QUEUE_FULL, scripts.FIRE_TENANT_QUOTA):
        reason = "queue_full" if code == scripts.FIRE_QUEUE_FULL else "tenant_quota"
        raise too_many(reason, ctx.settings.backlog_retry_after_seconds, job.queue)
    return JSONResponse({"id": value, "status": job.status, "location": f"/v1/jobs/{value}"}, status_code=202,
                        headers={"Location": f"/v1/jobs/{value}"})


async def _set_paused(ctx: ApiContext, tenant: str, name: str, paused: bool) -> Response:
    service = _service(ctx)
    for _ in range(5):
        row, spec = await _row(service, tenant, name)
        if spec.paused == paused and (paused or row.state != "paused"):
            return JSONResponse(_view(row, spec))
        changed = spec.model_copy(update={"paused": paused})
        if await service.replace(row, changed):
            row, spec = await _row(service, tenant, name)
            return JSONResponse(_view(row, spec))
    raise Problem(409, "schedule-busy", f"Schedule {name!r} kept changing; retry.")


@router.post("/schedules/{name}:pause", summary="Pause a schedule (no tick fires until resumed)",
             responses={200: {"model": ScheduleInfo}, **problems(404, 409), **PROBLEMS})
async def pause_schedule(name: ScheduleName, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    return await _set_paused(ctx, principal.tenant, name, True)


@router.post("/schedules/{name}:resume", summary="Resume a paused schedule from its next tick after now",
             description="Ticks that fell into the pause are not caught up.",
             responses={200: {"model": ScheduleInfo}, **problems(404, 409), **PROBLEMS})
async def resume_schedule(name: ScheduleName, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    return await _set_paused(ctx, principal.tenant, name, False)


@router.get("/schedules/{name}", summary="Read a schedule: its next runs and its last runs",
            responses={200: {"model": ScheduleDetail}, **problems(404), **PROBLEMS})
async def get_schedule(
    name: ScheduleName, ctx: ContextDep, principal: ReadPrincipal,
    next: Annotated[int, Query(ge=0, le=NEXT_RUNS_MAX, description="How many next ticks to show.")] = 5,
) -> Response:
    service = _service(ctx)
    row, spec = await _row(service, principal.tenant, name)
    doc = _view(row, spec)
    ticks: list[int] = []
    if next and row.state in ("active", "broken") and row.next:
        first = int(row.next)
        ticks = [first, *Rule.of(spec, row.created_at).upcoming(first, next - 1)]
    doc["next_runs"] = [_iso(t) for t in ticks]
    runs = await service.store.runs(row.member)
    doc["runs"] = [{"tick": _iso(run.get("tick")), "at": _iso(run.get("at")), "outcome": run.get("outcome", ""),
                    "job_id": run.get("job_id") or None, "job_status": run.get("job_status") or None,
                    **({"count": run["count"]} if run.get("count") else {})} for run in runs]
    return JSONResponse(doc)


@router.patch("/schedules/{name}", summary="Change a schedule", openapi_extra=_body("ScheduleChanges"),
              description="The fields given replace the stored ones (null clears an optional one); the next tick "
                          "is computed again. Declared schedules (in the schedules file) are changed there: 409.",
              responses={200: {"model": ScheduleInfo}, **problems(404, 409, 413, 415), **PROBLEMS})
async def change_schedule(name: ScheduleName, request: Request, ctx: ContextDep,
                          principal: SubmitPrincipal) -> Response:
    service = _service(ctx)
    doc = await _json(request)
    ctx.limits.check_structure(doc, "")
    try:
        changes = ScheduleChanges.model_validate(doc)
    except ValidationError as exc:
        raise invalid(validation_errors(exc.errors(include_url=False)), "The changes are not valid.") from None
    given = changes.model_dump(exclude_unset=True)
    for _ in range(5):
        row, spec = await _row(service, principal.tenant, name)
        if row.fields.get("source") == "declared":
            raise conflict_declared(name)
        doc = {**spec.model_dump(), **given}
        if doc.get("cron") is not None and "interval_seconds" not in given and "cron" in given:
            doc["interval_seconds"] = None  # switching to cron drops the interval, and the other way round
        if doc.get("interval_seconds") is not None and "cron" not in given and "interval_seconds" in given:
            doc["cron"] = None
        new = service.validate(doc)
        _check_limits(ctx, new)
        if await service.replace(row, new):
            row, spec = await _row(service, principal.tenant, name)
            return JSONResponse(_view(row, spec))
    raise Problem(409, "schedule-busy", f"Schedule {name!r} kept changing; retry.")


@router.delete("/schedules/{name}", status_code=204, summary="Delete a schedule (its jobs stay)",
               responses={204: {"description": "Deleted."}, **problems(404, 409), **PROBLEMS})
async def delete_schedule(name: ScheduleName, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    service = _service(ctx)
    row, _ = await _row(service, principal.tenant, name)
    if row.fields.get("source") == "declared":
        raise conflict_declared(name)
    if not await service.store.delete(principal.tenant, name):
        raise not_found(f"Schedule {name}")
    return Response(status_code=204)

