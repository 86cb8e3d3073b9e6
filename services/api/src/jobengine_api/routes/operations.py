"""/v1/operations: bulk actions by filter (admin), as resources with an id, a state, progress and counts,
run in the background (operations.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from ..bodies import json_model, openapi_body
from ..deps import AdminPrincipal, ApiContext, ContextDep
from ..models import Operation, OperationList, OperationRequest
from ..operations import Operations
from ..problems import Problem, invalid, not_found
from ..responses import JSONResponse
from .jobs import PROBLEMS, problems, unknown_queue

router = APIRouter(prefix="/v1", tags=["operations"])

OperationId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Operation id, as returned on create.")]


def _operations(ctx: ApiContext) -> Operations:
    if ctx.operations is None:  # (an app built without its lifespan)
        raise Problem(503, "unavailable", "Bulk operations are not running in this process.",
                      headers={"Retry-After": "1"})
    return ctx.operations


@router.post(
    "/operations", status_code=202, summary="Start a bulk operation: retry, cancel or delete the jobs of a filter",
    description="retry: failed jobs go back to their queue with a fresh retry budget (as POST "
                "/v1/jobs/{id}/retry); cancel: waiting jobs (queued or scheduled) end canceled (as DELETE "
                "/v1/jobs/{id}); delete: ended jobs (finished, failed, canceled; `filter.status` narrows it) are "
                "removed. Only jobs that ended (retry, delete) or were submitted (cancel) before the operation "
                "began are touched. It runs in the background in bounded steps; follow it with GET "
                "/v1/operations/{id}.",
    responses={202: {"model": Operation, "description": "Accepted; Location names the operation."},
               **problems(415), **PROBLEMS},
    openapi_extra=openapi_body(OperationRequest),
)
async def create_operation(raw: Request, ctx: ContextDep, principal: AdminPrincipal) -> Response:
    request = await json_model(raw, OperationRequest)
    assert request is not None
    f = request.filter
    if f.queue is not None and f.queue not in ctx.queues:
        raise unknown_queue(ctx, f.queue)
    if f.status is not None and request.action != "delete":
        raise invalid([{"field": "filter.status", "message": "only with action delete (retry takes failed jobs, "
                                                              "cancel waiting ones)"}])
    if f.created_after and f.created_before and f.created_after >= f.created_before:
        raise invalid([{"field": "filter.created_before", "message": "must be after filter.created_after"}])
    view = await _operations(ctx).create(request, sorted(ctx.queues))
    return JSONResponse(view, status_code=202, headers={"Location": f"/v1/operations/{view['id']}"})


@router.get("/operations", summary="The newest bulk operations (100 at most)",
            responses={200: {"model": OperationList}, **PROBLEMS})
async def list_operations(ctx: ContextDep, principal: AdminPrincipal) -> Response:
    return JSONResponse({"items": await _operations(ctx).list()})


@router.get("/operations/{op_id}", summary="A bulk operation: state, progress and counts",
            responses={200: {"model": Operation}, **problems(404), **PROBLEMS})
async def get_operation(op_id: OperationId, ctx: ContextDep, principal: AdminPrincipal) -> Response:
    view = await _operations(ctx).get(op_id)
    if view is None:
        raise not_found(f"Operation {op_id}")
    return JSONResponse(view)


@router.post("/operations/{op_id}:cancel", summary="Stop a bulk operation at its next step",
             description="Jobs it changed already stay changed; an ended operation is answered as it is.",
             responses={200: {"model": Operation}, **problems(404), **PROBLEMS})
async def cancel_operation(op_id: OperationId, ctx: ContextDep, principal: AdminPrincipal) -> Response:
    view = await _operations(ctx).cancel(op_id)
    if view is None:
        raise not_found(f"Operation {op_id}")
    return JSONResponse(view)
