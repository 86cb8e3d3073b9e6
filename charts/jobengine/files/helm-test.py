"""`helm test`: submit the seed's example job through the API Service and wait for its result.

Runs with the API image's Python (standard library only). Exit 0 only when the job finished
with the expected primes. Usage: python helm-test.py http://api-service:80 [timeout_seconds]
The API key (scopes submit and read) comes from JOBENGINE_TEST_API_KEY; unset: no Authorization.
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


def main():
    while True:  # the API may still be rolling out
        try:
            status, body = call("POST", "/v1/jobs", JOB)
            break
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                sys.exit(f"FAIL: the API refused the test's key ({exc.code}): is tests.apiKeySecretKey in the "
                         "API keys Secret, with scopes submit and read?")
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
    main()
