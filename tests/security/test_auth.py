"""Authentication, scopes and tenant isolation against a real API process (docs/security.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import ROOT, TEST_KEY, key_entry, service_env, wait_for, write_key_file
from tests.integration.test_api_submit import PRIMES, assert_nothing_enqueued, assert_problem

ACME = "acme-rw.acme-secret-0123456789abcdef0123456789abcdef"  # tenant acme: submit, read
GLOBEX = "globex-rw.globex-secret-0123456789abcdef0123456789abc"  # tenant globex: submit, read
READER = "acme-ro.reader-secret-0123456789abcdef0123456789abcd"  # tenant acme: read
SUBMITTER = "acme-wo.writer-secret-0123456789abcdef0123456789abc"  # tenant acme: submit
OLD = "acme-old.old-secret-0123456789abcdef0123456789abcdef00"  # revoked in the file
ADMIN = TEST_KEY  # tenant default, every scope


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return write_key_file(tmp_path / "keys.json", [
        key_entry(ADMIN),
        key_entry(ACME, "acme", ("submit", "read")),
        key_entry(GLOBEX, "globex", ("submit", "read")),
        key_entry(READER, "acme", ("read",)),
        key_entry(SUBMITTER, "acme", ("submit",)),
        key_entry(OLD, "acme", ("submit", "read"), revoked=True),
    ])


@pytest.fixture
def secure_api(start_api, keys_file: Path):  # type: ignore[no-untyped-def]
    return start_api(key=None, JOBENGINE_API_KEYS_FILE=str(keys_file), JOBENGINE_AUTH_REFRESH_SECONDS="0.2")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_missing_malformed_wrong_and_revoked_keys_get_401_and_nothing_is_enqueued(secure_api, r: redis.Redis
                                                                                  ) -> None:
    c = secure_api.client
    wrong_secret = ACME.split(".")[0] + ".not-the-secret"
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
                    bearer("no-dot-in-this-key"), bearer(wrong_secret), bearer("nobody.some-secret"),
                    bearer(OLD), {"X-API-Key": wrong_secret}):
        for method, path, body in (("POST", "/v1/jobs", PRIMES), ("POST", "/v1/jobs:batch", {"jobs": [PRIMES]})):
            resp = c.request(method, path, json=body, headers=headers)
            problem = assert_problem(resp, 401)
            assert problem["type"] == "urn:jobengine:problem:unauthorized"
            assert resp.headers["www-authenticate"].startswith("Bearer")
            assert "-secret-" not in resp.text and "not-the" not in resp.text  # the key is never echoed
        assert_problem(c.get("/v1/jobs", headers=headers), 401)
    assert_nothing_enqueued(r)
    assert r.keys("*") == [] or set(r.keys("*")) <= {b"jobengine:apikey:revoked"}
    # both header forms work
    assert c.post("/v1/jobs", json=PRIMES, headers=bearer(ACME)).status_code == 202
    assert c.post("/v1/jobs", json=PRIMES, headers={"X-API-Key": ACME}).status_code == 202


def test_revocation_through_redis_takes_effect_without_a_restart(secure_api, r: redis.Redis) -> None:
    c = secure_api.client
    assert c.get("/v1/jobs", headers=bearer(ACME)).status_code == 200
    r.sadd("jobengine:apikey:revoked", "acme-rw")
    wait_for(lambda: c.get("/v1/jobs", headers=bearer(ACME)).status_code == 401, timeout=5, message="revocation")
    assert_problem(c.post("/v1/jobs", json=PRIMES, headers=bearer(ACME)), 401)
    assert c.get("/v1/jobs", headers=bearer(GLOBEX)).status_code == 200  # other keys unaffected
    assert_nothing_enqueued(r)
    r.srem("jobengine:apikey:revoked", "acme-rw")
    wait_for(lambda: c.get("/v1/jobs", headers=bearer(ACME)).status_code == 200, timeout=5, message="restore")


def test_key_file_changes_are_picked_up(secure_api, keys_file: Path) -> None:
    c = secure_api.client
    assert c.get("/v1/jobs", headers=bearer(GLOBEX)).status_code == 200
    entries = json.loads(keys_file.read_text())
    for entry in entries:
        if entry["id"] == "globex-rw":
            entry["revoked"] = True
    tmp = keys_file.with_suffix(".new")
    tmp.write_text(json.dumps(entries))
    tmp.replace(keys_file)  # atomic, like a Secret volume update
    wait_for(lambda: c.get("/v1/jobs", headers=bearer(GLOBEX)).status_code == 401, timeout=5, message="reload")
    assert c.get("/v1/jobs", headers=bearer(ACME)).status_code == 200


def test_scopes(secure_api, r: redis.Redis) -> None:
    c = secure_api.client
    job_id = c.post("/v1/jobs", json=PRIMES, headers=bearer(SUBMITTER)).json()["id"]
    # submit only: no reads
    for path in ("/v1/jobs", f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}?wait=1"):
        assert assert_problem(c.get(path, headers=bearer(SUBMITTER)), 403)["type"].endswith(":forbidden")
    # read only: no submit, cancel or retry
    before = r.llen("rq:queue:default")
    assert_problem(c.post("/v1/jobs", json=PRIMES, headers=bearer(READER)), 403)
    assert_problem(c.post("/v1/jobs:batch", json={"jobs": [PRIMES]}, headers=bearer(READER)), 403)
    assert_problem(c.delete(f"/v1/jobs/{job_id}", headers=bearer(READER)), 403)
    assert_problem(c.post(f"/v1/jobs/{job_id}/retry", headers=bearer(READER)), 403)
    assert r.llen("rq:queue:default") == before and r.hget(f"rq:job:{job_id}", "status") == b"queued"
    assert c.get(f"/v1/jobs/{job_id}", headers=bearer(READER)).json()["status"] == "queued"
    # queue statistics span every tenant: admin only
    for key in (ACME, READER, SUBMITTER):
        assert_problem(c.get("/v1/queues", headers=bearer(key)), 403)
    assert c.get("/v1/queues", headers=bearer(ADMIN)).status_code == 200
    # the operator actions too: workers, pause and resume, bulk operations
    for method, path, body in (("GET", "/v1/workers", None), ("POST", "/v1/queues/default:pause", None),
                               ("POST", "/v1/queues/default:resume", None), ("GET", "/v1/operations", None),
                               ("POST", "/v1/operations", {"action": "delete"})):
        for key in (ACME, READER, SUBMITTER):
            assert_problem(c.request(method, path, json=body, headers=bearer(key)), 403)
    assert not r.exists("jobengine:paused:default") and not r.exists("jobengine:ops")
    assert c.get("/v1/workers", headers=bearer(ADMIN)).status_code == 200
    # job types: any valid key
    for key in (READER, SUBMITTER):
        assert c.get("/v1/job-types", headers=bearer(key)).status_code == 200
    assert c.delete(f"/v1/jobs/{job_id}", headers=bearer(SUBMITTER)).status_code == 200


def test_tenants_see_and_change_only_their_own_jobs(secure_api, r: redis.Redis) -> None:
    c = secure_api.client
    mine = c.post("/v1/jobs", json=PRIMES, headers=bearer(ACME)).json()["id"]
    theirs = c.post("/v1/jobs", json=PRIMES, headers=bearer(GLOBEX)).json()["id"]
    assert r.hget(f"rq:job:{mine}", "jobengine_tenant") == b"acme"
    assert json.loads(r.hget(f"rq:job:{mine}", "meta"))["tenant"] == "acme"

    for path in (f"/v1/jobs/{theirs}", f"/v1/jobs/{theirs}?wait=0.5"):
        assert_problem(c.get(path, headers=bearer(ACME)), 404)
    assert_problem(c.delete(f"/v1/jobs/{theirs}", headers=bearer(ACME)), 404)
    assert r.hget(f"rq:job:{theirs}", "status") == b"queued"
    assert [j["id"] for j in c.get("/v1/jobs", headers=bearer(ACME)).json()["items"]] == [mine]
    assert [j["id"] for j in c.get("/v1/jobs", headers=bearer(GLOBEX)).json()["items"]] == [theirs]
    assert c.get("/v1/jobs", headers=bearer(ADMIN)).json()["items"] == []  # admin is a tenant too

    # retry: globex cancels its job (retryable now); acme cannot requeue it
    assert c.delete(f"/v1/jobs/{theirs}", headers=bearer(GLOBEX)).status_code == 200
    assert_problem(c.post(f"/v1/jobs/{theirs}/retry", headers=bearer(ACME)), 404)
    assert r.hget(f"rq:job:{theirs}", "status") == b"canceled"
    assert c.post(f"/v1/jobs/{theirs}/retry", headers=bearer(GLOBEX)).status_code == 202

    # the same Idempotency-Key in two tenants: two jobs, no replay across tenants
    a = c.post("/v1/jobs", json=PRIMES, headers={**bearer(ACME), "Idempotency-Key": "order-1"})
    g = c.post("/v1/jobs", json=PRIMES, headers={**bearer(GLOBEX), "Idempotency-Key": "order-1"})
    assert a.status_code == g.status_code == 202 and a.json()["id"] != g.json()["id"]
    assert c.get(f"/v1/jobs/{mine}", headers=bearer(ACME)).json()["id"] == mine


def test_jobs_written_without_a_tenant_belong_to_no_tenant(secure_api, r: redis.Redis) -> None:
    c = secure_api.client
    job_id = c.post("/v1/jobs", json=PRIMES, headers=bearer(ADMIN)).json()["id"]
    r.hdel(f"rq:job:{job_id}", "jobengine_tenant")  # as stock RQ, or the Producer without a tenant, writes it
    for key in (ADMIN, ACME):  # not even tenant "default"'s key
        assert_problem(c.get(f"/v1/jobs/{job_id}", headers=bearer(key)), 404)
        assert_problem(c.delete(f"/v1/jobs/{job_id}", headers=bearer(key)), 404)


def test_infrastructure_routes_need_no_key(secure_api) -> None:
    with httpx.Client(base_url=secure_api.base_url, timeout=10) as anon:
        for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
            assert anon.get(path).status_code == 200, path
        spec = anon.get("/openapi.json").json()
    assert httpx.get(secure_api.metrics_url, timeout=10).status_code == 200  # on the metrics port only
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            assert ("security" in op) == path.startswith("/v1"), (method, path)
            if path.startswith("/v1"):
                assert "401" in op["responses"], (method, path)


def test_metrics_hold_no_key_or_tenant(secure_api) -> None:
    c = secure_api.client
    c.post("/v1/jobs", json=PRIMES, headers=bearer(ACME))
    c.post("/v1/jobs", json=PRIMES, headers=bearer("acme-rw.wrong"))
    text = secure_api.metrics()
    for needle in ("acme", "globex", "secret", "acme-rw"):
        assert needle not in text


def _run_api(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobengine_api"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=30)


def test_production_refuses_to_start_without_auth_or_without_keys(redis_url: str, tmp_path: Path) -> None:
    base = service_env(redis_url, JOBENGINE_API_PORT="1")
    del base["JOBENGINE_AUTH_ALLOW_OFF_IN_PRODUCTION"]
    off = _run_api({**base, "JOBENGINE_AUTH": "off"})
    assert off.returncode == 2 and "JOBENGINE_AUTH=off" in off.stderr and "JOBENGINE_ENV=production" in off.stderr
    no_file = _run_api({**base, "JOBENGINE_AUTH": "auto"})
    assert no_file.returncode == 2 and "JOBENGINE_API_KEYS_FILE" in no_file.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "k", "tenant": "t", "scopes": ["root"], "secret_hash": "sha256:00"}]))
    bad_file = _run_api({**base, "JOBENGINE_AUTH": "on", "JOBENGINE_API_KEYS_FILE": str(bad)})
    assert bad_file.returncode == 2 and "unknown scopes" in bad_file.stderr


def test_development_mode_runs_without_a_key_and_says_so(start_api, r: redis.Redis) -> None:
    api = start_api(key=None, JOBENGINE_ENV="development", JOBENGINE_AUTH="auto")
    resp = api.client.post("/v1/jobs", json=PRIMES)
    assert resp.status_code == 202
    assert r.hget(f"rq:job:{resp.json()['id']}", "jobengine_tenant") == b"default"
    wait_for(lambda: "authentication is OFF" in api.proc.log(), timeout=5, message="the warning")


def test_keys_cli_creates_a_working_key(start_api, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "jobengine_api.apikey_cli", "create", "--tenant", "cli", "--scopes",
                          "submit,read", "--json"], capture_output=True, text=True, timeout=30, check=True)
    created = json.loads(out.stdout)
    assert created["entry"]["tenant"] == "cli" and created["key"].startswith(created["entry"]["id"] + ".")
    assert created["key"].split(".", 1)[1] not in json.dumps(created["entry"])  # only the hash is stored
    slow = subprocess.run([sys.executable, "-m", "jobengine_api.apikey_cli", "create", "--tenant", "cli", "--scopes",
                           "read", "--hash", "pbkdf2_sha256", "--json"], capture_output=True, text=True, timeout=30,
                          check=True)
    slow_created = json.loads(slow.stdout)
    path = write_key_file(tmp_path / "cli-keys.json", [created["entry"], slow_created["entry"]])
    api = start_api(key=created["key"], JOBENGINE_API_KEYS_FILE=str(path))
    assert api.client.post("/v1/jobs", json=PRIMES).status_code == 202
    for _ in range(3):  # pbkdf2: verified once, then from the cache
        assert api.client.get("/v1/jobs", headers=bearer(slow_created["key"])).status_code == 200
    assert_problem(api.client.post("/v1/jobs", json=PRIMES, headers=bearer(slow_created["key"])), 403)
    time.sleep(0)
