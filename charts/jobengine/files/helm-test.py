"""`helm test`: submit the seed's example job through the API Service and wait for its result.

Runs with the API image's Python (standard library only). Exit 0 only when the job finished
with the expected primes. Usage: python helm-test.py http://api-service:80 [timeout_seconds]
The API key (scopes submit and read) comes from JOBENGINE_TEST_API_KEY; unset: no Authorization.
The key is revoked when the test ends, passed or failed (POST /v1/keys/self:revoke), so no standing
credential is left behind; `python -m jobengine_api.apikey_cli unrevoke helm-test` arms it for another run.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

BASE = sys.argv[1].rstrip("/")
DEADLINE = time.monotonic() + (float(sys.argv[2]) if len(sys.argv) > 2 else 60.0)
JOB = {"type": "primes", "payload": {"lowest": 10, "highest": 17}}
EXPECTED = [11, 13, 17]


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if os.environ.get("JOBENGINE_TEST_API_KEY"):
        headers["Authorization"] = "Bearer " + os.environ["JOBENGINE_TEST_API_KEY"]
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.status, json.loads(response.read() or b"null")


def revoke_key():
    """End the test key's life (the API refuses it from now on, in every process)."""
    if not os.environ.get("JOBENGINE_TEST_API_KEY"):
        return
    try:
        call("POST", "/v1/keys/self:revoke")
        print("test key revoked")
    except urllib.error.HTTPError as exc:
        if exc.code != 401:  # 401: refused already, nothing to revoke
            print(f"WARNING: the test key could not be revoked ({exc}): revoke it with "
                  "`python -m jobengine_api.apikey_cli revoke helm-test`")
    except (urllib.error.URLError, ConnectionError) as exc:  # (HTTPError is a URLError)
        print(f"WARNING: the test key could not be revoked ({exc}): revoke it with "
              "`python -m jobengine_api.apikey_cli revoke helm-test`")


def main():
    while True:  # the API may still be rolling out
        try:
            status, body = call("POST", "/v1/jobs", JOB)
            break
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                sys.exit(f"FAIL: the API refused the test's key ({exc.code}). Each run revokes its key when it ends: "
                         "arm it again with `kubectl exec deploy/<api> -- python -m jobengine_api.apikey_cli "
                         "unrevoke helm-test`; otherwise check tests.apiKeySecretKey is in the API keys Secret, "
                         "with scopes submit and read")
            if time.monotonic() > DEADLINE:
                sys.exit(f"FAIL: cannot submit the job: {exc}")
            time.sleep(2)
        except (urllib.error.URLError, ConnectionError) as exc:
            if time.monotonic() > DEADLINE:
                sys.exit(f"FAIL: cannot submit the job: {exc}")
            time.sleep(2)
    if status != 202 or "id" not in body:
        sys.exit(f"FAIL: submit answered {status} {body}")
    job_id = body["id"]
    print(f"submitted job {job_id}")
    while time.monotonic() < DEADLINE:
        _, job = call("GET", f"/v1/jobs/{job_id}?wait=10")
        state = job.get("status")
        print(f"job {job_id}: {state}")
        if state == "finished":
            primes = (job.get("result") or {}).get("primes")
            if primes != EXPECTED:
                sys.exit(f"FAIL: result {job.get('result')}, expected primes {EXPECTED}")
            print(f"OK: primes {primes}")
            return
        if state in ("failed", "canceled", "stopped"):
            sys.exit(f"FAIL: job ended {state}: {job}")
    sys.exit("FAIL: no result before the deadline (are workers running for the default queue?)")


if __name__ == "__main__":
    try:
        main()
    finally:
        revoke_key()
