"""/console: the web console's pages and actions, server-rendered with Jinja2.

Reads call the same store and service functions as the /v1 routes with the signed-in key's principal (its
tenant, its scopes); actions call the /v1 route functions themselves after the same scope check the route's
dependency makes, so the console can do exactly what its key can do through the API, no more. Every action is
a POST form carrying the session's CSRF token; a page shows only the actions its key's scopes allow.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
from fastapi import APIRouter, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from jobengine import keys
from jobengine.jobdata import JOB_ID_PATTERN
from jobengine.redis_conn import TRANSIENT_ERRORS

from ..apikey import Principal
from ..auth import DEV_PRINCIPAL
from ..deps import ApiContext
from ..models import OperationFilter, OperationRequest
from ..problems import Problem
from ..store import decode_cursor
from ..routes import jobs as jobs_routes
from ..routes import schedules as schedules_routes
from ..routes.queues import known_queues
from .sessions import COOKIE, LOGIN_COOKIE, LOGIN_COOKIE_SECONDS, Session, Sessions, cookie_secure

router = APIRouter(prefix="/console", include_in_schema=False)

STATUSES = ("queued", "scheduled", "started", "finished", "failed", "canceled")
PAGE_SIZE = 25
MAX_FORM_BYTES = 8192
DONE_MESSAGES = {
    "retried": "Job requeued.", "canceled": "Cancel requested.", "paused": "Queue paused.",
    "resumed": "Queue resumed.", "bulk": "Bulk retry started.", "schedule-paused": "Schedule paused.",
    "schedule-resumed": "Schedule resumed.", "triggered": "Schedule triggered: its job is queued.",
}


def _ts(value: Any) -> str:
    """A time as the pages show it (UTC, to the second); the script formats the JSON API's times alike."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


templates = Environment(loader=FileSystemLoader(str(files(__package__) / "templates")),
                        autoescape=select_autoescape(default=True, default_for_string=True), auto_reload=False)
templates.filters["ts"] = _ts
templates.filters["pretty"] = _pretty


# --- plumbing: session, CSRF, forms, rendering ---


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    if not sessions.ready:  # its signing key is not read from Redis yet
        raise Problem(503, "unavailable", "The console is starting: Redis is not reachable yet.",
                      headers={"Retry-After": "1"})
    return sessions


def _session(request: Request) -> Session | None:
    return _sessions(request).check(request.cookies.get(COOKIE))


def _to_login(request: Request) -> RedirectResponse:
    return RedirectResponse("/console/login", status_code=303)


