"""A synchronous producer: submit jobs straight to Redis from Python, without the HTTP API.

Same validation and the same atomic enqueue script as the API; useful for Python services that
already hold a Redis connection, for tests and for benchmarks.

Jobs belong to no tenant unless the Producer is given one: like stock RQ's, they carry no
jobengine_tenant field, and no API key can read, list, cancel or retry them (only the API with
authentication off sees them; docs/security.md). Give `tenant` to write them for that tenant's keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis

from . import keys
from .catalog import Catalog, JobType, RetryPolicy, get_catalog
from .jobdata import build_job_hash, new_job_id
from .scripts import Scripts, enqueue_args, enqueue_keys
from .settings import Settings


@dataclass(frozen=True)
class JobSpec:
    type: str
    payload: dict[str, Any]
    queue: str | None = None
    delay_seconds: float = 0.0
    timeout: int | None = None
    retry: RetryPolicy | None = None
    meta: dict[str, Any] | None = None


def enqueue_call(job_type: JobType, spec: JobSpec, job_id: str, now: datetime,
                 index_max_age: int = 0, tenant: str | None = None) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of enqueue.lua for one validated job (no idempotency key); `tenant`: its owner (None: none)."""
    queue = spec.queue or job_type.queue
    run_at = now.timestamp() + spec.delay_seconds if spec.delay_seconds > 0 else 0
    retry = spec.retry or job_type.retry
    fields = build_job_hash(
        job_id=job_id, job_type=job_type.name, function=job_type.function, payload=spec.payload, queue=queue,
        timeout=spec.timeout or job_type.timeout, result_ttl=job_type.result_ttl, failure_ttl=job_type.failure_ttl,
        retry_intervals=retry.intervals(), status="scheduled" if run_at else "queued",
        meta={**(spec.meta or {}), **({"tenant": tenant} if tenant else {})}, now=now,
        tenant=tenant,  # as the API writes it: a hash field the scripts check, and in meta
    )
    flat = [item for pair in fields.items() for item in pair]
    # no idempotency key, backlog limit, rate limit or tenant quota: those guard the API's callers
    # its tenant's listing index, and the shared one, which a caller with authentication off lists
    index = keys.tenant_index(tenant) if tenant else ""
    return (enqueue_keys(job_id, queue, tenant_index=index, also_shared_index=bool(tenant)),
            enqueue_args(job_id, queue, flat, run_at=run_at, index_max_age=index_max_age))


class Producer:
    def __init__(self, client: redis.Redis, catalog: Catalog | None = None,
                 index_max_age_seconds: int = Settings.model_fields["index_max_age_seconds"].default,
                 tenant: str | None = None) -> None:
        self.client = client
        self.tenant = tenant
        self.catalog = catalog or get_catalog()
        self.scripts = Scripts.register(client)
        self.index_max_age = index_max_age_seconds

    def submit_many(self, specs: list[JobSpec]) -> list[str]:
        """Validate every payload, then write all jobs in one pipelined round trip."""
        calls = []
        now = datetime.now(timezone.utc)
        for spec in specs:
            job_type = self.catalog[spec.type]
            payload = job_type.input_model.model_validate(spec.payload).model_dump(mode="json")
            spec = JobSpec(**{**spec.__dict__, "payload": payload})
            calls.append(enqueue_call(job_type, spec, new_job_id(), now, self.index_max_age, self.tenant))
        with self.client.pipeline(transaction=False) as pipe:
            for keys_, args in calls:
                self.scripts.enqueue(keys=keys_, args=args, client=pipe)
            pipe.execute()
        return [args[0] for _, args in calls]

    def submit(self, type: str, payload: dict[str, Any], **options: Any) -> str:
        return self.submit_many([JobSpec(type=type, payload=payload, **options)])[0]


