"""API keys: their format (`<key_id>.<secret>`), scopes, and the hashing of secrets.

The key file stores `sha256:<hex>` of a secret (for the 256-bit random secrets this project issues)
or `pbkdf2_sha256:<n>:<salt>:<hex>` (for secrets chosen by people); the secret itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

SCOPES = ("submit", "read", "admin")
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # no ':' (it separates key parts in Redis)
PBKDF2_ITERATIONS = 200_000
MAX_SECRET_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. `request.state.principal` on every /v1 request."""

    key_id: str
    tenant: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes


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


def check_hash_format(stored: str) -> None:
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


def split_key(token: str) -> tuple[str, str] | None:
    key_id, sep, secret = token.partition(".")
    if not sep or not secret or not KEY_ID_PATTERN.match(key_id) or len(secret) > MAX_SECRET_LENGTH:
        return None
    return key_id, secret
