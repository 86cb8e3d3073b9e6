"""/v1/webhooks: a tenant's subscriptions (create, list, read, change, delete, rotate the secret), their delivery
log and redelivery, and the secret that signs the tenant's per-job callbacks (callback_url on submit).

Writes need the submit scope, reads the read scope; a tenant sees only its own subscriptions. A secret is
returned once, when made (creation, rotation)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from ..bodies import json_model, openapi_body
from ..deps import ContextDep, ReadPrincipal, SubmitPrincipal
from ..models import WebhookCreate, WebhookUpdate
from ..problems import invalid, not_found
from ..responses import JSONResponse
from ..webhooks import guard
from ..webhooks.store import WebhookStore, _iso
from .jobs import PROBLEMS, problems

router = APIRouter(prefix="/v1", tags=["webhooks"])

WebhookId = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{24}$", description="A subscription's id.")]
DeliveryId = Annotated[str, Path(pattern=r"^msg_[0-9a-f]{26}$", description="A delivery's id (its webhook-id).")]


def _store(request: Request) -> WebhookStore:
    return request.app.state.webhooks  # type: ignore[no-any-return]


def _check_url(ctx: Any, url: str) -> None:
    why = guard.check_url(url) or guard.literal_refusal(url, ctx.settings.webhooks_allow_private)
    if why:
        raise invalid([{"field": "url", "message": why}])


@router.post("/webhooks", summary="Subscribe a URL to the tenant's job events", status_code=201,
             responses={201: {"description": "The subscription, with its secret (shown only now)."},
                        **problems(415), **PROBLEMS}, openapi_extra=openapi_body(WebhookCreate))
async def create_webhook(request: Request, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    body = await json_model(request, WebhookCreate)
    assert body is not None
    _check_url(ctx, body.url)
    sub, secret = await _store(request).create(principal.tenant, body.url, body.events, body.description)
    return JSONResponse({**sub.public(), "secret": secret}, status_code=201,
                        headers={"Location": f"/v1/webhooks/{sub.id}"})


@router.get("/webhooks", summary="The tenant's webhook subscriptions", responses={**PROBLEMS})
async def list_webhooks(request: Request, principal: ReadPrincipal) -> Response:
    return JSONResponse({"items": [s.public() for s in await _store(request).list(principal.tenant)]})


@router.get("/webhooks/{webhook_id}", summary="A webhook subscription", responses={**problems(404), **PROBLEMS})
async def get_webhook(webhook_id: WebhookId, request: Request, principal: ReadPrincipal) -> Response:
    sub = await _store(request).get(principal.tenant, webhook_id)
    if sub is None:
        raise not_found(f"Webhook {webhook_id}")
    return JSONResponse(sub.public())


@router.patch("/webhooks/{webhook_id}", summary="Change a subscription's URL, events, description or enabled",
              responses={**problems(404, 415), **PROBLEMS}, openapi_extra=openapi_body(WebhookUpdate))
async def update_webhook(webhook_id: WebhookId, request: Request, ctx: ContextDep,
                         principal: SubmitPrincipal) -> Response:
    body = await json_model(request, WebhookUpdate)
    assert body is not None
    changes: dict[str, str] = {}
    if body.url is not None:
        _check_url(ctx, body.url)
        changes["url"] = body.url
    if body.events is not None:
        changes["events"] = ",".join(sorted(set(body.events)))
    if body.description is not None:
        changes["description"] = body.description
    if body.enabled is not None:
        changes["enabled"] = "1" if body.enabled else "0"
    sub = await _store(request).update(principal.tenant, webhook_id, changes) if changes else \
        await _store(request).get(principal.tenant, webhook_id)
    if sub is None:
        raise not_found(f"Webhook {webhook_id}")
    return JSONResponse(sub.public())


@router.delete("/webhooks/{webhook_id}", summary="Delete a subscription (its pending deliveries are dropped)",
               status_code=204, responses={**problems(404), **PROBLEMS})
async def delete_webhook(webhook_id: WebhookId, request: Request, principal: SubmitPrincipal) -> Response:
    if not await _store(request).delete(principal.tenant, webhook_id):
        raise not_found(f"Webhook {webhook_id}")
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}:rotate-secret", summary="A new signing secret (the old one keeps signing "
             "beside it for JOBENGINE_WEBHOOKS_SECRET_GRACE_SECONDS)", responses={**problems(404), **PROBLEMS})
async def rotate_secret(webhook_id: WebhookId, request: Request, principal: SubmitPrincipal) -> Response:
    rotated = await _store(request).rotate(principal.tenant, webhook_id)
    if rotated is None:
        raise not_found(f"Webhook {webhook_id}")
    sub, secret = rotated
    return JSONResponse({**sub.public(), "secret": secret})


@router.get("/webhooks/{webhook_id}/deliveries", summary="A subscription's delivery log, newest first",
            responses={**problems(404), **PROBLEMS})
async def list_deliveries(webhook_id: WebhookId, request: Request, principal: ReadPrincipal,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    store = _store(request)
    if await store.get(principal.tenant, webhook_id) is None:
        raise not_found(f"Webhook {webhook_id}")
    return JSONResponse({"items": await store.deliveries(webhook_id, limit)})


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}:redeliver", status_code=202,
             summary="Send a delivery again (same webhook-id, attempts counted from zero)",
             responses={**problems(404), **PROBLEMS})
async def redeliver(webhook_id: WebhookId, delivery_id: DeliveryId, request: Request,
                    principal: SubmitPrincipal) -> Response:
    store = _store(request)
    if await store.get(principal.tenant, webhook_id) is None:
        raise not_found(f"Webhook {webhook_id}")
    view = await store.redeliver(webhook_id, delivery_id)
    if view is None:
        raise not_found(f"Delivery {delivery_id}")
    if (deliveries := getattr(request.app.state, "deliveries", None)) is not None:
        deliveries.wake.set()  # sent by this process at once (another one would see it within its idle poll)
    return JSONResponse(view, status_code=202)


@router.post("/webhooks/callback-secret:rotate", summary="A new secret signing the tenant's per-job callbacks",
             description="Jobs submitted with `callback_url` are signed with it; made by the first call (a submit "
                         "with callback_url needs it), the previous one signs beside it for the grace period.",
             responses={**PROBLEMS})
async def rotate_callback_secret(request: Request, principal: SubmitPrincipal) -> Response:
    secret, until = await _store(request).rotate_callback_secret(principal.tenant)
    return JSONResponse({"secret": secret, "previous_secret_valid_until": _iso(until) if until else None})
