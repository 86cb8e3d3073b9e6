"""/v1/workers: the live workers (admin), read from RQ's worker hashes that each worker's heartbeat renews."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ..deps import AdminPrincipal, ContextDep
from ..models import WorkerList
from ..responses import JSONResponse
from .jobs import PROBLEMS

router = APIRouter(prefix="/v1", tags=["workers"])


@router.get("/workers", summary="Live workers: pool, queues, current job, heartbeat age, jobs ended, memory",
            description="A worker that died disappears once its key expires: within its heartbeat TTL "
                        "(JOBENGINE_ABANDONED_AFTER_SECONDS + 5 s). Figures are as of its last heartbeat "
                        "(JOBENGINE_HEARTBEAT_SECONDS).",
            responses={200: {"model": WorkerList}, **PROBLEMS})
async def list_workers(ctx: ContextDep, principal: AdminPrincipal) -> Response:
    return JSONResponse({"items": await ctx.store.workers()})
