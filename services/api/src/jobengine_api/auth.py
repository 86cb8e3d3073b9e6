"""Authentication middleware: who is calling (key id, tenant, scopes), checked on every /v1 request.

A key is `<key_id>.<secret>`, sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`. The
key file (JOBENGINE_API_KEYS_FILE, JSON or YAML) lists `{id, tenant, scopes, secret_hash, revoked}`;
the secret itself is never stored. Key ids in the Redis set `jobengine:apikey:revoked` are
refused too (revocation without a restart); the file and that set are re-read every
JOBENGINE_AUTH_REFRESH_SECONDS. A request costs a dict lookup, one sha256 and a constant-time
compare: no Redis round trip. docs/security.md has the reasoning.

Modules: apikey.py (key format, scopes, hashing), keyring.py (key file, ring, refresh), this one (the
middleware and its start-up wiring), apikey_cli.py (`python -m jobengine_api.apikey_cli`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NoReturn

from starlette.types import ASGIApp, Receive, Scope, Send

from .apikey import SCOPES, Principal
from .keyring import KeyFileError, KeyRing, load_key_file
from .problems import Problem

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"  # development mode's tenant, and the owner of jobs written without one
PROTECTED_PREFIX = "/v1"
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="jobengine"'}
DEV_PRINCIPAL = Principal(key_id="development", tenant=DEFAULT_TENANT, scopes=frozenset(SCOPES))


def token_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key of `Authorization: Bearer <key>` or `X-API-Key: <key>`; None when neither is there."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip().decode("latin-1")
        elif name == b"x-api-key" and value.strip():
            return value.strip().decode("latin-1")
    return None


def unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers=WWW_AUTHENTICATE)


def forbidden(scope: str) -> Problem:
    return Problem(403, "forbidden", f"This API key lacks the {scope!r} scope.")


class AuthMiddleware:
    """401 before routing for any /v1 request without a valid key: no handler, no body read, no Redis. A GET or
    HEAD without a key header may instead carry a signed-in web console session (console_reader).

    Sets scope["state"]["principal"] (request.state.principal). keyring None: authentication is off
    (development mode) and every request acts as DEV_PRINCIPAL.
    """

    def __init__(self, app: ASGIApp, keyring: KeyRing | None) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.keyring is None:
            principal: Principal | None = DEV_PRINCIPAL
        else:
            token = token_from_headers(scope["headers"])
            if token is None:
                principal = console_reader(scope)
                if principal is None:
                    await self._reject(scope, send,
                                       "An API key is required: Authorization: Bearer <key_id>.<secret>.")
                    return
                scope.setdefault("state", {})["principal"] = principal
                await self.app(scope, receive, send)
                return
            principal = self.keyring.authenticate(token)
            if principal is None:
                await self._reject(scope, send, "The API key is not valid (unknown, wrong or revoked).")
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    @staticmethod
    async def _reject(scope: Scope, send: Send, detail: str) -> None:
        response = unauthorized(detail).response(scope.get("path", ""))
        await response(scope, _disconnected, send)


def console_reader(scope: Scope) -> Principal | None:
    """A signed-in console session reads the JSON API it polls (GET and HEAD only: every change goes through
    the console's CSRF-checked forms). Only when the console is on (its lifespan sets app.state.console_sessions);
    the session's principal is its API key's, so the reads are scoped exactly as the key's own."""
    if scope["method"] not in ("GET", "HEAD"):
        return None
    app = scope.get("app")
    sessions = getattr(app.state, "console_sessions", None) if app is not None else None
    if sessions is None:
        return None
    from .console.sessions import cookie_value  # (the console is optional: imported only when it is on)

    session = sessions.check(cookie_value(scope["headers"]))
    return session.principal if session is not None else None


async def _disconnected() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def keyring_from_settings(settings: Any) -> KeyRing | None:
    """The key ring, or None when authentication is off. Exits (status 2, one clear line) when auth is
    off in production without JOBENGINE_AUTH_ALLOW_OFF_IN_PRODUCTION, or on without a valid key file."""
    import sys

    def stop(message: str) -> NoReturn:
        sys.stderr.write(message + "\n")
        raise SystemExit(2)

    if not settings.auth_enabled:
        if settings.env == "production" and not settings.auth_allow_off_in_production:
            stop("refusing to start: JOBENGINE_AUTH=off with JOBENGINE_ENV=production would leave every job open "
                 "to anyone who reaches the API; set JOBENGINE_API_KEYS_FILE (docs/security.md), or "
                 "JOBENGINE_ENV=development, or force it with JOBENGINE_AUTH_ALLOW_OFF_IN_PRODUCTION=true")
        log.warning("authentication is OFF (development mode): every request acts as tenant %r with all scopes; "
                    "never expose this API", DEFAULT_TENANT, extra={"tenant": DEFAULT_TENANT})
        return None
    if not settings.api_keys_file:
        stop("refusing to start: authentication is on (JOBENGINE_ENV=production) but JOBENGINE_API_KEYS_FILE is "
             "not set; create a key with `python -m jobengine_api.apikey_cli create --tenant NAME --scopes "
             "submit,read` "
             "(docs/security.md), or run with JOBENGINE_ENV=development for local work")
    try:
        entries = load_key_file(settings.api_keys_file)
    except KeyFileError as exc:
        stop(f"refusing to start: invalid setting JOBENGINE_API_KEYS_FILE: {exc}")
    if not entries:
        log.warning("the API key file lists no key: every /v1 request will get 401",
                    extra={"file": settings.api_keys_file})
    log.info("authentication on", extra={"keys": len(entries), "file": settings.api_keys_file})
    return KeyRing(entries)
