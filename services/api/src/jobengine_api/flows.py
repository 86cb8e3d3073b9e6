"""Workflows in Redis: a job with depends_on and a whole flow written by flow.lua (one script: all or nothing),
a flow read back with each node's state, canceled, and its jobs listed (docs/guarantees.md, "Workflows")."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import orjson

from jobengine import keys, scripts
from jobengine.jobdata import API_STATUS, new_job_id, utcformat

from .store import CANCEL_MESSAGE, SUMMARY_FIELDS, JobStore, PreparedJob, job_summary, new_token

FLOW_FIELDS = ("tenant", "state", "nodes", "ended", "n_finished", "n_failed", "n_canceled", "created_at", "ended_at",
               "graph")


def as_deferred(job: PreparedJob) -> PreparedJob:
    """A prepared job (prepare_job with dependencies) written into its queue's DeferredJobRegistry: enqueue.lua
    ZADDs a job with a run_at to its KEYS[3], here rq:deferred:<queue>, at a score far ahead (RQ's 'no TTL')."""
    job.keys[2] = keys.deferred_registry(job.queue)
    job.args[1] = scripts.DEFERRED_SCORE
    return job


def without_limits(job: PreparedJob) -> PreparedJob:
    """A flow's node: the flow is checked whole (the tenant quota); its nodes pass no queue or rate limit."""
    job.keys[5] = ""  # no token bucket
    job.args[6] = 0  # max backlog
    job.args[7] = 0  # rate
    return job


async def write(store: JobStore, *, flow_id: str, tenant: str, nodes: list[scripts.FlowNodeArgs],
                flow_fields: list[Any], counter: str = "", quota: int = 0, idempotency_key: str = "",
                fingerprint: str = "") -> scripts.FlowReply:
    now = time.time()
    idem = keys.idempotency(f"flow:{idempotency_key}", tenant) if idempotency_key else ""
    args = scripts.flow_args(flow_id=flow_id, tenant=tenant if not store.see_all else "",
                             stamp=utcformat(datetime.fromtimestamp(now, timezone.utc)), now=now,
                             flow_fields=flow_fields, counter=counter, quota=quota, nodes=nodes, idempotency=idem,
                             idempotency_ttl=store.settings.idempotency_ttl_seconds, fingerprint=fingerprint)
    return scripts.parse_flow(await store.scripts.flow(keys=[], args=args))


def new_flow_id() -> str:
    return new_job_id()


async def read(store: JobStore, flow_id: str, tenant: str | None) -> dict[str, Any] | None:
    """The flow with each node's state, or None (none such for this tenant: expired, or another's)."""
    row = await store.redis.hmget(keys.flow(flow_id), *FLOW_FIELDS)
    if row[0] is None:
        return None
    owner = store._owner(tenant)
    if owner is not None and row[0].decode() != owner:
        return None
    graph = orjson.loads(row[9])
    pipe = store.redis.pipeline(transaction=False)
    for _, job_id, _ in graph:
        pipe.hget(keys.job(job_id), "status")
    statuses = await pipe.execute()
    nodes = []
    for (name, job_id, deps), raw in zip(graph, statuses, strict=True):
        rq = raw.decode() if raw else ""
        nodes.append({"name": name, "id": job_id, "status": API_STATUS.get(rq, rq) or "expired",
                      "depends_on": deps})
    n = {k: int(row[i] or 0) for i, k in ((3, "ended"), (4, "finished"), (5, "failed"), (6, "canceled"))}
    return {"id": flow_id, "state": row[1].decode(), "created_at": row[7].decode() if row[7] else None,
            "ended_at": _epoch(row[8]), "counts": {"nodes": int(row[2]), **n}, "nodes": nodes}


def _epoch(raw: bytes | None) -> str | None:
    if not raw:
        return None
    return datetime.fromtimestamp(int(raw), timezone.utc).isoformat()


async def job_ids(store: JobStore, flow_id: str, tenant: str | None) -> list[tuple[str, str, list[str]]] | None:
    """The flow's (name, job id, dependency names), in the order written (dependencies first)."""
    tenant_raw, graph = await store.redis.hmget(keys.flow(flow_id), "tenant", "graph")
    if tenant_raw is None:
        return None
    owner = store._owner(tenant)
    if owner is not None and tenant_raw.decode() != owner:
        return None
    return [tuple(node) for node in orjson.loads(graph)]  # type: ignore[misc]


async def cancel(store: JobStore, flow_id: str, tenant: str | None) -> dict[str, int] | None:
    """Cancel each job of the flow that has not ended, dependents before their dependencies (so a deferred
    job reads canceled, not failed by its dependency's cancel): the waiting ones at once, the running ones
    told to stop (cancel.lua's semantics, one call a job, pipelined). Returns counts by cancel.lua's result."""
    nodes = await job_ids(store, flow_id, tenant)
    if nodes is None:
        return None
    now = time.time()
    stamp = utcformat(datetime.fromtimestamp(now, timezone.utc))
    pipe = store.redis.pipeline(transaction=False)
    owner = store._owner(tenant) or ""
    for _, job_id, _ in reversed(nodes):
        await store.scripts.cancel(keys=[], args=scripts.cancel_args(
            job_id=job_id, now=now, stamp=stamp, message=CANCEL_MESSAGE, owner=owner, token=new_token()),
            client=pipe)
    counts: dict[str, int] = {"canceled": 0, "stopping": 0, "terminal": 0, "missing": 0}
    for reply in await pipe.execute():
        result, _ = scripts.parse_change(reply)
        counts[result] = counts.get(result, 0) + 1
    return counts


async def list_jobs(store: JobStore, flow_id: str, tenant: str | None, offset: int, limit: int
                    ) -> tuple[list[dict[str, Any]], int | None] | None:
    """A page of the flow's jobs (in the order written) as GET /v1/jobs lists them, and the next offset."""
    nodes = await job_ids(store, flow_id, tenant)
    if nodes is None:
        return None
    page = nodes[offset: offset + limit]
    pipe = store.redis.pipeline(transaction=False)
    for _, job_id, _ in page:
        pipe.hmget(keys.job(job_id), *SUMMARY_FIELDS)
    rows = await pipe.execute()
    items = [job_summary(job_id, row) for (_, job_id, _), row in zip(page, rows, strict=True) if row[0] is not None]
    nxt = offset + limit if offset + limit < len(nodes) else None
    return items, nxt


__all__ = ["as_deferred", "cancel", "list_jobs", "new_flow_id", "read", "without_limits", "write"]
