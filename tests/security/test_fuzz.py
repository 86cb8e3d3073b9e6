"""Schemathesis against the API's own OpenAPI document, on a live API process (bounded: about
2,000 generated cases, ~15 s): no 5xx, every response matches the documented status codes, media
types, headers and schemas, and the documented security is enforced (ignored_auth). Then a run
without credentials: every /v1 request gets 401 and nothing reaches Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from tests.conftest import Api

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,ignored_auth")
SEED = "20261128"


def schemathesis(api: Api, tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess[str],
                                                                             dict[str, Any]]:
    if not SCHEMATHESIS.exists():
        pytest.fail(f"{SCHEMATHESIS} missing: schemathesis is pinned in requirements-dev.txt (make venv)")
    report = tmp_path / f"{name}.json"
    # One worker: CPython 3.11.7's compile() is not thread-safe (gh-106905, "AST constructor recursion
    # depth mismatch"), and hypothesis compiles lambdas' sources while generating in several threads.
    cmd = [str(SCHEMATHESIS), "run", f"{api.base_url}/openapi.json", "--seed", SEED, "--no-color",
           "--generation-database", "none", "--workers", "1", "--request-timeout", "10",
           "--report", "json", "--report-json-path", str(report), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(report.read_text())


@pytest.fixture
def fuzz_api(start_api) -> Api:  # type: ignore[no-untyped-def]
    return start_api(JOBENGINE_MAX_WAIT_SECONDS="1")  # a generated ?wait= must not hold a worker of the run long


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_api: Api, tmp_path: Path) -> None:
    # (not the key's own revocation: every later request would then be a 401, and fuzz nothing)
    proc, report = schemathesis(fuzz_api, tmp_path, "authenticated", "-H", f"Authorization: Bearer {fuzz_api.key}",
                                "--checks", CHECKS, "--max-examples", "25", "--exclude-path", "/v1/keys/self:revoke",
                                # event streams stay open until the job ends (tests/integration/test_events.py)
                                "--exclude-path", "/v1/events", "--exclude-path", "/v1/jobs/{job_id}/events")
    cases = report["test_cases"]
    print(f"schemathesis: {cases['generated']} cases, {len(report['failures'])} failures, "
          f"{len(report['errors'])} errors in {report['running_time']:.1f} s")
    assert report["operations"]["tested"] == report["operations"]["total"] - 3 >= 11  # all but the excluded ones
    assert cases["generated"] >= 500
    assert report["failures"] == [] and report["errors"] == [], proc.stdout[-6000:]
    assert cases["with_failures"] == 0 and proc.returncode == 0, proc.stdout[-6000:]
    assert "unhandled error" not in fuzz_api.proc.log()
    assert fuzz_api.client.get("/v1/job-types").status_code == 200  # the key was still valid at the end


def test_without_credentials_every_v1_request_is_401_and_reaches_nothing(fuzz_api: Api, tmp_path: Path,
                                                                         r: redis.Redis) -> None:
    har = tmp_path / "anonymous.har"
    proc, report = schemathesis(fuzz_api, tmp_path, "anonymous", "--checks", "not_a_server_error",
                                "--max-examples", "10", "--phases", "examples,coverage,fuzzing",
                                "--report", "har", "--report-har-path", str(har))
    assert report["errors"] == [] and report["failures"] == [], proc.stdout[-6000:]
    entries = json.loads(har.read_text())["log"]["entries"]
    v1 = [(e["request"]["method"], urlsplit(e["request"]["url"]).path, e["response"]["status"]) for e in entries
          if urlsplit(e["request"]["url"]).path.startswith("/v1")]
    operations = {(method, path.split("/")[2].split(":")[0]) for method, path, _ in v1}
    print(f"anonymous schemathesis: {len(v1)} /v1 requests over {len(operations)} method/resource pairs")
    assert len(v1) >= 100 and {m for m, _ in operations} >= {"GET", "POST", "DELETE"}
    assert [req for req in v1 if req[2] != 401] == []
    assert r.keys("*") == []  # no job, index, idempotency key or anything else was written


def test_a_vanishing_wait_answers_at_once(fuzz_api: Api) -> None:
    """Found by schemathesis: ?wait=1e-20 on a fresh channel hung the request (the timeout fired inside
    SUBSCRIBE and redis-py swallowed the cancellation)."""
    for wait in ("1e-20", "1e-300", "2.2e-311"):
        job_id = fuzz_api.client.post("/v1/jobs", json={"type": "echo", "payload": {}}).json()["id"]
        started = time.monotonic()
        resp = fuzz_api.client.get(f"/v1/jobs/{job_id}", params={"wait": wait}, timeout=5)
        assert resp.status_code == 200 and time.monotonic() - started < 2
