"""GET /v1/jobs reads the caller's own index (one stream per tenant, written by enqueue.lua instead of the
shared one): a tenant with few jobs finds them behind any number of other tenants' jobs, and a submit appends
to one index only."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import redis

from tests.conftest import TEST_KEY, key_entry, write_key_file

from .test_api_submit import PRIMES

OTHER = "k-other.other-secret-0123456789abcdef0123456789abcdef"


def test_a_sparse_tenant_lists_its_jobs_behind_a_busy_ones(start_api, tmp_path, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    keys = write_key_file(tmp_path / "keys.json", [key_entry(TEST_KEY), key_entry(OTHER, tenant="other")])
    api = start_api(JOBENGINE_API_KEYS_FILE=str(keys))
    other = {"Authorization": f"Bearer {OTHER}"}
    mine = [api.client.post("/v1/jobs", json=PRIMES, headers=other).json()["id"] for _ in range(3)]
    time.sleep(0.01)  # (the busy tenant's jobs are submitted in a later millisecond)
    between = datetime.now(timezone.utc)
    for _ in range(3):  # more than one list request looked at in the shared index (its scan budget: 1,000)
        assert api.client.post("/v1/jobs:batch", json={"jobs": [PRIMES] * 600}).status_code == 202
    page = api.client.get("/v1/jobs", headers=other, params={"limit": 10}).json()
    assert [i["id"] for i in page["items"]] == mine[::-1] and page["next_cursor"] is None
    assert r.xlen("jobengine:index:other") == 3 and r.xlen("jobengine:index:default") == 1800
    assert r.xlen("jobengine:index") == 0  # the shared one: jobs without a tenant, and those submitted with auth off
    # time bounds are stream id bounds: no scan outside them
    busy = api.client.get("/v1/jobs", params={"limit": 500, "created_before": between.isoformat()}).json()
    assert busy == {"items": [], "next_cursor": None}
    later = api.client.get("/v1/jobs", headers=other, params={"created_after": between.isoformat()}).json()
    assert later["items"] == []
    assert len(api.client.get("/v1/jobs", params={"limit": 500, "created_after": between.isoformat()})
               .json()["items"]) == 500
    bad = api.client.get("/v1/jobs", params={"created_after": between.isoformat(),
                                             "created_before": between.isoformat()})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "created_before"


def test_with_authentication_off_every_job_is_listed_from_the_shared_index(start_api, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    api = start_api(key=None, JOBENGINE_AUTH="off", JOBENGINE_ENV="development")
    ids = [api.client.post("/v1/jobs", json=PRIMES).json()["id"] for _ in range(3)]
    page = api.client.get("/v1/jobs", params={"limit": 10}).json()
    assert [i["id"] for i in page["items"]] == ids[::-1]
    assert r.xlen("jobengine:index") == 3 and not r.exists("jobengine:index:default")
