"""The webhook delivery loops of an API process (docs/guarantees.md, "Webhooks": at least once).

1. Intake: the consumer group jobengine-webhooks reads every subscribed tenant's events stream (XREADGROUP; each
   entry goes to one process). For each entry, one delivery per wanting target (a subscription, or the job's
   callback_url for its end) is recorded, due now, and the entry acknowledged: both in one script, so an entry is
   either recorded and acknowledged or neither. A delivery's id is derived from the entry and the target, so an
   entry read twice records nothing twice. Entries a process read and never acknowledged (it was SIGKILLed) are
   taken over by another after JOBENGINE_WEBHOOKS_CLAIM_IDLE_SECONDS (XAUTOCLAIM).
2. Sending: due deliveries are taken with a lease (their due time moved past the attempt's timeout), sent, and
   then removed (delivered, or given up after JOBENGINE_WEBHOOKS_MAX_ATTEMPTS) or made due again after a backoff.
   A process killed mid-attempt leaves the lease to lapse: another process sends the delivery again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import socket
import time
from typing import Any

import httpx
import orjson
from redis.exceptions import ResponseError

from jobengine import keys
from jobengine.metrics import WEBHOOK_DELIVERIES, WEBHOOK_DELIVERY_SECONDS
from jobengine.redis_conn import TRANSIENT_ERRORS
from jobengine.settings import Settings

from ..events import TERMINAL_TYPES, JobTypes, decoded
from . import guard, signing
from .store import CALLBACK, DELIVERY_TTL, LOG_KEPT, Subscription, WebhookStore, _dict, _s

log = logging.getLogger(__name__)

READ_COUNT = 100
SEND_BATCH = 32  # deliveries one process attempts at once
MAX_BACKOFF = 3600.0
IDLE_POLL = 2.0  # seconds between looks for due deliveries (or subscribed tenants) when nothing woke the loop:
# an idle API process costs Redis and itself one call a loop every 2 s (a submit's work is measured without it)
ERROR_TEXT_MAX = 500

# KEYS[1] the events stream  KEYS[2] the due zset; ARGV[1] group  ARGV[2] entry id  ARGV[3] now (epoch s)
# ARGV[4] delivery TTL  ARGV[5] log length kept  ARGV[6] tenant; then 5 per delivery: id, webhook id (or
# 'callback'), url ('' for a subscription: read at each attempt), body, event id. Records the deliveries not
# recorded yet, then XACKs the entry.
RECORD = """
for i = 7, #ARGV, 5 do
  local key = '""" + keys.delivery("") + """' .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'id', ARGV[i], 'webhook', ARGV[i + 1], 'url', ARGV[i + 2], 'body', ARGV[i + 3],
               'event_id', ARGV[i + 4], 'tenant', ARGV[6], 'status', 'pending', 'attempts', '0', 'created_at', ARGV[3],
               'next_attempt_at', ARGV[3])
    redis.call('EXPIRE', key, ARGV[4])
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[i])
    if ARGV[i + 1] ~= 'callback' then
      local log = '""" + keys.webhook_deliveries("") + """' .. ARGV[i + 1]
      redis.call('ZADD', log, ARGV[3], ARGV[i])
      redis.call('ZREMRANGEBYRANK', log, 0, -1 - tonumber(ARGV[5]))
    end
  end
end
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
"""

# KEYS[1] the due zset; ARGV[1] now  ARGV[2] lease end  ARGV[3] most: the due ids, each leased until ARGV[2]
TAKE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


def delivery_id(entry_id: str, target: str) -> str:
    return "msg_" + hashlib.sha256(f"{entry_id}|{target}".encode()).hexdigest()[:26]


def backoff(base: float, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: doubling from `base`, with jitter (half to all of it), capped."""
    return min(MAX_BACKOFF, base * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)


