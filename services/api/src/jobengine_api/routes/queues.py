"""/v1/queues: depth, in-flight, registries, live workers and pause state per queue, in one Redis round trip;
pause and resume a queue (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from jobengine.settings import QUEUE_NAME_PATTERN

from ..bodies import json_model, openapi_body
from ..deps import AdminPrincipal, ApiContext, ContextDep
from ..models import PauseRequest, QueueList, QueuePause
from ..problems import not_found
from ..responses import JSONResponse
from .jobs import PROBLEMS, problems

router = APIRouter(prefix="/v1", tags=["queues"])

QueueName = Annotated[str, Path(pattern=QUEUE_NAME_PATTERN, description="A declared queue.")]


def known_queues(ctx: ApiContext) -> list[str]:
    """The declared queues (catalog.declared_queues): only these are read, whatever rq:queues holds."""
    return sorted(ctx.queues)


def _declared(ctx: ApiContext, name: str) -> str:
    if name not in ctx.queues:
        raise not_found(f"Queue {name!r} (declared: {', '.join(sorted(ctx.queues))})")
    return name


@router.get("/queues", summary="Queue statistics (all tenants: needs the admin scope)",
            responses={200: {"model": QueueList}, **PROBLEMS})
async def list_queues(ctx: ContextDep, principal: AdminPrincipal) -> Response:
    return JSONResponse({"items": await ctx.store.queue_stats(known_queues(ctx))})


@router.post("/queues/{name}:pause", summary="Pause a queue: its jobs are not claimed until it is resumed",
             description="Running jobs finish; waiting and newly submitted jobs wait (or, with refuse_submits, "
                         "submits get 409 queue-paused). The autoscaler counts the queue's waiting jobs as zero. "
                         "Pausing a paused queue updates refuse_submits and keeps it paused.",
             responses={200: {"model": QueuePause}, **problems(404, 415), **PROBLEMS},
             openapi_extra=openapi_body(PauseRequest, required=False))
async def pause_queue(name: QueueName, request: Request, ctx: ContextDep, principal: AdminPrincipal) -> Response:
    body = await json_model(request, PauseRequest, optional=True)
    refuse = bool(body and body.refuse_submits)
    view = await ctx.store.pause(_declared(ctx, name), refuse)
    if ctx.paused is not None:
        ctx.paused.set(name, refuse)
    return JSONResponse(view)


@router.post("/queues/{name}:resume", summary="Resume a paused queue",
             responses={200: {"model": QueuePause}, **problems(404), **PROBLEMS})
async def resume_queue(name: QueueName, ctx: ContextDep, principal: AdminPrincipal) -> Response:
    view = await ctx.store.resume(_declared(ctx, name))
    if ctx.paused is not None:
        ctx.paused.set(name, False)
    return JSONResponse(view)
