"""The job hash's field order (jobdata.build_job_hash): Redis keeps a job's small hash as one list and finds a
field by walking it from the front, so the fields every claim and complete script reads come first. A tenant's
job carries its tenant there too: the scripts read it for each job (its events), and every tenant check reads it
(moved up from the end: -0.9 % Redis instructions a tenant job drained, docs/benchmarks.md)."""

from __future__ import annotations

from datetime import datetime, timezone

from jobengine import keys
from jobengine.jobdata import build_job_hash


def fields(tenant: str | None) -> list[str]:
    return list(build_job_hash(job_id="j1", job_type="add", function="bench.jobs.add", payload={"a": 1},
                               queue="default", timeout=60, result_ttl=60, failure_ttl=60, retry_intervals=[1.0],
                               status="queued", meta={}, now=datetime.now(timezone.utc), tenant=tenant))


def test_the_hot_fields_come_first_and_a_tenant_among_them() -> None:
    with_tenant, without = fields("acme"), fields(None)
    hot = ["status", "jobengine_claim", "jobengine_attempts", "data", "meta", "timeout"]
    assert with_tenant[:7] == [*hot, keys.TENANT_FIELD]
    assert without[:6] == hot and keys.TENANT_FIELD not in without  # no tenant: no field (RQ's own jobs lack it)
    assert set(with_tenant) - {keys.TENANT_FIELD} == set(without)
