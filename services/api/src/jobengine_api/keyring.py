"""The key file (JSON or YAML list of `{id, tenant, scopes, secret_hash, revoked}`) and the key ring
built from it: the keys in force, checked on every /v1 request without a Redis round trip, and
refreshed in the background from the file and the Redis set of revoked key ids."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobengine import keys

from .apikey import KEY_ID_PATTERN, SCOPES, TENANT_PATTERN, Principal, check_hash_format, split_key, verify_secret
from .periodic import Periodic

log = logging.getLogger(__name__)

SLOW_CACHE_SECONDS = 60.0  # how long a pbkdf2-verified secret is trusted without hashing it again
SLOW_CACHE_MAX = 10_000


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


class KeyFileError(ValueError):
    """The key file is unreadable or an entry is invalid; the message names the entry (never a secret)."""


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
        check_hash_format(secret_hash)
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
