"""/v1/jobs: submit (one or a batch), read, wait, list, cancel, retry.

Submit handlers read the raw body and validate it with the catalog's TypeAdapter in one pass
(pydantic parses the JSON itself); the body schemas reach /docs through openapi_extra.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import OutOfMemoryError
from starlette.responses import Response

from jobengine import scripts, tracing
from jobengine.jobdata import API_STATUS, JOB_ID_PATTERN, TERMINAL, new_job_ids
from jobengine.metrics import JOBS_REJECTED, JOBS_SUBMITTED
from jobengine.settings import QUEUE_NAME_PATTERN

from ..apikey import Principal
from ..deps import ApiContext, ContextDep, JobId, ReadPrincipal, StoreDep, SubmitPrincipal, authorize
from ..jsonbody import decode, is_json, unsupported_media_type
from ..models import (IDEMPOTENCY_KEY_MAX, BatchResult, JobAccepted, JobDetail, JobList, JobOptions, JobStatusChange,
                      ProblemDetail)
from ..problems import Problem, invalid, not_found, redis_full, too_many, validation_errors
from ..responses import JSONResponse
from .. import flows
from ..store import Enqueued, PreparedJob, _enqueued, decode_cursor, fingerprint, prepare_job
from ..waiter import DoneWaiter
from ..webhooks import callbacks

router = APIRouter(prefix="/v1", tags=["jobs"])

WAIT_POLL_SECONDS = 1.0  # safety net under pub/sub: a lost message delays an answer by at most this
PROBLEM_DESCRIPTIONS = {
    401: "No API key, or an unknown, wrong or revoked one (WWW-Authenticate: Bearer).",
    403: "The API key lacks the scope this operation needs.",
    404: "No such job for this tenant (it may have expired); on submit: a job named in depends_on.",
    409: "Conflict with the job's state or an earlier request.",
    413: "The body or a job's payload is too large.",
    415: "The body is not declared JSON (Content-Type application/json or application/<x>+json).",
    422: "Validation failed; `errors` names the fields.",
    429: "The queue is at its backlog limit, the tenant at its quota or the key's rate limit is exhausted; retry "
         "after Retry-After seconds.",
    503: "Redis is unreachable or out of memory; retry after Retry-After seconds.",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries of problem+json answers."""
    return {code: {"model": ProblemDetail, "description": PROBLEM_DESCRIPTIONS.get(code, "Error"),
                   "content": {"application/problem+json": {}}} for code in codes}


PROBLEMS = problems(401, 403, 422, 503)


def _body(ref: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ref}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_submitted: dict[tuple[str, str], Any] = {}


def _count_submitted(queue: str, job_type: str, n: int = 1) -> None:
    child = _submitted.get((queue, job_type))
    if child is None:
        child = _submitted[(queue, job_type)] = JOBS_SUBMITTED.labels(queue, job_type)
    child.inc(n)


def _reject_reason(exc: ValidationError) -> str:
    kinds = {e["type"] for e in exc.errors()}
    if kinds & {"union_tag_invalid", "union_tag_not_found"}:
        return "unknown_type"
    return "validation"


def _validation_problem(ctx: ApiContext, exc: ValidationError) -> tuple[Problem, str]:
    reason = _reject_reason(exc)
    skip = ctx.submissions.tags if len(ctx.submissions.tags) > 1 else None
    errors = validation_errors(exc.errors(include_url=False), skip_tag=set(skip) if skip else None)
    detail = (f"Unknown job type; known types: {', '.join(sorted(ctx.submissions.tags))}." if reason == "unknown_type"
              else "The job does not match its type's schema.")
    return invalid(errors, detail), reason


def _accepted(job: PreparedJob, job_id: str, status: str) -> dict[str, Any]:
    location = f"/v1/jobs/{job_id}"
    body: dict[str, Any] = {"id": job_id, "status": status, "type": job.type, "queue": job.queue,
                            "location": location}
    if job.run_at is not None:
        body["run_at"] = job.run_at
    return body


def _conflict(key: str) -> Problem:
    return Problem(409, "idempotency-conflict",
                   f"Idempotency-Key {key!r} was used with a different request body.")


IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Repeat a submission safely: the same key and body return the same job.",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
}

# --- parsing: body -> validated submissions (the two endpoints differ only here) ---


