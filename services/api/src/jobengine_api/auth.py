"""API keys: who is calling (key id, tenant, scopes), checked on every /v1 request.

A key is `<key_id>.<secret>`, sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`. The
key file (JOBENGINE_API_KEYS_FILE, JSON or YAML) lists `{id, tenant, scopes, secret_hash, revoked}`;
the secret itself is never stored. Key ids in the Redis set `jobengine:apikey:revoked` are
refused too (revocation without a restart); the file and that set are re-read every
JOBENGINE_AUTH_REFRESH_SECONDS. A request costs a dict lookup, one sha256 and a constant-time
compare: no Redis round trip. docs/security.md has the reasoning.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from jobengine import keys

from .periodic import Periodic
from .problems import Problem

log = logging.getLogger(__name__)

SCOPES = ("submit", "read", "admin")
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # no ':' (it separates key parts in Redis)
DEFAULT_TENANT = "default"  # development mode's tenant, and the owner of jobs written without one
PBKDF2_ITERATIONS = 200_000
SLOW_CACHE_SECONDS = 60.0  # how long a pbkdf2-verified secret is trusted without hashing it again
SLOW_CACHE_MAX = 10_000
PROTECTED_PREFIX = "/v1"
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="jobengine"'}


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. `request.state.principal` on every /v1 request."""

    key_id: str
    tenant: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes


DEV_PRINCIPAL = Principal(key_id="development", tenant=DEFAULT_TENANT, scopes=frozenset(SCOPES))


@dataclass(frozen=True, slots=True)
class KeyEntry:
    id: str
    tenant: str
    scopes: frozenset[str]
    secret_hash: str
    revoked: bool = False

    @property
    def principal(self) -> Principal:
        return Principal(self.id, self.tenant, self.scopes)


class KeyFileError(ValueError):
    """The key file is unreadable or an entry is invalid; the message names the entry (never a secret)."""


# ---------------- hashing ----------------

def new_secret() -> str:
    """256 random bits, URL-safe (no '.')."""
    return secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "k" + secrets.token_hex(8)


def hash_secret(secret: str, scheme: str = "sha256", iterations: int = PBKDF2_ITERATIONS) -> str:
    """`sha256:<hex>` (for the random secrets this project issues) or `pbkdf2_sha256:<n>:<salt>:<hex>`."""
    if scheme == "sha256":
        return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()
    if scheme == "pbkdf2_sha256":
        salt = secrets.token_hex(16)
        digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), bytes.fromhex(salt), iterations).hex()
        return f"pbkdf2_sha256:{iterations}:{salt}:{digest}"
    raise ValueError(f"unknown hash scheme {scheme!r}: sha256 or pbkdf2_sha256")


