"""/v1/keys/self:revoke: a key ends its own life, at once and in every API process.

For credentials meant to be used once, such as the chart's `helm test` key: the test revokes its key when it
is done, so no standing credential is left behind. Revoking needs no scope beyond a valid key (a key may only
revoke itself); `python -m jobengine_api.apikey_cli unrevoke ID` restores it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from jobengine import keys

from ..deps import PrincipalDep, StoreDep
from ..problems import Problem
from .jobs import problems

router = APIRouter(prefix="/v1", tags=["keys"])


@router.post("/keys/self:revoke", status_code=204, summary="Revoke the API key of this request (any valid key)",
             responses={204: {"description": "Revoked: every API process refuses it from now on."},
                        **problems(401, 409, 503)})
async def revoke_self(request: Request, principal: PrincipalDep, store: StoreDep) -> Response:
    keyring = getattr(request.app.state, "keyring", None)
    if keyring is None:
        raise Problem(409, "authentication-off", "Authentication is off (development): there is no key to revoke.")
    await store.redis.sadd(keys.APIKEY_REVOKED, principal.key_id)  # the others see it at their next refresh
    keyring.update(revoked=keyring.revoked | {principal.key_id})  # this process: at once
    return Response(status_code=204)