async def _json_body(request: Request, content_type: str | None) -> tuple[Any, bytes]:
    """The decoded JSON body and its bytes: 415 unless it says it is JSON, 422 naming the field of a value JSON data
    cannot keep (jsonbody.py: one decoder, one rule for both submit endpoints)."""
    if content_type != "application/json" and not is_json(content_type):  # (the usual header: no call)
        JOBS_REJECTED.labels("malformed_json").inc()
        raise unsupported_media_type(content_type)
    body = await request.body()
    try:
        return decode(body), body
    except Problem:
        JOBS_REJECTED.labels("malformed_json").inc()
        raise


def _validate(ctx: ApiContext, adapter: TypeAdapter[Any], doc: Any) -> JobOptions:
    """One submission validated by its type's model, on a declared queue; else a 422 naming the field
    (relative to the submission: `payload.lowest`, `queue`)."""
    try:
        sub: JobOptions = adapter.validate_python(doc)
    except ValidationError as exc:
        problem, reason = _validation_problem(ctx, exc)
        JOBS_REJECTED.labels(reason).inc()
        raise problem from None
    if sub.queue is not None and sub.queue not in ctx.queues:
        JOBS_REJECTED.labels("validation").inc()
        raise unknown_queue(ctx, sub.queue)
    return sub


def queue_paused(queue: str) -> Problem:
    JOBS_REJECTED.labels("queue_paused").inc()
    return Problem(409, "queue-paused", f"Queue {queue!r} is paused and refuses submits until it is resumed "
                   "(POST /v1/queues/{name}:resume).", extra={"queue": queue})


def unknown_queue(ctx: ApiContext, queue: str) -> Problem:
    declared = ", ".join(sorted(ctx.queues))
    return invalid([{"field": "queue", "message": f"unknown queue {queue!r}; declared: {declared}"}],
                   "No worker serves this queue.")


# --- one path after parsing: prepare, guard, write, answer per job ---


@dataclass(slots=True)
class Submitted:
    job: PreparedJob
    outcome: Enqueued

    def refusal(self) -> Problem | None:
        """The problem of a job the enqueue script did not write (counted as rejected), else None."""
        if self.outcome.refused:
            JOBS_REJECTED.labels(self.outcome.refused).inc()
            return too_many(self.outcome.refused, self.outcome.retry_after, self.job.queue)
        if self.outcome.conflict:
            JOBS_REJECTED.labels("idempotency_conflict").inc()
            return _conflict(self.job.idempotency_key or "")
        return None


# The path after parsing, shared by both endpoints: _prepare the jobs (submitted at one time), write them
# (store.enqueue for one, store.enqueue_many for many: one script call or one transaction), _answered per
# job. Written out in each handler rather than wrapped in a coroutine of its own: a coroutine level more
# on the submit path cost about 1 % of the API's CPU a submit.


def _prepare(ctx: ApiContext, principal: Principal, subs: list[tuple[JobOptions, str | None, str]],
             span: Any) -> list[PreparedJob]:
    """(submission, idempotency key, fingerprint) -> jobs for the enqueue script; refused (503) before
    anything is written when Redis is near its memory limit."""
    now = datetime.now(timezone.utc)
    settings, tenant, key_id, meta = ctx.settings, principal.tenant, principal.key_id, span.meta
    jobs = [prepare_job(sub, ctx.catalog[sub.type], settings, idempotency_key=key,  # type: ignore[attr-defined]
                        fp=fp, trace_meta=meta, tenant=tenant, key_id=key_id, now=now, job_id=job_id)
            for (sub, key, fp), job_id in zip(subs, new_job_ids(len(subs)), strict=True)]
    if len(jobs) == 1:
        span.job(jobs[0].id, jobs[0].type, jobs[0].queue)
    _memory_guard(ctx, len(jobs))
    return jobs


async def _callbacks(request: Request, ctx: ApiContext, principal: Principal,
                     subs: list[tuple[JobOptions, PreparedJob]]) -> None:
    """Check and keep the callback_url of jobs about to be written (webhooks/callbacks.py)."""
    entries = []
    for sub, job in subs:
        assert sub.callback_url is not None
        if (problem := callbacks.url_problem(sub.callback_url, ctx.settings.webhooks_allow_private)) is not None:
            raise problem
        delay = job.run_at.timestamp() - datetime.now(timezone.utc).timestamp() if job.run_at else 0.0
        entries.append((job.id, sub.callback_url, max(0.0, delay)))
    await callbacks.register(request.app.state.webhooks.redis, principal.tenant, entries)


def _out_of_memory(jobs: int) -> Problem:
    """Redis refused the write (over maxmemory) before the script wrote anything."""
    JOBS_REJECTED.labels("redis_oom").inc(jobs)
    return redis_full()


