"""End to end on a real cluster (kind + `make deploy`): helm test, then a burst of jobs that must
scale the default worker pool up through KEDA, every job must finish, and the pool must scale
back down. Needs kubectl and helm on a cluster where the chart is installed; not run in CI here.

    KUBE_NAMESPACE=jobengine RELEASE=jobengine JOBS=200 JOB_SECONDS=1.5 python k8s/e2e.py
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

NS = os.environ.get("KUBE_NAMESPACE", "jobengine")
RELEASE = os.environ.get("RELEASE", "jobengine")
KUBECTL = os.environ.get("KUBECTL", "kubectl")
HELM = os.environ.get("HELM", "helm")
JOBS = int(os.environ.get("JOBS", "200"))
JOB_SECONDS = float(os.environ.get("JOB_SECONDS", "1.5"))
SCALE_TIMEOUT = float(os.environ.get("SCALE_TIMEOUT", "300"))
API = f"{RELEASE}-api" if "jobengine" in RELEASE else f"{RELEASE}-jobengine-api"
WORKER = f"{RELEASE}-worker-default" if "jobengine" in RELEASE else f"{RELEASE}-jobengine-worker-default"
KEYS_SECRET = f"{RELEASE}-api-keys" if "jobengine" in RELEASE else f"{RELEASE}-jobengine-api-keys"
HEADERS = {"Content-Type": "application/json"}


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def kubectl(*args: str) -> str:
    return subprocess.run([KUBECTL, "-n", NS, *args], check=True, capture_output=True, text=True).stdout


def replicas() -> tuple[int, int]:
    status = json.loads(kubectl("get", "deployment", WORKER, "-o", "json"))
    return status["spec"].get("replicas", 0), status["status"].get("readyReplicas", 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base: str, method: str, path: str, body: object | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=HEADERS)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def main() -> int:
    log(f"helm test {RELEASE}")
    subprocess.run([HELM, "test", RELEASE, "-n", NS, "--logs", "--timeout", "3m"], check=True)

    # the helm test's own API key (submit, read), from the chart's Secret; none when auth is off
    key = subprocess.run([KUBECTL, "-n", NS, "get", "secret", KEYS_SECRET, "-o", "jsonpath={.data.helm-test-key}"],
                         capture_output=True, text=True, check=False).stdout.strip()
    if key:
        HEADERS["Authorization"] = "Bearer " + base64.b64decode(key).decode()
    spec, _ = replicas()
    log(f"{WORKER}: {spec} replica(s) before the burst")
    port = free_port()
    forward = subprocess.Popen([KUBECTL, "-n", NS, "port-forward", f"svc/{API}", f"{port}:80"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            try:
                call(base, "GET", "/healthz")
                break
            except OSError:
                time.sleep(0.2)
        job = {"type": "sleep", "payload": {"seconds": JOB_SECONDS}}
        with ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(lambda _: call(base, "POST", "/v1/jobs", job)["id"], range(JOBS)))
        log(f"submitted {len(ids)} sleep jobs of {JOB_SECONDS}s")

        peak, deadline = spec, time.monotonic() + SCALE_TIMEOUT
        while time.monotonic() < deadline and peak <= spec:
            peak = max(peak, replicas()[0])
            time.sleep(3)
        if peak <= spec:
            log(f"FAIL: {WORKER} did not scale up within {SCALE_TIMEOUT}s")
            return 1
        log(f"scaled up: {spec} -> {peak} replicas")

        pending, deadline = set(ids), time.monotonic() + SCALE_TIMEOUT + JOBS * JOB_SECONDS
        failed: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                status = call(base, "GET", f"/v1/jobs/{job_id}")["status"]
                if status in ("finished", "failed", "canceled", "stopped"):
                    pending.discard(job_id)
                    if status != "finished":
                        failed[job_id] = status
            peak = max(peak, replicas()[0])
            log(f"{len(ids) - len(pending)}/{len(ids)} jobs done, replicas {replicas()}, peak {peak}")
            time.sleep(5)
        if pending or failed:
            log(f"FAIL: {len(pending)} jobs never ended, {len(failed)} did not finish: {dict(list(failed.items())[:5])}")
            return 1
        log("every job finished")

        deadline = time.monotonic() + SCALE_TIMEOUT
        while time.monotonic() < deadline and replicas()[0] > spec:
            time.sleep(5)
        now = replicas()[0]
        if now > spec:
            log(f"FAIL: still {now} replicas {SCALE_TIMEOUT}s after the backlog drained")
            return 1
        log(f"scaled back down to {now}; e2e passed (peak {peak} replicas)")
        return 0
    finally:
        forward.terminate()
        forward.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
