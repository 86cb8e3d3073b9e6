"""JSON request bodies of the operator endpoints, read with the submit endpoints' decoder (jsonbody.py): one
rule for every body (415 unless declared JSON, 422 naming the field for malformed or invalid JSON), where
FastAPI's own body parsing would answer 400 without a field for a body that is not UTF-8. The models reach
/docs through openapi_body() and main.py's components."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from .jsonbody import decode, is_json, unsupported_media_type
from .models import OperationRequest, PauseRequest, WebhookCreate, WebhookUpdate
from .problems import invalid, validation_errors

M = TypeVar("M", bound=BaseModel)
BODY_MODELS: tuple[type[BaseModel], ...] = (OperationRequest, PauseRequest, WebhookCreate, WebhookUpdate)


async def json_model(request: Request, model: type[M], *, optional: bool = False) -> M | None:
    """The body validated by `model`; None for an empty body when `optional`."""
    body = await request.body()
    if optional and not body.strip():
        return None
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        raise unsupported_media_type(content_type)
    doc = decode(body)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise invalid(validation_errors(exc.errors(include_url=False))) from None


def openapi_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def openapi_components() -> dict[str, Any]:
    """The body models' schemas (and the models they use), for components/schemas."""
    _, top = models_json_schema([(m, "validation") for m in BODY_MODELS],
                                ref_template="#/components/schemas/{model}")
    return top.get("$defs", {})  # type: ignore[no-any-return]