@router.post(
    "/jobs", status_code=202, openapi_extra={**_body("JobSubmission"), "parameters": [IDEMPOTENCY_HEADER]},
    summary="Submit a job",
    responses={202: {"model": JobAccepted, "description": "Accepted; Location names the job."},
               200: {"model": JobAccepted, "description": "Idempotent replay: the job of an earlier request."},
               **problems(404, 409, 413, 415, 429), **PROBLEMS},
)
async def submit_job(request: Request) -> Response:
    # The hot path: no FastAPI dependencies or header parameters (solving them costs more than the
    # enqueue itself). hotroute.py checks this signature at start-up.
    principal = authorize(request, "submit")
    ctx: ApiContext = request.app.state.ctx
    content_type = idempotency_key = None
    for name, value in request.scope["headers"]:  # one pass over the raw headers (Headers.get is a loop a call)
        if name == b"content-type" and content_type is None:  # the first of each, as Headers.get takes
            content_type = value.decode("latin-1")
        elif name == b"idempotency-key" and idempotency_key is None:
            idempotency_key = value.decode("latin-1")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        raise invalid([{"field": "Idempotency-Key", "message": f"1 to {IDEMPOTENCY_KEY_MAX} characters"}])
    doc, body = await _json_body(request, content_type)
    if ctx.limits.needs_check(body):  # only bodies big or nested enough to break a limit are walked
        ctx.limits.check_structure(doc, "")
        ctx.limits.check_job(doc)
    sub = _validate(ctx, ctx.submissions.single, doc)
    if sub.depends_on is not None:  # (one attribute read on the plain path)
        return await _submit_dependent(request, ctx, principal, sub, idempotency_key)
    with tracing.enqueue_span() as span:  # its W3C context goes into the job's meta; a no-op when tracing is off
        (job,) = _prepare(ctx, principal, [(sub, idempotency_key, fingerprint(sub) if idempotency_key else "")], span)
        if ctx.paused is not None and ctx.paused.refusing and job.queue in ctx.paused.refusing:
            raise queue_paused(job.queue)
        if sub.callback_url is not None:  # (rare: the common submit pays one attribute read)
            await _callbacks(request, ctx, principal, [(sub, job)])
        try:
            done = Submitted(job, await ctx.store.enqueue(job))
        except OutOfMemoryError:
            raise _out_of_memory(1) from None
    return _answer(done, done.job.status)


def _answer(done: Submitted, status: str) -> JSONResponse:
    """A single submit's answer: its refusal, the first job of a replay (200), or the job written (202)."""
    if (problem := done.refusal()) is not None:
        raise problem
    job, outcome = done.job, done.outcome
    headers = {"Location": f"/v1/jobs/{outcome.id}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
        return JSONResponse(_accepted(job, outcome.id, outcome.status), status_code=200, headers=headers)
    _count_submitted(job.queue, job.type)
    return JSONResponse(_accepted(job, job.id, status), status_code=202, headers=headers)


def _dependencies(ctx: ApiContext, sub: JobOptions) -> list[tuple[str, str]]:
    """depends_on as (id, on), or a 422 naming the field."""
    if sub.delay_seconds is not None or sub.run_at is not None:
        raise invalid([{"field": "depends_on", "message": "a job with dependencies runs when they end: no "
                                                          "delay_seconds or run_at"}])
    if len(sub.depends_on or []) > ctx.settings.max_depends_on:
        raise invalid([{"field": "depends_on", "message": f"at most {ctx.settings.max_depends_on} dependencies "
                                                          "(JOBENGINE_MAX_DEPENDS_ON)"}])
    deps: dict[str, str] = {}
    for i, dep in enumerate(sub.depends_on or []):
        dep_id, on = (dep, "success") if isinstance(dep, str) else (dep.id, dep.on)
        if dep_id in deps:
            raise invalid([{"field": f"depends_on.{i}", "message": f"{dep_id!r} named twice"}])
        deps[dep_id] = on
    return list(deps.items())


async def _submit_dependent(request: Request, ctx: ApiContext, principal: Principal, sub: JobOptions,
                            idempotency_key: str | None) -> Response:
    """POST /v1/jobs with depends_on: written by flow.lua (the job deferred, its edges, queued at once when
    its dependencies have all ended well); a dependency that is not the caller's is a 404, as for a read."""
    deps = _dependencies(ctx, sub)
    with tracing.enqueue_span() as span:
        job = prepare_job(sub, ctx.catalog[sub.type], ctx.settings,  # type: ignore[attr-defined]
                          idempotency_key=idempotency_key, fp=fingerprint(sub) if idempotency_key else "",
                          trace_meta=span.meta, tenant=principal.tenant, key_id=principal.key_id,
                          dependencies={d: d for d, _ in deps})
        span.job(job.id, job.type, job.queue)
        _memory_guard(ctx, 1)
        if ctx.paused is not None and ctx.paused.refusing and job.queue in ctx.paused.refusing:
            raise queue_paused(job.queue)
        if sub.callback_url is not None:
            await _callbacks(request, ctx, principal, [(sub, job)])
        flows.as_deferred(job)
        node = scripts.FlowNodeArgs(job.keys, job.args, deps, sub.on_dependency_failure)
        try:
            reply = await flows.write(ctx.store, flow_id="", tenant=principal.tenant, nodes=[node],
                                      flow_fields=[])
        except OutOfMemoryError:
            raise _out_of_memory(1) from None
    if reply.code == scripts.FLOW_MISSING:
        raise not_found(f"Job {reply.id} (in depends_on)")
    if reply.code == scripts.FLOW_WRITTEN:
        outcome = Enqueued(job.id, API_STATUS.get(reply.statuses[0], reply.statuses[0]))
    else:
        assert reply.enqueue is not None
        outcome = _enqueued(job, [reply.enqueue.code, reply.enqueue.job or reply.enqueue.number,
                                  reply.enqueue.fingerprint, reply.enqueue.status], ctx.settings)
    return _answer(Submitted(job, outcome), outcome.status)


def submit_route() -> APIRoute:
    """The route of submit_job, for the hot route (hotroute.py)."""
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is submit_job)


