"""Probes (no /v1 prefix: infrastructure, not API), and the queue gauges a /metrics scrape refreshes
(served on the metrics port, serving.py)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from starlette.responses import Response

from jobengine import keys, metrics

from ..deps import ApiContext, ContextDep
from ..models import ProblemDetail
from ..problems import unavailable
from ..responses import JSONResponse
from .queues import known_queues

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)
SCRAPE_REDIS_TIMEOUT = 2.0  # a hung Redis must not hang the scrape


@router.get("/healthz", summary="Liveness: the process serves requests (Redis not checked)")
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness: Redis answers",
            responses={503: {"model": ProblemDetail, "description": "Redis is unreachable."}})
async def readyz(ctx: ContextDep) -> Response:
    try:
        async with asyncio.timeout(SCRAPE_REDIS_TIMEOUT):
            await ctx.store.ping()
    except Exception as exc:  # any failure means not ready; never a 500
        log.warning("not ready", extra={"error": repr(exc)})
        raise unavailable() from None
    return JSONResponse({"status": "ready"})


async def refresh_gauges(ctx: ApiContext) -> None:
    """What a /metrics scrape reads from Redis: the queue gauges, then the schedules by state (SCARD of one set
    per state: cheap with 100,000 schedules)."""
    await refresh_queue_gauges(ctx)
    if ctx.schedules is None:
        return
    try:
        async with asyncio.timeout(SCRAPE_REDIS_TIMEOUT):
            await ctx.schedules.refresh_gauges()
    except Exception as exc:
        log.warning("schedule gauges not refreshed", extra={"error": repr(exc)})


async def refresh_queue_gauges(ctx: ApiContext) -> None:
    """Read the declared queues from Redis for this scrape; on failure keep the scrape and report redis_up 0."""
    try:
        async with asyncio.timeout(SCRAPE_REDIS_TIMEOUT):
            stats = await ctx.store.queue_stats(known_queues(ctx))
    except Exception as exc:
        log.warning("queue gauges not refreshed", extra={"error": repr(exc)})
        metrics.REDIS_UP.set(0)
        return
    metrics.REDIS_UP.set(1)
    for s in stats:
        name = s["name"]
        metrics.QUEUE_DEPTH.labels(name).set(s["depth"])
        metrics.QUEUE_IN_FLIGHT.labels(name).set(s["in_flight"])
        metrics.QUEUE_SCHEDULED.labels(name).set(s["scheduled"])
        metrics.QUEUE_FAILED.labels(name).set(s["failed"])
        metrics.QUEUE_WORKERS.labels(name).set(s["workers"])
        metrics.QUEUE_PAUSED.labels(name).set(1 if s["paused"] else 0)
        metrics.QUEUE_DEFERRED.labels(name).set(s["deferred"])
    try:
        async with asyncio.timeout(SCRAPE_REDIS_TIMEOUT):
            counts = await ctx.store.redis.hgetall(keys.FLOW_OUTCOMES)
        metrics.set_flows_total({k.decode(): float(v) for k, v in counts.items() if k.decode() in metrics.FLOW_OUTCOMES})
    except Exception as exc:
        log.warning("flow counts not refreshed", extra={"error": repr(exc)})
