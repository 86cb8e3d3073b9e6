"""Subscriptions, per-job callback secrets and the delivery log in Redis (keys.webhook*, keys.delivery*)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import ResponseError

from jobengine import keys

from . import signing

LOG_KEPT = 1000  # deliveries listed per subscription (older ones leave the log; their hashes expire)
DELIVERY_TTL = 7 * 86_400  # seconds a delivery's record is kept
CALLBACK = "callback"  # the `webhook` field of a per-job callback's deliveries


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _dict(raw: dict[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}


@dataclass(frozen=True)
class Subscription:
    id: str
    tenant: str
    url: str
    events: frozenset[str]  # empty: every type
    enabled: bool
    description: str
    created_at: float
    secret: str
    previous_secret: str
    previous_until: float

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Subscription:
        return cls(raw["id"], raw["tenant"], raw["url"], frozenset(filter(None, raw.get("events", "").split(","))),
                   raw.get("enabled", "1") == "1", raw.get("description", ""), float(raw.get("created_at", 0)),
                   raw.get("secret", ""), raw.get("previous_secret", ""), float(raw.get("previous_until", 0) or 0))

    def wants(self, event_type: str) -> bool:
        return self.enabled and (not self.events or event_type in self.events)

    def secrets(self, now: float) -> list[str]:
        """The secrets that sign a delivery now: the current one, and the previous one in its grace period."""
        if self.previous_secret and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": sorted(self.events), "enabled": self.enabled,
                "description": self.description, "created_at": _iso(self.created_at),
                "previous_secret_valid_until": _iso(self.previous_until) if self.previous_secret and
                self.previous_until > time.time() else None}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


async def ensure_group(redis: Any, tenant: str) -> None:
    """The delivery loops' consumer group on the tenant's events stream, from now on ('$'), and the tenant in
    the set they read: called as the first subscription (or the callback secret) is made, so no later event
    is missed. The tenant's events are written from now on, whoever listens (keys.events_listened, no expiry)."""
    await redis.set(keys.events_listened(tenant), 1)
    try:
        await redis.xgroup_create(keys.events(tenant), keys.WEBHOOK_GROUP, id="$", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    await redis.sadd(keys.EVENT_TENANTS, tenant)


class WebhookStore:
    def __init__(self, redis: Any, grace_seconds: int) -> None:
        self.redis = redis
        self.grace_seconds = grace_seconds

    async def create(self, tenant: str, url: str, events: list[str], description: str) -> tuple[Subscription, str]:
        await ensure_group(self.redis, tenant)
        sub_id, secret = new_id("wh_"), signing.new_secret()
        fields = {"id": sub_id, "tenant": tenant, "url": url, "events": ",".join(sorted(set(events))),
                  "enabled": "1", "description": description, "created_at": repr(time.time()), "secret": secret}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.webhook(sub_id), mapping=fields)
            pipe.sadd(keys.tenant_webhooks(tenant), sub_id)
            pipe.incr(keys.tenant_webhooks_version(tenant))
            await pipe.execute()
        return Subscription.from_hash(fields), secret

    async def get(self, tenant: str, sub_id: str) -> Subscription | None:
        raw = _dict(await self.redis.hgetall(keys.webhook(sub_id)))
        if not raw or raw.get("tenant") != tenant:
            return None
        return Subscription.from_hash(raw)

    async def list(self, tenant: str) -> list[Subscription]:
        ids = sorted(_s(i) for i in await self.redis.smembers(keys.tenant_webhooks(tenant)))
        async with self.redis.pipeline(transaction=False) as pipe:
            for sub_id in ids:
                pipe.hgetall(keys.webhook(sub_id))
            raws = await pipe.execute()
        subs = [Subscription.from_hash(_dict(raw)) for raw in raws if raw]
        return sorted((s for s in subs if s.tenant == tenant), key=lambda s: s.created_at)

    async def update(self, tenant: str, sub_id: str, changes: dict[str, str]) -> Subscription | None:
        if await self.get(tenant, sub_id) is None:
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.webhook(sub_id), mapping=changes)
            pipe.incr(keys.tenant_webhooks_version(tenant))
            await pipe.execute()
        return await self.get(tenant, sub_id)

    async def delete(self, tenant: str, sub_id: str) -> bool:
        if await self.get(tenant, sub_id) is None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.webhook(sub_id), keys.webhook_deliveries(sub_id))
            pipe.srem(keys.tenant_webhooks(tenant), sub_id)
            pipe.incr(keys.tenant_webhooks_version(tenant))
            await pipe.execute()
        return True

    async def rotate(self, tenant: str, sub_id: str) -> tuple[Subscription, str] | None:
        """A new secret; the old one keeps signing (beside it) for JOBENGINE_WEBHOOKS_SECRET_GRACE_SECONDS."""
        sub = await self.get(tenant, sub_id)
        if sub is None:
            return None
        secret = signing.new_secret()
        updated = await self.update(tenant, sub_id, {"secret": secret, "previous_secret": sub.secret,
                                                     "previous_until": repr(time.time() + self.grace_seconds)})
        assert updated is not None
        return updated, secret

    # --- the per-job callbacks' secret (one per tenant) ---

    async def rotate_callback_secret(self, tenant: str) -> tuple[str, float | None]:
        await ensure_group(self.redis, tenant)
        key = keys.callback_secret(tenant)
        old = _dict(await self.redis.hgetall(key)).get("secret", "")
        secret = signing.new_secret()
        until = time.time() + self.grace_seconds if old else 0.0
        await self.redis.hset(key, mapping={"secret": secret, "previous_secret": old, "previous_until": repr(until)})
        return secret, (until if old else None)

    async def callback_secrets(self, tenant: str, now: float) -> list[str]:
        raw = _dict(await self.redis.hgetall(keys.callback_secret(tenant)))
        if not raw.get("secret"):
            return []
        out = [raw["secret"]]
        if raw.get("previous_secret") and now < float(raw.get("previous_until", 0) or 0):
            out.append(raw["previous_secret"])
        return out

    # --- the delivery log ---

    async def deliveries(self, sub_id: str, limit: int) -> list[dict[str, Any]]:
        ids = [_s(i) for i in await self.redis.zrevrange(keys.webhook_deliveries(sub_id), 0, limit - 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for did in ids:
                pipe.hgetall(keys.delivery(did))
            raws = await pipe.execute()
        return [delivery_view(_dict(raw)) for raw in raws if raw]

    async def redeliver(self, sub_id: str, delivery_id: str) -> dict[str, Any] | None:
        """Send a delivery of this subscription again (whatever its status): due now, attempts from 0."""
        key = keys.delivery(delivery_id)
        raw = _dict(await self.redis.hgetall(key))
        if not raw or raw.get("webhook") != sub_id:
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"status": "pending", "attempts": "0", "next_attempt_at": repr(time.time())})
            pipe.expire(key, DELIVERY_TTL)
            pipe.zadd(keys.DELIVERIES_DUE, {delivery_id: time.time()})
            await pipe.execute()
        return delivery_view(_dict(await self.redis.hgetall(key)))


def delivery_view(raw: dict[str, str]) -> dict[str, Any]:
    def num(name: str) -> float | None:
        return float(raw[name]) if raw.get(name) else None

    event = orjson.loads(raw["body"]) if raw.get("body") else {}
    return {"id": raw.get("id"), "event_id": raw.get("event_id"), "event_type": event.get("type"),
            "job_id": (event.get("data") or {}).get("job_id"), "status": raw.get("status"),
            "attempts": int(raw.get("attempts", 0) or 0), "created_at": _iso(num("created_at") or 0),
            "last_attempt_at": _iso(t) if (t := num("last_attempt_at")) else None,
            "next_attempt_at": _iso(t) if raw.get("status") == "pending" and (t := num("next_attempt_at")) else None,
            "delivered_at": _iso(t) if (t := num("delivered_at")) else None,
            "response_status": int(raw["response_status"]) if raw.get("response_status") else None,
            "error": raw.get("error") or None}