@router.post(
    "/jobs:batch", status_code=202, openapi_extra=_body("BatchSubmission"), summary="Submit many jobs",
    description="Each rejected item's `error` is a problem document whose `instance` ends in `#/jobs/<index>` and "
                "whose field paths are relative to the item (`payload.lowest`, `queue`), as in a single submit's "
                "errors. A problem that refuses the whole body names fields from the body's root (`jobs.3.type`).",
    responses={202: {"model": BatchResult, "description": "Every item accepted."},
               207: {"model": BatchResult, "description": "Some items rejected; see each result."},
               **problems(413, 415), **PROBLEMS},
)
async def submit_batch(request: Request, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    doc, _ = await _json_body(request, request.headers.get("content-type"))
    items = _batch_items(doc, ctx.settings.max_batch_size)
    results: list[dict[str, Any] | None] = [None] * len(items)
    valid: list[tuple[int, tuple[JobOptions, str | None, str]]] = []
    for index, item in enumerate(items):
        try:
            ctx.limits.check_batch_item(item)
        except Problem as problem:
            JOBS_REJECTED.labels("limit").inc()
            results[index] = _item_error(request, index, problem)
            continue
        try:
            sub = _validate(ctx, ctx.submissions.batch_item, item)
            if sub.depends_on is not None:
                JOBS_REJECTED.labels("validation").inc()
                raise invalid([{"field": "depends_on", "message": "not in a batch: submit it alone (POST /v1/jobs) "
                                                                  "or as a flow (POST /v1/flows)"}])
            if sub.callback_url is not None and (refusal := callbacks.url_problem(
                    sub.callback_url, ctx.settings.webhooks_allow_private)) is not None:
                raise refusal  # this item's, as any other field of it
            if ctx.paused is not None and ctx.paused.refusing:
                queue = sub.queue or ctx.catalog[sub.type].queue or ctx.settings.default_queue  # type: ignore[attr-defined]
                if queue in ctx.paused.refusing:
                    raise queue_paused(queue)
        except Problem as problem:
            results[index] = _item_error(request, index, problem)
            continue
        key = sub.idempotency_key  # type: ignore[attr-defined]
        valid.append((index, (sub, key, fingerprint(sub, exclude={"idempotency_key"}) if key else "")))
    written: Counter[tuple[str, str]] = Counter()  # (queue, type): counted once a batch, not once a job
    dones: list[Submitted] = []
    if valid:
        with tracing.enqueue_span(len(valid)) as span:  # one span for the batch; each job carries its context
            jobs = _prepare(ctx, principal, [v for _, v in valid], span)
            with_callback = [(v[1][0], job) for v, job in zip(valid, jobs, strict=True) if v[1][0].callback_url]
            if with_callback:
                await _callbacks(request, ctx, principal, with_callback)
            try:
                dones = [Submitted(*pair) for pair in zip(jobs, await ctx.store.enqueue_many(jobs), strict=True)]
            except OutOfMemoryError:
                raise _out_of_memory(len(jobs)) from None
    for (index, _), done in zip(valid, dones, strict=True):
        problem = done.refusal()
        if problem is not None:
            results[index] = _item_error(request, index, problem)
        elif done.outcome.replayed:
            results[index] = {"index": index, "id": done.outcome.id, "status": done.outcome.status, "replayed": True}
        else:
            written[done.job.queue, done.job.type] += 1
            results[index] = {"index": index, "id": done.job.id, "status": done.job.status}
    for (queue, job_type), n in written.items():
        _count_submitted(queue, job_type, n)
    accepted = sum(1 for r in results if r is not None and "id" in r)
    status = 202 if accepted == len(items) else 207
    return JSONResponse({"accepted": accepted, "rejected": len(items) - accepted, "results": results},
                        status_code=status)


def _item_error(request: Request, index: int, problem: Problem) -> dict[str, Any]:
    error = problem.body(f"{request.url.path}#/jobs/{index}")
    if "Retry-After" in problem.headers:
        error["retry_after"] = int(problem.headers["Retry-After"])
    return {"index": index, "error": error}


def _memory_guard(ctx: ApiContext, jobs: int) -> None:
    """503 before writing when Redis is near its maxmemory (guard.py): room is kept for accepted jobs' outcomes."""
    if ctx.guard is not None and ctx.guard.over:
        JOBS_REJECTED.labels("redis_memory").inc(jobs)
        raise redis_full("Redis is near its memory limit: new jobs wait until accepted ones end; retry later.")


def _batch_items(doc: Any, max_items: int) -> list[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
        raise invalid([{"field": "jobs", "message": "a list of jobs is required"}])
    if extra := sorted(set(doc) - {"jobs"}):
        raise invalid([{"field": name, "message": "unknown field"} for name in extra])
    items = doc["jobs"]
    if not 1 <= len(items) <= max_items:
        raise invalid([{"field": "jobs", "message": f"between 1 and {max_items} jobs per batch"}])
    return items  # type: ignore[no-any-return]


@router.get("/jobs/{job_id}", summary="Read a job", responses={200: {"model": JobDetail}, **problems(404), **PROBLEMS})
async def get_job(
    job_id: JobId, ctx: ContextDep, principal: ReadPrincipal,
    wait: Annotated[float, Query(ge=0, description="Seconds to wait for the job to end (long poll).")] = 0,
) -> Response:
    if wait > ctx.settings.max_wait_seconds:
        raise invalid([{"field": "wait", "message": f"must be <= {ctx.settings.max_wait_seconds:g}"}])
    # with a wait, subscribe before the first read: one round trip less while the job runs
    tenant = principal.tenant
    job = await (_wait_for_end(ctx, ctx.waiter, job_id, wait, tenant) if wait > 0 else ctx.store.get(job_id, tenant))
    if job is None:
        raise not_found(f"Job {job_id}")
    return JSONResponse(job)


async def _wait_for_end(ctx: ApiContext, waiter: DoneWaiter, job_id: str, wait: float, tenant: str
                        ) -> dict[str, Any] | None:
    """Wait until the job is terminal or `wait` seconds passed; woken by the done channel."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    try:
        async with asyncio.timeout_at(deadline):
            async with waiter.subscription(job_id) as done:
                # the deadline is checked here too: a cancellation that redis-py swallows while the timeout
                # fires during SUBSCRIBE (seen with ?wait=1e-20) must not leave the request waiting forever
                read_after_message = False
                while loop.time() < deadline:
                    job = await ctx.store.get(job_id, tenant)  # after subscribing: an end in between is not missed
                    if job is None or job["status"] in TERMINAL:
                        return job
                    pause = min(WAIT_POLL_SECONDS, max(0.0, deadline - loop.time()))
                    if done.done() and not read_after_message:
                        # the message came while we were reading: read once more at once
                        read_after_message = True
                    elif done.done():  # message seen but not terminal (requeued since) or pub/sub lost: poll
                        await asyncio.sleep(pause)
                    else:
                        await asyncio.wait((done,), timeout=pause)
    except TimeoutError:
        pass
    return await ctx.store.get(job_id, tenant)


@router.get("/jobs", summary="List jobs, newest first (or a flow's, in its order)",
            responses={200: {"model": JobList}, **problems(404), **PROBLEMS})
async def list_jobs(
    ctx: ContextDep, principal: ReadPrincipal,
    status: Annotated[Literal["queued", "deferred", "scheduled", "started", "finished", "failed", "canceled"] | None,
                      Query()] = None,
    job_type: Annotated[str | None, Query(alias="type", max_length=200)] = None,
    queue: Annotated[str | None, Query(pattern=QUEUE_NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    created_after: Annotated[datetime | None, Query(description="Jobs submitted at or after this time.")] = None,
    created_before: Annotated[datetime | None, Query(description="Jobs submitted before this time.")] = None,
    flow: Annotated[str | None, Query(pattern=JOB_ID_PATTERN.pattern, description="The jobs of this flow only, in "
                                      "the order they were written (dependencies first); other filters apply.")] = None,
) -> Response:
    if flow is not None:
        return await _list_flow(ctx, principal.tenant, flow, limit, cursor, status, job_type, queue)
    try:
        position = decode_cursor(cursor) if cursor else None
    except ValueError:
        raise invalid([{"field": "cursor", "message": "not a cursor returned by this API"}]) from None
    if queue is not None and queue not in ctx.queues:
        raise unknown_queue(ctx, queue)
    created_after, created_before = _aware(created_after), _aware(created_before)
    if created_after and created_before and created_after >= created_before:
        raise invalid([{"field": "created_before", "message": "must be after created_after"}])
    items, next_cursor = await ctx.store.list(limit=limit, cursor=position, status=status, job_type=job_type,
                                          queue=queue, tenant=principal.tenant, created_after=created_after,
                                          created_before=created_before)
    return JSONResponse({"items": items, "next_cursor": next_cursor})


async def _list_flow(ctx: ApiContext, tenant: str, flow_id: str, limit: int, cursor: str | None, status: str | None,
                     job_type: str | None, queue: str | None) -> Response:
    """GET /v1/jobs?flow=: the flow's jobs a page at a time (cursor: an offset in the flow, 'f<n>')."""
    offset = 0
    if cursor:
        if not (cursor.startswith("f") and cursor[1:].isdigit() and len(cursor) < 12):
            raise invalid([{"field": "cursor", "message": "not a cursor returned by this API"}])
        offset = int(cursor[1:])
    page = await flows.list_jobs(ctx.store, flow_id, tenant, offset, limit)
    if page is None:
        raise not_found(f"Flow {flow_id}")
    items, nxt = page
    items = [i for i in items if not ((status and i["status"] != status) or (job_type and i["type"] != job_type)
                                      or (queue and i["queue"] != queue))]
    return JSONResponse({"items": items, "next_cursor": f"f{nxt}" if nxt is not None else None})


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC (RQ's timestamps are)."""
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


@router.delete(
    "/jobs/{job_id}", summary="Cancel a job",
    responses={200: {"model": JobStatusChange, "description": "Canceled before it ran."},
               202: {"model": JobStatusChange, "description": "Running: its worker was told to stop it."},
               **problems(404, 409), **PROBLEMS},
)
async def cancel_job(job_id: JobId, store: StoreDep, principal: SubmitPrincipal) -> Response:
    result, status = await store.cancel(job_id, principal.tenant)
    if result == "canceled":
        return JSONResponse({"id": job_id, "status": "canceled"})
    if result == "stopping":
        return JSONResponse({"id": job_id, "status": "canceling"}, status_code=202)
    if result == "missing":
        raise not_found(f"Job {job_id}")
    status = API_STATUS.get(status, status)
    raise Problem(409, "job-ended", f"Job {job_id} has already ended ({status}); nothing to cancel.",
                  extra={"job_status": status})


@router.post(
    "/jobs/{job_id}/retry", status_code=202, summary="Requeue a failed or canceled job",
    responses={202: {"model": JobStatusChange}, **problems(404, 409), **PROBLEMS},
)
async def retry_job(job_id: JobId, store: StoreDep, principal: SubmitPrincipal) -> Response:
    result, status = await store.requeue(job_id, principal.tenant)
    if result == "queued":  # (status: queued, or deferred again while dependencies of it are pending)
        return JSONResponse({"id": job_id, "status": API_STATUS.get(status, status) or "queued"}, status_code=202,
                            headers={"Location": f"/v1/jobs/{job_id}"})
    if result == "missing":
        raise not_found(f"Job {job_id}")
    status = API_STATUS.get(status, status)
    raise Problem(409, "not-retryable", f"Only failed or canceled jobs can be retried; job {job_id} is {status}.",
                  extra={"job_status": status})
