"""/v1/queues: depth, in-flight, registries and live workers per queue, in one Redis round trip."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ..deps import AdminPrincipal, ApiContext, ContextDep
from ..models import QueueList
from ..responses import JSONResponse
from .jobs import PROBLEMS

router = APIRouter(prefix="/v1", tags=["queues"])


def known_queues(ctx: ApiContext) -> list[str]:
    """The declared queues (catalog.declared_queues): only these are read, whatever rq:queues holds."""
    return sorted(ctx.queues)


@router.get("/queues", summary="Queue statistics (all tenants: needs the admin scope)",
            responses={200: {"model": QueueList}, **PROBLEMS})
async def list_queues(ctx: ContextDep, principal: AdminPrincipal) -> Response:
    return JSONResponse({"items": await ctx.store.queue_stats(known_queues(ctx))})
