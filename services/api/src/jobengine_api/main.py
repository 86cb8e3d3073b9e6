"""The application factory: routes, error handlers, middleware, and the Redis client's lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from jobengine import metrics, tracing
from jobengine.catalog import Catalog, declared_queues, discover, get_catalog
from jobengine.redis_conn import TRANSIENT_ERRORS, async_client
from jobengine.schedules import declared
from jobengine.schedules.store import ScheduleStore
from jobengine.settings import Settings, get_settings

from . import bodies, docs_assets, problems
from .apikey import SCOPES
from .auth import AuthMiddleware, keyring_from_settings
from .deps import ApiContext
from .guard import MemoryGuard
from .hotroute import HotRoute, check_route
from .keyring import KeyRefresher
from .limits import Limits
from .middleware import BodyLimitMiddleware, MetricsMiddleware
from .models import Submissions
from .responses import JSONResponse
from .operations import OperationRunner, Operations
from .pauses import PausedQueues
from .events import EventHub
from .routes import events, health, job_types, jobs, keys, queues, schedules, webhooks, workers
from .routes import operations as operations_routes
from .routes import flows as flows_routes
from .scheduling import Schedules
from .serving import MetricsServer
from .store import JobStore
from .waiter import DoneWaiter
from .webhooks.delivery import Deliveries
from .webhooks.store import WebhookStore

log = logging.getLogger(__name__)

DESCRIPTION = """Submit typed background jobs and follow them to their result.

