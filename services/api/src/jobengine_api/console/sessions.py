"""Console sessions: a signed cookie naming the API key that signed in, and the CSRF tokens derived from it.

The cookie holds no secret: `<payload>.<hmac>` where the payload (base64url JSON) is the key id, a fingerprint
of the key's stored hash, a random session nonce and the expiry. Each request looks the key up again in the
API's key ring, so a revoked, deleted or re-keyed API key ends its console sessions at the next request, and
the principal (tenant, scopes) is always the key's current one. The signing key is JOBENGINE_CONSOLE_SECRET,
or a random one that the first API process writes into Redis (SET NX) and every process then reads.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from jobengine import keys
from jobengine.redis_conn import TRANSIENT_ERRORS

from ..apikey import Principal
from ..auth import DEV_PRINCIPAL
from ..keyring import KeyRing

log = logging.getLogger(__name__)

COOKIE = "jobengine_console"
LOGIN_COOKIE = "jobengine_console_login"  # the sign-in form's own CSRF token (double submit), before any session
LOGIN_COOKIE_SECONDS = 600
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    nonce: str
    expires: int
    principal: Principal


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _fingerprint(secret_hash: str) -> str:
    """Changes when the key's secret changes (a re-issued key with the same id signs old sessions out)."""
    return hashlib.sha256(secret_hash.encode()).hexdigest()[:16]


class Sessions:
    """Issues and checks session cookies and CSRF tokens with one signing key."""

    def __init__(self, secret: bytes | None, keyring: KeyRing | None, lifetime: int) -> None:
        self._secret = secret or b""  # empty until load(): no session is valid, pages answer 503
        self.keyring = keyring  # None: authentication off (development): every session is DEV_PRINCIPAL's
        self.lifetime = lifetime

    @property
    def ready(self) -> bool:
        return bool(self._secret)

    async def load(self, configured: str | None, redis: Any) -> None:
        """The signing key; while Redis is away, tried again every second (the API serves meanwhile)."""
        while not self._secret:
            try:
                self._secret = await signing_key(configured, redis)
            except TRANSIENT_ERRORS as exc:
                log.warning("console signing key not read yet", extra={"error": repr(exc)})
                await asyncio.sleep(1)

    def _sign(self, purpose: str, data: str) -> str:
        return _b64(hmac.new(self._secret, f"{purpose}|{data}".encode(), hashlib.sha256).digest())

    def issue(self, principal: Principal) -> str:
        fp = ""
        if self.keyring is not None:
            fp = _fingerprint(self.keyring.entries[principal.key_id].secret_hash)
        body = {"k": principal.key_id, "f": fp, "n": secrets.token_urlsafe(16),
                "e": int(time.time()) + self.lifetime}
        payload = _b64(orjson.dumps(body))
        return f"{payload}.{self._sign('session', payload)}"

    def check(self, cookie: str | None) -> Session | None:
        """The session of a cookie still valid now, with the key's current principal; else None."""
        if not cookie or len(cookie) > 1024 or not self._secret:
            return None
        payload, _, signature = cookie.partition(".")
        if not signature or not hmac.compare_digest(signature, self._sign("session", payload)):
            return None
        try:
            body: dict[str, Any] = orjson.loads(_unb64(payload))
            key_id, fp, nonce, expires = str(body["k"]), str(body["f"]), str(body["n"]), int(body["e"])
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
        if expires < time.time():
            return None
        if self.keyring is None:
            principal = DEV_PRINCIPAL
        else:
            entry = self.keyring.entries.get(key_id)
            if (entry is None or entry.revoked or key_id in self.keyring.revoked
                    or not hmac.compare_digest(fp, _fingerprint(entry.secret_hash))):
                return None
            principal = entry.principal
        return Session(key_id, nonce, expires, principal)

    def csrf_token(self, session: Session) -> str:
        """The token every action form of this session carries (bound to the session's nonce)."""
        return self._sign("csrf", session.nonce)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    def login_token(self) -> tuple[str, str]:
        """(cookie value, form value) of the sign-in form: a random value and its signature."""
        value = secrets.token_urlsafe(16)
        return value, self._sign("login", value)

    def login_ok(self, cookie: str | None, token: str | None) -> bool:
        return bool(cookie and token) and hmac.compare_digest(str(token), self._sign("login", str(cookie)))


async def signing_key(configured: str | None, redis: Any) -> bytes:
    """JOBENGINE_CONSOLE_SECRET, else the random key in Redis that the first process wrote (SET NX)."""
    if configured:
        return configured.encode()
    await redis.set(keys.CONSOLE_SECRET, secrets.token_hex(32), nx=True)
    stored = await redis.get(keys.CONSOLE_SECRET)
    return stored if isinstance(stored, bytes) else str(stored).encode()


def cookie_secure(host: str, scheme: str, development: bool = False) -> bool:
    """Secure unless the console is reached over plain http on a loopback address (make run, tests) or in
    development mode (the kind dev loop's plain-http ingress). Behind a TLS-terminating ingress the API sees
    http on a public name: Secure, as the browser sees https."""
    if scheme == "https":
        return True
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return not (name in LOOPBACK_HOSTS or development)


def cookie_value(headers: Any) -> str | None:
    """The session cookie from raw ASGI headers (the auth middleware has no Request)."""
    from http.cookies import SimpleCookie

    for name, value in headers:
        if name == b"cookie" and COOKIE.encode() in value:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header: no session
                return None
            morsel = jar.get(COOKIE)
            return morsel.value if morsel is not None else None
    return None