class Deliveries:
    """Both loops of one API process (start / stop), sharing its Redis client."""

    def __init__(self, redis: Any, settings: Settings, store: WebhookStore) -> None:
        self.redis = redis
        self.settings = settings
        self.store = store
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.record = redis.register_script(RECORD)
        self.take = redis.register_script(TAKE)
        self.types = JobTypes(redis)
        self.subs: dict[str, tuple[bytes | None, list[Subscription]]] = {}  # tenant: (version, subscriptions)
        self.http = httpx.AsyncClient(timeout=settings.webhooks_timeout_seconds, follow_redirects=False,
                                      limits=httpx.Limits(max_connections=SEND_BATCH * 2))
        self.wake = asyncio.Event()  # set when this process recorded deliveries (or a redeliver): send now
        self.next_due = float("inf")  # the earliest retry this process scheduled
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.lease = settings.webhooks_timeout_seconds * 2 + 1

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._intake(), name="webhooks-intake"),
                       loop.create_task(self._sending(), name="webhooks-send")]

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.http.aclose()

    # --- intake ---

    async def _intake(self) -> None:
        delay = 0.1
        last_claim = 0.0
        while not self._stopping.is_set():
            try:
                tenants = sorted(_s(t) for t in await self.redis.smembers(keys.EVENT_TENANTS))
                if not tenants:
                    await self._pause(IDLE_POLL)
                    continue
                if time.monotonic() - last_claim > self.settings.webhooks_claim_idle_seconds / 2:
                    last_claim = time.monotonic()
                    for tenant in tenants:
                        await self._take_over(tenant)
                streams = {keys.events(t): ">" for t in tenants}
                try:
                    reply = await self.redis.xreadgroup(keys.WEBHOOK_GROUP, self.consumer, streams, count=READ_COUNT,
                                                        block=1000)
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    for tenant in tenants:  # (a stream deleted by hand, or a FLUSH): made again from now
                        await self.redis.set(keys.events_listened(tenant), 1)
                        with contextlib.suppress(ResponseError):
                            await self.redis.xgroup_create(keys.events(tenant), keys.WEBHOOK_GROUP, id="$",
                                                           mkstream=True)
                    continue
                for stream, entries in reply or ():
                    await self._intake_entries(_s(stream)[len(keys.PREFIXES["events"]):], entries)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:
                log.warning("webhook intake: redis unavailable", extra={"error": repr(exc)})
                await self._pause(delay)
                delay = min(delay * 2, 5.0)
            except Exception:  # noqa: BLE001 - the loop outlives any surprise
                log.exception("webhook intake failed")
                await self._pause(1.0)

    async def _take_over(self, tenant: str) -> None:
        """Entries read by a consumer that never acknowledged them (it died): this process records them."""
        start = "0-0"
        idle_ms = int(self.settings.webhooks_claim_idle_seconds * 1000)
        while True:
            reply = await self.redis.xautoclaim(keys.events(tenant), keys.WEBHOOK_GROUP, self.consumer, idle_ms,
                                                start_id=start, count=READ_COUNT)
            start, entries = _s(reply[0]), [e for e in reply[1] if e and e[1] is not None]
            if entries:
                log.info("webhook entries taken over", extra={"tenant": tenant, "entries": len(entries)})
                await self._intake_entries(tenant, entries)
            if start == "0-0":
                return

    async def _subscriptions(self, tenant: str) -> list[Subscription]:
        version = await self.redis.get(keys.tenant_webhooks_version(tenant))
        cached = self.subs.get(tenant)
        if cached is None or cached[0] != version:
            cached = self.subs[tenant] = (version, await self.store.list(tenant))
        return cached[1]

    async def _intake_entries(self, tenant: str, entries: list[Any]) -> None:
        subs = await self._subscriptions(tenant)
        per_entry = [(_s(entry_id), decoded([(entry_id, fields)])) for entry_id, fields in entries]
        events = [event for _, of_entry in per_entry for event in of_entry]
        await self.types.fill(events)
        ended = [e["job_id"] for e in events if e["type"] in TERMINAL_TYPES]
        callbacks: dict[str, str] = {}
        if ended:
            urls = await self.redis.mget([keys.callback(j) for j in ended])
            callbacks = {j: _s(u) for j, u in zip(ended, urls, strict=True) if u}
        now = repr(time.time())
        for entry_id, of_entry in per_entry:  # each entry's deliveries recorded and the entry acknowledged at once
            args: list[Any] = [keys.WEBHOOK_GROUP, entry_id, now, DELIVERY_TTL, LOG_KEPT, tenant]
            for event in of_entry:
                body = orjson.dumps({"type": event["type"], "timestamp": event["at"], "data": event})
                for sub in subs:
                    if sub.wants(event["type"]):
                        args += [delivery_id(event["id"], sub.id), sub.id, "", body, event["id"]]
                if event["type"] in TERMINAL_TYPES and event["job_id"] in callbacks:
                    args += [delivery_id(event["id"], CALLBACK), CALLBACK, callbacks[event["job_id"]], body,
                             event["id"]]
            await self.record(keys=[keys.events(tenant), keys.DELIVERIES_DUE], args=args)
            if len(args) > 6:
                self.wake.set()

    # --- sending ---

    async def _sending(self) -> None:
        delay = 0.1
        while not self._stopping.is_set():
            try:
                now = time.time()
                ids = [_s(i) for i in await self.take(keys=[keys.DELIVERIES_DUE],
                                                      args=[repr(now), repr(now + self.lease), SEND_BATCH])]
                if ids:
                    await asyncio.gather(*(self._attempt(i) for i in ids))
                    continue
                delay = 0.1
                if now >= self.next_due:
                    self.next_due = float("inf")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), max(0.02, min(IDLE_POLL, self.next_due - time.time())))
                self.wake.clear()
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:
                log.warning("webhook sending: redis unavailable", extra={"error": repr(exc)})
                await self._pause(delay)
                delay = min(delay * 2, 5.0)
            except Exception:  # noqa: BLE001
                log.exception("webhook sending failed")
                await self._pause(1.0)

    async def _attempt(self, did: str) -> None:
        key = keys.delivery(did)
        raw = _dict(await self.redis.hgetall(key))
        if not raw or raw.get("status") != "pending":
            await self.redis.zrem(keys.DELIVERIES_DUE, did)
            return
        now = time.time()
        target = raw["webhook"]
        if target == CALLBACK:
            url, secrets = raw["url"], await self.store.callback_secrets(raw.get("tenant", ""), now)
        else:
            sub_raw = _dict(await self.redis.hgetall(keys.webhook(target)))
            if not sub_raw:
                await self._finish(did, "failed", {"error": "the subscription was deleted"})
                return
            sub = Subscription.from_hash(sub_raw)
            url, secrets = sub.url, sub.secrets(now)
        attempts = int(raw.get("attempts", 0) or 0) + 1
        body = raw["body"].encode()
        fields: dict[str, Any] = {"attempts": attempts, "last_attempt_at": repr(now)}
        started = time.perf_counter()
        try:
            if not secrets:
                raise guard.Refused("no callback secret for this tenant (POST /v1/webhooks/callback-secret:rotate)")
            target_url, host, _address = await guard.resolve(url, self.settings.webhooks_allow_private)
            headers = signing.headers(secrets, did, int(now), body)
            headers["host"] = host
            resp = await self.http.post(target_url, content=body, headers=headers,
                                        extensions={"sni_hostname": host.split(":")[0]})
            code = resp.status_code
            fields.update(response_status=code, error="")
            ok = 200 <= code < 300
            error = "" if ok else f"answered {code}"
        except guard.Refused as exc:
            WEBHOOK_DELIVERIES.labels("refused").inc()
            await self._finish(did, "failed", {**fields, "error": str(exc)[:ERROR_TEXT_MAX]})
            return
        except (httpx.HTTPError, OSError) as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_MAX]
            fields.update(response_status="", error=error)
        finally:
            WEBHOOK_DELIVERY_SECONDS.observe(time.perf_counter() - started)
        if ok:
            WEBHOOK_DELIVERIES.labels("delivered").inc()
            await self._finish(did, "delivered", {**fields, "delivered_at": repr(time.time())})
        elif attempts >= self.settings.webhooks_max_attempts:
            WEBHOOK_DELIVERIES.labels("failed").inc()
            await self._finish(did, "failed", fields)
        else:
            WEBHOOK_DELIVERIES.labels("retry").inc()
            due = time.time() + backoff(self.settings.webhooks_backoff_seconds, attempts)
            self.next_due = min(self.next_due, due)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={**fields, "next_attempt_at": repr(due)})
                pipe.zadd(keys.DELIVERIES_DUE, {did: due})
                await pipe.execute()

    async def _finish(self, did: str, status: str, fields: dict[str, Any]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.delivery(did), mapping={**fields, "status": status})
            pipe.zrem(keys.DELIVERIES_DUE, did)
            await pipe.execute()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