def render(request: Request, name: str, session: Session | None, status: int = 200, **values: Any) -> HTMLResponse:
    principal = session.principal if session else None
    page = templates.get_template(name).render(
        request_path=request.url.path, principal=principal, auth_on=_sessions(request).keyring is not None,
        can=(lambda scope: principal is not None and principal.has(scope)),
        csrf=_sessions(request).csrf_token(session) if session else "",
        done=DONE_MESSAGES.get(request.query_params.get("done", "")), **values)
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def _error(request: Request, session: Session | None, status: int, title: str, detail: str) -> HTMLResponse:
    return render(request, "error.html", session, status=status, title=title, detail=detail)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form (the console's only kind), bounded; the first value of each field."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Problem(413, "too-large", "The form is too large.")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _same_origin(request: Request) -> bool:
    """Origin (sent by browsers on every POST) must be this site: a second line behind SameSite and the token."""
    origin = request.headers.get("origin")
    if origin is None:  # (not a browser's POST: the CSRF token still decides)
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def _action(request: Request, scope: str | None) -> tuple[Session, dict[str, str]] | Response:
    """The session and form of an action, or the refusal: no session (redirect to sign-in), a missing or wrong
    CSRF token or a foreign Origin (403), a key without `scope` (403, as the API answers)."""
    session = _session(request)
    if session is None:
        return _to_login(request)
    form = await _form(request)
    if not _same_origin(request) or not _sessions(request).csrf_ok(session, form.get("csrf")):
        return _error(request, session, 403, "Forbidden", "The form's CSRF token is missing or wrong: reload the "
                      "page and try again.")
    if scope is not None and not session.principal.has(scope):
        return _error(request, session, 403, "Forbidden", f"This API key lacks the {scope!r} scope.")
    return session, form


def _back(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': done})}", status_code=303)


async def _run(request: Request, session: Session, call: Any, path: str, done: str) -> Response:
    """Run an API route function; its problem (404, 409, 429, ...) is shown as the API states it."""
    try:
        await call
    except Problem as problem:
        return _error(request, session, problem.status, problem.title, problem.detail)
    return _back(path, done)


def redis_outage_page(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """While Redis is unreachable a console request gets a page saying so (503 + Retry-After), as the API's
    routes answer a problem document; the console serves again by itself when Redis is back."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(request, *args, **kwargs)
        except TRANSIENT_ERRORS:
            page = _error(request, None, 503, "Unavailable", "Redis is not reachable right now; this page will "
                          "work again as soon as it is back. Try again in a moment.")
            page.headers["Retry-After"] = "1"
            return page

    return wrapper


# --- sign-in ---


@router.get("/login")
@redis_outage_page
async def login_page(request: Request) -> Response:
    if _session(request) is not None:
        return RedirectResponse("/console", status_code=303)
    cookie, token = _sessions(request).login_token()
    response = render(request, "login.html", None, login_token=token, error=None)
    _set_cookie(request, response, LOGIN_COOKIE, cookie, LOGIN_COOKIE_SECONDS, "/console/login")
    return response


@router.post("/login")
@redis_outage_page
async def login(request: Request) -> Response:
    sessions = _sessions(request)
    form = await _form(request)
    if not _same_origin(request) or not sessions.login_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
        return _error(request, None, 403, "Forbidden", "The sign-in form expired or came from another site: "
                      "open the sign-in page again.")
    principal: Principal | None = DEV_PRINCIPAL
    if sessions.keyring is not None:
        principal = sessions.keyring.authenticate(form.get("api_key", "").strip())
    if principal is None:
        cookie, token = sessions.login_token()
        response = render(request, "login.html", None, status=401, login_token=token,
                          error="The API key is not valid (unknown, wrong or revoked).")
        _set_cookie(request, response, LOGIN_COOKIE, cookie, LOGIN_COOKIE_SECONDS, "/console/login")
        return response
    response = RedirectResponse("/console", status_code=303)
    _set_cookie(request, response, COOKIE, sessions.issue(principal), sessions.lifetime, "/")
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/logout")
@redis_outage_page
async def logout(request: Request) -> Response:
    checked = await _action(request, None) if _session(request) else None
    if isinstance(checked, Response):
        return checked
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int, path: str) -> None:
    # Path "/" for the session: the page's script reads the JSON API under /v1 with it (GET only)
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="strict",
                        secure=cookie_secure(request.headers.get("host", ""), request.url.scheme,
                                             _ctx(request).settings.env == "development"))


# --- pages ---


@router.get("")
@redis_outage_page
async def overview(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _to_login(request)
    ctx, principal = _ctx(request), session.principal
    queues = workers = None
    if principal.has("admin"):  # queue statistics and workers span every tenant: admin only, as in the API
        queues, workers = await asyncio.gather(ctx.store.queue_stats(known_queues(ctx)), ctx.store.workers())
    counts: dict[str, int] = {}
    if principal.has("read"):
        recent, _ = await ctx.store.list(limit=200, cursor=None, status=None, job_type=None, queue=None,
                                         tenant=principal.tenant)
        for job in recent:
            counts[job["status"]] = counts.get(job["status"], 0) + 1
    return render(request, "overview.html", session, title="Overview", queues=queues, workers=workers,
                  counts=counts, statuses=STATUSES)


@router.get("/jobs")
@redis_outage_page
async def jobs_page(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _to_login(request)
    if not session.principal.has("read"):
        return _error(request, session, 403, "Forbidden", "This API key lacks the 'read' scope.")
    ctx, q = _ctx(request), request.query_params
    wanted = q.get("id", "").strip()
    if wanted:
        if JOB_ID_PATTERN.match(wanted):
            return RedirectResponse(f"/console/jobs/{wanted}", status_code=303)
        return _error(request, session, 422, "Not a job id", "A job id is 32 hexadecimal characters.")
    filters = {"status": q.get("status") or None, "type": q.get("type") or None, "queue": q.get("queue") or None}
    problems = []
    if filters["status"] and filters["status"] not in STATUSES:
        problems.append("status")
    if filters["queue"] and filters["queue"] not in ctx.queues:
        problems.append("queue")
    if filters["type"] and len(filters["type"]) > 200:  # the API's own bound
        problems.append("type")
    cursor = q.get("cursor") or None
    try:
        position = decode_cursor(cursor) if cursor else None
    except ValueError:
        problems.append("cursor")
    if problems:
        return _error(request, session, 422, "Invalid filter", f"Not a valid value: {', '.join(problems)}.")
    items, next_cursor = await ctx.store.list(limit=PAGE_SIZE, cursor=position, status=filters["status"],
                                              job_type=filters["type"], queue=filters["queue"],
                                              tenant=session.principal.tenant)
    query = {k: v for k, v in filters.items() if v}
    next_url = f"/console/jobs?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None
    return render(request, "jobs.html", session, title="Jobs", items=items, filters=filters, statuses=STATUSES,
                  queues=sorted(ctx.queues), types=ctx.catalog.names(), next_url=next_url, paged=bool(cursor),
                  first_url=f"/console/jobs?{urlencode(query)}",
                  live_query=urlencode({**query, "limit": PAGE_SIZE}))


@router.get("/jobs/{job_id}")
@redis_outage_page
async def job_page(request: Request, job_id: str) -> Response:
    session = _session(request)
    if session is None:
        return _to_login(request)
    if not session.principal.has("read"):
        return _error(request, session, 403, "Forbidden", "This API key lacks the 'read' scope.")
    ctx = _ctx(request)
    job = await ctx.store.get(job_id, session.principal.tenant) if JOB_ID_PATTERN.match(job_id) else None
    if job is None:
        return _error(request, session, 404, "Not found", f"No job {job_id} for this tenant (it may have expired).")
    return render(request, "job.html", session, title=f"Job {job_id}", job=job,
                  trace_id=await _trace_id(ctx, job_id))


async def _trace_id(ctx: ApiContext, job_id: str) -> str | None:
    """The W3C trace id the API stored in the job's meta at submit (tracing on), for finding it in the traces."""
    meta = await ctx.store.redis.hget(keys.job(job_id), "meta")
    try:
        parent = orjson.loads(meta).get("traceparent") if meta else None
    except (orjson.JSONDecodeError, AttributeError):
        return None
    parts = parent.split("-") if isinstance(parent, str) else []
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@router.get("/failed")
@redis_outage_page
async def failed_page(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _to_login(request)
    if not session.principal.has("read"):
        return _error(request, session, 403, "Forbidden", "This API key lacks the 'read' scope.")
    ctx, tenant = _ctx(request), session.principal.tenant
    queue = request.query_params.get("queue") or None
    job_type = request.query_params.get("type") or None
    if queue is not None and queue not in ctx.queues:
        return _error(request, session, 422, "Invalid filter", "Not a valid value: queue.")
    items, next_cursor = await ctx.store.list(limit=PAGE_SIZE, cursor=None, status="failed", job_type=job_type,
                                              queue=queue, tenant=tenant)
    details = await asyncio.gather(*(ctx.store.get(job["id"], tenant) for job in items))
    for job, detail in zip(items, details, strict=True):
        error = (detail or {}).get("error") or ""
        job["error_line"] = error.strip().splitlines()[-1] if error.strip() else ""
    query = {k: v for k, v in {"queue": queue, "type": job_type}.items() if v}
    return render(request, "failed.html", session, title="Failed jobs", items=items, more=bool(next_cursor),
                  queue=queue, job_type=job_type, queues=sorted(ctx.queues), types=ctx.catalog.names(),
                  live_query=urlencode({**query, "status": "failed", "limit": PAGE_SIZE}))


@router.get("/workers")
@redis_outage_page
async def workers_page(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _to_login(request)
    if not session.principal.has("admin"):
        return _error(request, session, 403, "Forbidden", "Workers serve every tenant: the 'admin' scope is needed.")
    return render(request, "workers.html", session, title="Workers", workers=await _ctx(request).store.workers(),
                  now=time.time())


@router.get("/schedules")
@redis_outage_page
async def schedules_page(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _to_login(request)
    if not session.principal.has("read"):
        return _error(request, session, 403, "Forbidden", "This API key lacks the 'read' scope.")
    response = await schedules_routes.list_schedules(_ctx(request), session.principal, limit=100, cursor=None)
    items = orjson.loads(bytes(response.body))["items"]
    return render(request, "schedules.html", session, title="Schedules", items=items)


# --- actions: each the /v1 route function, behind the scope its dependency demands ---


@router.post("/jobs/{job_id}/retry")
@redis_outage_page
async def retry_job(request: Request, job_id: str) -> Response:
    checked = await _action(request, "submit")
    if isinstance(checked, Response):
        return checked
    session, _ = checked
    if not JOB_ID_PATTERN.match(job_id):
        return _error(request, session, 404, "Not found", f"No job {job_id}.")
    call = jobs_routes.retry_job(job_id, _ctx(request).store, session.principal)
    return await _run(request, session, call, f"/console/jobs/{job_id}", "retried")


@router.post("/jobs/{job_id}/cancel")
@redis_outage_page
async def cancel_job(request: Request, job_id: str) -> Response:
    checked = await _action(request, "submit")
    if isinstance(checked, Response):
        return checked
    session, _ = checked
    if not JOB_ID_PATTERN.match(job_id):
        return _error(request, session, 404, "Not found", f"No job {job_id}.")
    call = jobs_routes.cancel_job(job_id, _ctx(request).store, session.principal)
    return await _run(request, session, call, f"/console/jobs/{job_id}", "canceled")


@router.post("/failed/retry")
@redis_outage_page
async def bulk_retry(request: Request) -> Response:
    """POST /v1/operations {"action": "retry"} for the failed jobs of this key's tenant (and the page's filters)."""
    checked = await _action(request, "admin")
    if isinstance(checked, Response):
        return checked
    session, form = checked
    ctx = _ctx(request)
    queue, job_type = form.get("queue") or None, form.get("type") or None
    if queue is not None and queue not in ctx.queues:
        return _error(request, session, 422, "Invalid filter", "Not a valid value: queue.")
    # the tenant filter keeps the console's bulk retry to what its pages show (an admin key's own tenant);
    # with authentication off (development) every job is one tenant's
    tenant = session.principal.tenant if ctx.settings.auth_enabled else None
    op = OperationRequest(action="retry", filter=OperationFilter(queue=queue, type=job_type, tenant=tenant))
    if ctx.operations is None:
        return _error(request, session, 503, "Unavailable", "Bulk operations are not running in this process.")
    try:
        view = await ctx.operations.create(op, sorted(ctx.queues))
    except Problem as problem:
        return _error(request, session, problem.status, problem.title, problem.detail)
    return RedirectResponse(f"/console/failed?{urlencode({'done': 'bulk', 'operation': view['id']})}",
                            status_code=303)


@router.post("/queues/{name}/{verb}")
@redis_outage_page
async def queue_action(request: Request, name: str, verb: str) -> Response:
    checked = await _action(request, "admin")
    if isinstance(checked, Response):
        return checked
    session, _ = checked
    ctx = _ctx(request)
    if verb not in ("pause", "resume") or name not in ctx.queues:
        return _error(request, session, 404, "Not found", f"No queue {name!r} or action {verb!r}.")
    if verb == "pause":
        await ctx.store.pause(name, False)  # as POST /v1/queues/{name}:pause without a body
    else:
        await ctx.store.resume(name)
    if ctx.paused is not None:
        ctx.paused.set(name, False)
    return _back("/console", "paused" if verb == "pause" else "resumed")


@router.post("/schedules/{name}/{verb}")
@redis_outage_page
async def schedule_action(request: Request, name: str, verb: str) -> Response:
    checked = await _action(request, "submit")
    if isinstance(checked, Response):
        return checked
    session, _ = checked
    ctx, principal = _ctx(request), session.principal
    functions = {"pause": (schedules_routes.pause_schedule, "schedule-paused"),
                 "resume": (schedules_routes.resume_schedule, "schedule-resumed"),
                 "trigger": (schedules_routes.trigger_schedule, "triggered")}
    if verb not in functions:
        return _error(request, session, 404, "Not found", f"No action {verb!r}.")
    function, done = functions[verb]
    return await _run(request, session, function(name, ctx, principal), "/console/schedules", done)

