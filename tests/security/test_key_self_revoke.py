"""A key can revoke itself (POST /v1/keys/self:revoke): the chart's `helm test` uses it so its key is not left
as a standing credential. Runs the chart's own test script against the real API and worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ROOT, TEST_KEY, key_entry, write_key_file
from tests.support.wait import wait_until

HELM_TEST = ROOT / "charts" / "jobengine" / "files" / "helm-test.py"
TEST_ONLY_KEY = "helm-test.helmtestsecret0123456789abcdef0123456789ab"


def run_helm_test(base_url: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "JOBENGINE_TEST_API_KEY": TEST_ONLY_KEY}
    return subprocess.run([sys.executable, str(HELM_TEST), base_url, "30"], env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_helm_test_revokes_its_key_when_it_ends_in_every_api_process(start_api, start_worker,
                                                                           tmp_path: Path) -> None:
    keys_file = write_key_file(tmp_path / "keys.json", [
        key_entry(TEST_KEY), key_entry(TEST_ONLY_KEY, tenant="helm-test", scopes=("submit", "read"))])
    env = {"JOBENGINE_API_KEYS_FILE": str(keys_file), "JOBENGINE_AUTH_REFRESH_SECONDS": "0.5"}
    first, second = start_api(**env), start_api(**env)
    start_worker()

    run = run_helm_test(first.base_url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OK: primes [11, 13, 17]" in run.stdout and "test key revoked" in run.stdout

    as_test_key = {"Authorization": f"Bearer {TEST_ONLY_KEY}"}
    assert httpx.get(f"{first.base_url}/v1/job-types", headers=as_test_key).status_code == 401  # at once
    wait_until(lambda: httpx.get(f"{second.base_url}/v1/job-types", headers=as_test_key).status_code == 401,
               timeout=10, message="the other API process refuses the revoked key")
    assert first.client.get("/v1/job-types").status_code == 200  # other keys are untouched

    again = run_helm_test(second.base_url)  # a second run says how to arm the key again
    assert again.returncode != 0
    assert "unrevoke helm-test" in again.stderr


def test_revoking_needs_a_valid_key(api) -> None:
    assert httpx.post(f"{api.base_url}/v1/keys/self:revoke").status_code == 401