def _check_hash_format(stored: str) -> None:
    parts = stored.split(":")
    if parts[0] == "sha256" and len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[1]):
        return
    if (parts[0] == "pbkdf2_sha256" and len(parts) == 4 and parts[1].isdigit() and int(parts[1]) >= 1000
            and re.fullmatch(r"([0-9a-f]{2}){8,64}", parts[2]) and re.fullmatch(r"[0-9a-f]{64}", parts[3])):
        return
    raise ValueError("secret_hash must be sha256:<64 hex> or pbkdf2_sha256:<iterations>:<salt hex>:<64 hex>")


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of a secret against its stored hash."""
    scheme, _, rest = stored.partition(":")
    if scheme == "sha256":
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return hmac.compare_digest(digest, rest)
    if scheme == "pbkdf2_sha256":
        iterations, salt, expected = rest.split(":")
        digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), bytes.fromhex(salt), int(iterations)).hex()
        return hmac.compare_digest(digest, expected)
    return False


# ---------------- the key file ----------------

def _entry(raw: Any, index: int) -> KeyEntry:
    where = f"entry {index}"
    if not isinstance(raw, Mapping):
        raise KeyFileError(f"{where}: an object with id, tenant, scopes, secret_hash is expected")
    key_id = raw.get("id")
    if not isinstance(key_id, str) or not KEY_ID_PATTERN.match(key_id):
        raise KeyFileError(f"{where}: id must match {KEY_ID_PATTERN.pattern}")
    where = f"key {key_id!r}"
    tenant = raw.get("tenant")
    if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
        raise KeyFileError(f"{where}: tenant must match {TENANT_PATTERN.pattern}")
    scopes = raw.get("scopes")
    if isinstance(scopes, str):
        scopes = [s.strip() for s in scopes.split(",") if s.strip()]
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise KeyFileError(f"{where}: scopes must be a non-empty list of {', '.join(SCOPES)}")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise KeyFileError(f"{where}: unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    secret_hash = raw.get("secret_hash")
    try:
        if not isinstance(secret_hash, str):
            raise ValueError("secret_hash is required")
        _check_hash_format(secret_hash)
    except ValueError as exc:
        raise KeyFileError(f"{where}: {exc}") from None
    revoked = raw.get("revoked", False)
    if not isinstance(revoked, bool):
        raise KeyFileError(f"{where}: revoked must be true or false")
    return KeyEntry(key_id, tenant, frozenset(scopes), secret_hash, revoked)


def parse_keys(text: str, *, yaml_ok: bool = True) -> dict[str, KeyEntry]:
    """A JSON list (or {"keys": [...]}), or the same in YAML when PyYAML is installed."""
    try:
        doc = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        if not yaml_ok:
            raise KeyFileError(f"not valid JSON: {exc}") from None
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise KeyFileError(f"not valid JSON ({exc}); YAML needs PyYAML, which is not installed") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as yexc:
            raise KeyFileError(f"neither JSON nor YAML: {yexc}") from None
    if isinstance(doc, Mapping):
        doc = doc.get("keys")
    if doc is None:
        doc = []
    if not isinstance(doc, list):
        raise KeyFileError("expected a list of keys, or an object with a 'keys' list")
    entries: dict[str, KeyEntry] = {}
    for index, raw in enumerate(doc):
        entry = _entry(raw, index)
        if entry.id in entries:
            raise KeyFileError(f"key {entry.id!r} is listed twice")
        entries[entry.id] = entry
    return entries


def load_key_file(path: str) -> dict[str, KeyEntry]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return parse_keys(text)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


# ---------------- verification ----------------

def split_key(token: str) -> tuple[str, str] | None:
    key_id, sep, secret = token.partition(".")
    if not sep or not secret or not KEY_ID_PATTERN.match(key_id) or len(secret) > 512:
        return None
    return key_id, secret


class KeyRing:
    """The keys in force: the file's entries minus the revoked ids. Swapped whole on a refresh."""

    def __init__(self, entries: Mapping[str, KeyEntry], revoked: Iterable[str] = ()) -> None:
        self.entries = dict(entries)
        self.revoked = frozenset(revoked)
        self._principals = {k: e.principal for k, e in self.entries.items()}
        # pbkdf2 entries: key id -> (sha256 of the verified secret, until); sha256 entries need no cache
        self._verified: dict[str, tuple[bytes, float]] = {}

    def update(self, entries: Mapping[str, KeyEntry] | None = None, revoked: Iterable[str] | None = None) -> bool:
        """Replace the entries and/or the revoked ids; True when anything changed (the cache is then dropped)."""
        new_entries = dict(entries) if entries is not None else self.entries
        new_revoked = frozenset(revoked) if revoked is not None else self.revoked
        if new_entries == self.entries and new_revoked == self.revoked:
            return False
        self.entries, self.revoked = new_entries, new_revoked
        self._principals = {k: e.principal for k, e in new_entries.items()}
        self._verified = {}
        return True

    def authenticate(self, token: str) -> Principal | None:
        """The key's principal, or None for an unknown, wrong, malformed or revoked key."""
        parts = split_key(token)
        if parts is None:
            return None
        key_id, secret = parts
        entry = self.entries.get(key_id)
        if entry is None:
            hashlib.sha256(secret.encode()).hexdigest()  # about the same time as a known id
            return None
        stored = entry.secret_hash
        if stored.startswith("sha256:"):
            ok = hmac.compare_digest(hashlib.sha256(secret.encode()).hexdigest(), stored[7:])
        else:
            ok = self._verify_slow(key_id, secret, stored)
        if not ok or entry.revoked or key_id in self.revoked:
            return None
        return self._principals[key_id]

    def _verify_slow(self, key_id: str, secret: str, stored: str) -> bool:
        digest = hashlib.sha256(secret.encode()).digest()
        now = time.monotonic()
        cached = self._verified.get(key_id)
        if cached is not None and cached[1] > now and hmac.compare_digest(cached[0], digest):
            return True
        if not verify_secret(secret, stored):
            return False
        if len(self._verified) >= SLOW_CACHE_MAX:
            self._verified.clear()
        self._verified[key_id] = (digest, now + SLOW_CACHE_SECONDS)
        return True


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
    """401 before routing for any /v1 request without a valid key: no handler, no body read, no Redis.

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
                await self._reject(scope, send, "An API key is required: Authorization: Bearer <key_id>.<secret>.")
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


async def _disconnected() -> dict[str, Any]:
    return {"type": "http.disconnect"}


class KeyRefresher:
    """Re-reads the key file (when it changed on disk) and the revocation set, every `interval` seconds."""

    def __init__(self, keyring: KeyRing, path: str | None, redis: Any, interval: float) -> None:
        self.keyring = keyring
        self.path = path
        self.redis = redis
        self.interval = interval
        self._stat: tuple[int, int, int] | None = self._file_stat()
        self._loop = Periodic(self.refresh, interval, "API key refresh", wait_first=True)
        self._redis_failing = False

    def _file_stat(self) -> tuple[int, int, int] | None:
        if not self.path:
            return None
        try:
            st = os.stat(self.path)  # follows the symlinks a mounted Secret is updated through
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    async def refresh(self) -> None:
        entries = None
        stat = self._file_stat()
        if stat is not None and stat != self._stat:
            try:
                entries = load_key_file(self.path or "")
                self._stat = stat
            except KeyFileError as exc:  # keep serving with the keys we have
                log.error("API key file not reloaded", extra={"error": str(exc)})
        revoked = None
        try:
            members = await self.redis.smembers(keys.APIKEY_REVOKED)
            revoked = {m.decode() if isinstance(m, bytes) else m for m in members}
            if self._redis_failing:
                log.info("API key revocation list readable again")
            self._redis_failing = False
        except Exception as exc:  # Redis down: keep the last list we read
            if not self._redis_failing:
                log.warning("API key revocation list not refreshed", extra={"error": repr(exc)})
            self._redis_failing = True
        if self.keyring.update(entries, revoked):
            log.info("API keys updated",
                     extra={"keys": len(self.keyring.entries), "revoked": len(self.keyring.revoked)})

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


def keyring_from_settings(settings: Any) -> KeyRing | None:
    """The key ring, or None when authentication is off. Exits (status 2, one clear line) when auth is
    off in production without JOBENGINE_AUTH_ALLOW_OFF_IN_PRODUCTION, or on without a valid key file."""
    import sys

    def stop(message: str) -> None:
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
             "not set; create a key with `python -m jobengine_api.keys create --tenant NAME --scopes submit,read` "
             "(docs/security.md), or run with JOBENGINE_ENV=development for local work")
    try:
        entries = load_key_file(settings.api_keys_file)
    except KeyFileError as exc:
        stop(f"refusing to start: invalid setting JOBENGINE_API_KEYS_FILE: {exc}")
        raise  # unreachable
    if not entries:
        log.warning("the API key file lists no key: every /v1 request will get 401",
                    extra={"file": settings.api_keys_file})
    log.info("authentication on", extra={"keys": len(entries), "file": settings.api_keys_file})
    return KeyRing(entries)