Errors are `application/problem+json` (RFC 9457). Submissions accept an `Idempotency-Key` header.
Job types and their payload schemas: `GET /v1/job-types`.
"""


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> FastAPI:
    if settings is None:
        settings = get_settings()
        catalog = catalog or get_catalog()
    elif catalog is None:
        catalog = discover(settings.job_type_modules)
    submissions = Submissions.build(catalog)
    limits = Limits.build(settings, catalog)
    keyring = keyring_from_settings(settings)  # None: auth off (development); exits on a bad key setup
    queue_names = declared_queues(catalog, settings)
    metrics.init_api_series((t.queue, t.name) for t in (catalog[name] for name in catalog.names()))
    # declared schedules are read (and refused when invalid) before the process serves anything
    try:
        declared_specs = declared.load(settings.schedules_file) if settings.schedules_file else None
    except declared.DeclaredError as exc:
        raise SystemExit(f"invalid JOBENGINE_SCHEDULES_FILE: {exc}") from None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = async_client(settings)
        store = JobStore(client, settings)
        waiter = DoneWaiter(client)
        guard = MemoryGuard(client, settings.redis_memory_limit_ratio, settings.redis_memory_check_seconds)
        schedules_ = Schedules(settings, catalog, submissions, queue_names,
                               ScheduleStore(client, runs_kept=settings.schedule_runs_kept))
        paused = PausedQueues(store, queue_names, settings.paused_refresh_seconds)
        runner = OperationRunner(client, store.scripts.bulk, settings, settings.operations_poll_seconds)
        app.state.events = EventHub(client, settings.redis_socket_timeout, settings.events_resume_seconds)
        app.state.webhooks = WebhookStore(client, settings.webhooks_secret_grace_seconds)
        deliveries = app.state.deliveries = Deliveries(client, settings, app.state.webhooks) \
            if settings.webhooks else None
        ctx = app.state.ctx = ApiContext(settings, catalog, submissions, store, waiter, limits, guard, queue_names,
                                         schedules=schedules_, paused=paused, operations=Operations(client, runner))
        metrics_server = None
        if settings.api_metrics_port:
            metrics_server = MetricsServer(settings.metrics_host, settings.api_metrics_port,
                                           lambda: health.refresh_gauges(ctx),
                                           settings.http_header_timeout_seconds, settings.http_body_timeout_seconds)
            await metrics_server.start()
        console_key = None
        if settings.console:  # the signer: the configured secret, or the one every process shares in Redis
            from .console.sessions import Sessions

            sessions = app.state.console_sessions = Sessions(None, keyring, settings.console_session_seconds)
            console_key = asyncio.create_task(sessions.load(settings.console_secret, client))
        refresher = None
        if keyring is not None:  # the key file and the revocation set in Redis, re-read in the background
            refresher = KeyRefresher(keyring, settings.api_keys_file, client, settings.auth_refresh_seconds)
        try:
            await store.warm_up()
            await schedules_.store.warm_up()
            if refresher is not None:
                await refresher.refresh()
        except TRANSIENT_ERRORS as exc:  # start anyway: /readyz reports it, requests get 503 until it is back
            log.warning("redis not reachable at start", extra={"error": repr(exc)})
        if declared_specs is not None:
            await upsert_declared(schedules_, declared_specs)
        if refresher is not None:
            refresher.start()
        guard.start()
        firing = schedules_.loop(held_back=lambda: guard.over) if settings.scheduler else None
        if firing is not None:  # after the warm-up: every API process fires, each tick once (docs/guarantees.md)
            firing.start()
        paused.start()
        runner.start()
        if deliveries is not None:
            deliveries.start()
        gc.freeze()  # start-up objects live forever: keep them out of every collection
        log.info("api started", extra={"job_types": catalog.names(), "port": settings.api_port})
        try:
            yield
        finally:
            if console_key is not None:
                console_key.cancel()
            if firing is not None:
                await firing.stop()
            if metrics_server is not None:
                await metrics_server.stop()
            if refresher is not None:
                await refresher.stop()
            await app.state.events.close()
            if deliveries is not None:
                await deliveries.stop()
            await runner.stop()
            await paused.stop()
            await guard.stop()
            await waiter.close()
            await store.aclose()
            await client.aclose()

    app = FastAPI(title="jobengine", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # docs_assets.py serves them with local assets
                  default_response_class=JSONResponse,
                  redirect_slashes=False,  # a redirect would echo the Host header; an unknown path is a 404 problem
                  # FastAPI's native OTel: the request span only. Our Prometheus middleware owns HTTP
                  # metrics, our JSON logs own errors, and probes and scrapes get no spans.
                  telemetry={"metrics": False, "logs": False, "operation_spans": False,
                             "exclude": lambda scope: scope.get("path") in tracing.UNTRACED_PATHS})
    app.state.settings = settings
    app.state.keyring = keyring  # None: auth off (routes/keys.py revokes in it at once)
    problems.install(app)
    for router in (jobs.router, flows_routes.router, events.router, webhooks.router, job_types.router, queues.router,
                   workers.router, operations_routes.router, schedules.router, keys.router, health.router):
        app.include_router(router)
    docs_assets.install(app)
    if settings.console:
        from . import console

        console.install(app)
    # innermost: POST /v1/jobs past FastAPI's router (see hotroute.py)
    check_route(jobs.submit_route(), app)  # fail here, at start-up, not at the first request
    app.add_middleware(HotRoute, fastapi_app=app, route=jobs.submit_route())
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuthMiddleware, keyring=keyring)  # outside the body limit: no key, no body read
    app.add_middleware(MetricsMiddleware)  # added last: outermost, so it also times 413s
    if tracing.enabled():  # a SERVER span per request, continuing an incoming traceparent
        app.add_middleware(tracing.TracingMiddleware)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(submissions.openapi_components(settings.max_batch_size))
            components.update(schedules.openapi_components(catalog.names()))
            components.update(bodies.openapi_components())
            components.update(flows_routes.openapi_components(components))
            add_security(schema)
            fix_media_types(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def upsert_declared(service: Schedules, specs: list[declared.DeclaredSpec]) -> None:
    """Write JOBENGINE_SCHEDULES_FILE's schedules. Redis away: retried a few times, then the process starts
    without (the next start, or another process, writes them); an invalid one (a job type this catalog lacks)
    stops the start, as a bad setting does."""
    import asyncio

    for attempt in range(10):
        try:
            counts = await service.upsert_declared(specs)
            log.info("declared schedules written", extra={f"schedules_{k}": v for k, v in counts.items()})
            return
        except TRANSIENT_ERRORS as exc:
            log.warning("declared schedules not written yet", extra={"error": repr(exc), "attempt": attempt})
            await asyncio.sleep(1)
        except problems.Problem as problem:
            raise SystemExit(f"invalid schedule in {service.settings.schedules_file}: {problem.detail} "
                             f"{problem.errors or ''}") from None
    log.error("declared schedules not written: Redis unreachable")


def add_security(schema: dict[str, Any]) -> None:
    """Document the API keys: two equivalent schemes, required by every /v1 operation."""
    schema["components"]["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "<key_id>.<secret>",
                       "description": f"An API key. Scopes: {', '.join(SCOPES)} (see each operation)."},
        "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "The same API key in a header of its own."},
    }
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/v1"):
            for operation in operations.values():
                operation["security"] = [{"bearerAuth": []}, {"apiKeyHeader": []}]


def fix_media_types(schema: dict[str, Any]) -> None:
    """FastAPI does not take our orjson JSONResponse for JSON: it documents success bodies as
    `{"type": "string"}` (beside the model's $ref) and error bodies as application/json. Say what
    the API really sends: JSON objects, and application/problem+json for every 4xx and 5xx."""
    problem = {"$ref": "#/components/schemas/ProblemDetail"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if not content:
                    continue
                if status[:1] in ("4", "5"):
                    response["content"] = {"application/problem+json": {"schema": problem}}
                    continue
                body = content.get("application/json", {}).get("schema")
                if body is None:
                    continue
                if "$ref" in body:
                    body.pop("type", None)
                elif body == {"type": "string"}:
                    content["application/json"]["schema"] = {"type": "object"}
