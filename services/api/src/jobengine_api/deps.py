"""Typed dependency aliases. Everything a handler needs hangs off one context built by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from jobengine.catalog import Catalog
from jobengine.jobdata import JOB_ID_PATTERN
from jobengine.settings import Settings

from .apikey import Principal
from .auth import forbidden
from .guard import MemoryGuard
from .limits import Limits
from .models import Submissions
from .operations import Operations
from .pauses import PausedQueues
from .store import JobStore
from .waiter import DoneWaiter


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: Settings
    catalog: Catalog
    submissions: Submissions
    store: JobStore
    waiter: DoneWaiter
    limits: Limits
    guard: MemoryGuard | None = None  # None: no Redis memory guard
    queues: frozenset[str] = frozenset()  # the declared queues (catalog.declared_queues): no other is accepted
    schedules: Any = None  # scheduling.Schedules (None: a context built without them)
    paused: PausedQueues | None = None  # which queues refuse submits (pauses.py); None: never refused
    operations: Operations | None = None  # bulk operations (operations.py)


# async on purpose: FastAPI runs sync dependencies in a thread pool
async def get_context(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


async def get_store(request: Request) -> JobStore:
    return request.app.state.ctx.store  # type: ignore[no-any-return]


async def get_settings(request: Request) -> Settings:
    return request.app.state.ctx.settings  # type: ignore[no-any-return]


async def get_catalog(request: Request) -> Catalog:
    return request.app.state.ctx.catalog  # type: ignore[no-any-return]


def principal_of(request: Request) -> Principal:
    """The caller, set by AuthMiddleware before routing (DEV_PRINCIPAL when auth is off)."""
    return request.scope["state"]["principal"]  # type: ignore[no-any-return]


def authorize(request: Request, scope: str) -> Principal:
    """The caller if its key has `scope`, else 403. Plain function for the submit hot path."""
    principal: Principal = request.scope["state"]["principal"]
    if scope not in principal.scopes:
        raise forbidden(scope)
    return principal


async def get_principal(request: Request) -> Principal:
    return principal_of(request)


def _requires(scope: str):  # type: ignore[no-untyped-def]
    async def dependency(request: Request) -> Principal:
        return authorize(request, scope)

    dependency.__name__ = f"requires_{scope}"
    return dependency


PrincipalDep = Annotated[Principal, Depends(get_principal)]  # any authenticated caller
ReadPrincipal = Annotated[Principal, Depends(_requires("read"))]
SubmitPrincipal = Annotated[Principal, Depends(_requires("submit"))]
AdminPrincipal = Annotated[Principal, Depends(_requires("admin"))]
ContextDep = Annotated[ApiContext, Depends(get_context)]
StoreDep = Annotated[JobStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN.pattern, description="Job id, as returned on submit.")]
