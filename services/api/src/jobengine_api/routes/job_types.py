"""/v1/job-types: what can be submitted, with JSON schemas (static: rendered once per process)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

import orjson
from fastapi import APIRouter, Path
from starlette.responses import Response

from jobengine.catalog import Catalog

from ..deps import CatalogDep, PrincipalDep
from ..models import JobTypeInfo, JobTypeList
from ..problems import not_found
from ..responses import JSONResponse
from .jobs import problems

router = APIRouter(prefix="/v1", tags=["job types"])


@lru_cache(maxsize=4)
def _rendered(catalog: Catalog) -> tuple[bytes, dict[str, bytes]]:
    schemas = [job_type.schema() for job_type in catalog]
    return orjson.dumps({"items": schemas}), {s["name"]: orjson.dumps(s) for s in schemas}


@router.get("/job-types", summary="List job types (any valid API key)",
            responses={200: {"model": JobTypeList}, **problems(401)})
async def list_job_types(catalog: CatalogDep, principal: PrincipalDep) -> Response:
    return Response(_rendered(catalog)[0], media_type=JSONResponse.media_type)


@router.get("/job-types/{name}", summary="Read a job type",
            responses={200: {"model": JobTypeInfo}, **problems(401, 404, 422)})
async def get_job_type(name: Annotated[str, Path(max_length=200)], catalog: CatalogDep,
                       principal: PrincipalDep) -> Response:
    body = _rendered(catalog)[1].get(name)
    if body is None:
        raise not_found(f"Job type {name!r}")
    return Response(body, media_type=JSONResponse.media_type)
