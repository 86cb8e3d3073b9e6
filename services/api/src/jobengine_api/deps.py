"""Typed dependency aliases. Everything a handler needs hangs off one context built by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from jobengine.catalog import Catalog
from jobengine.jobdata import JOB_ID_PATTERN
from jobengine.settings import Settings

from .models import Submissions
from .store import JobStore
from .waiter import DoneWaiter


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: Settings
    catalog: Catalog
    submissions: Submissions
    store: JobStore
    waiter: DoneWaiter


# async on purpose: FastAPI runs sync dependencies in a thread pool
async def get_context(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


async def get_store(request: Request) -> JobStore:
    return request.app.state.ctx.store  # type: ignore[no-any-return]


async def get_settings(request: Request) -> Settings:
    return request.app.state.ctx.settings  # type: ignore[no-any-return]


async def get_catalog(request: Request) -> Catalog:
    return request.app.state.ctx.catalog  # type: ignore[no-any-return]


ContextDep = Annotated[ApiContext, Depends(get_context)]
StoreDep = Annotated[JobStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN.pattern, description="Job id, as returned on submit.")]
