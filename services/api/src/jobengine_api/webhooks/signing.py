"""Standard Webhooks signatures (https://www.standardwebhooks.com): webhook-id, webhook-timestamp and
webhook-signature "v1,<base64 HMAC-SHA256 of '<id>.<timestamp>.<body>'>", keyed by the secret's bytes
(a secret is "whsec_" + base64). Several signatures, space-separated, while an old secret is still valid."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(32)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one delivery attempt; every secret in `secrets` signs (the current one first)."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
            "content-type": "application/json", "user-agent": "jobengine-webhooks"}
