"""Fixtures of the observability tests: one API + worker stack, a real Prometheus scraping it, one workload.

Package-scoped (torn down when tests/observability ends, so its worker never takes other tests' jobs),
on a redis-server of their own: the stack starts once, Prometheus sees every counter from its first value, and the
workload runs once; the metric-table test, the dashboard/alert test and the counters test read it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from jobengine.jobdata import TERMINAL
from jobengine.redis_conn import EmbeddedRedis, free_port
from tests.conftest import ROOT, Proc, service_env

RULES_FILE = ROOT / "charts" / "jobengine" / "files" / "prometheus-rules.yaml"
DASHBOARD_FILE = ROOT / "charts" / "jobengine" / "dashboards" / "jobengine.json"
JOB_TYPE_MODULES = "tests.support.jobs,tests.observability.jobs"
NAMESPACE = "jobengine-test"  # the label Prometheus adds to both targets, like the Operator's `namespace`
SCRAPE_INTERVAL = "1s"


def ensure_tool(name: str) -> str:
    """Path of prometheus/promtool; installs Debian's package when missing and root, else skips."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip(f"`{name}` is not installed (Debian package `prometheus`; installing it needs root: "
                    "sudo bash scripts/install-prometheus.sh)")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "install-prometheus.sh")], capture_output=True,
                            text=True, timeout=600)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"`{name}` could not be installed with apt-get: {result.stderr.strip()[-500:]}")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return ensure_tool("promtool")


@dataclass
class Stack:
    redis_url: str
    api_url: str
    api_metrics_url: str  # the API's /metrics port (JOBENGINE_API_METRICS_PORT), apart from api_url
    worker_metrics_url: str
    api: Proc
    worker: Proc
    client: httpx.Client

    def logs(self) -> str:
        return f"--- api ---\n{self.api.log()[-4000:]}\n--- worker ---\n{self.worker.log()[-4000:]}"


def _wait_http(url: str, proc: Proc, what: str, timeout: float = 30) -> None:
    proc.wait_ready(lambda: httpx.get(url, timeout=2).status_code == 200, what, timeout)


@pytest.fixture(scope="package")
def obs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("obs-stack")
    redis_server = EmbeddedRedis(directory=str(logs)).start()
    url = redis_server.url
    api_port, api_metrics_port, metrics_port = free_port(), free_port(), free_port()
    common = {"JOBENGINE_JOB_TYPE_MODULES": JOB_TYPE_MODULES, "JOBENGINE_QUEUES": "high,default",
              "JOBENGINE_ENV": "development"}  # local stack: no API keys
    api = Proc([sys.executable, "-m", "jobengine_api"],
               service_env(url, JOBENGINE_API_PORT=str(api_port), JOBENGINE_API_METRICS_PORT=str(api_metrics_port),
                           **common), logs / "api.log", name="api")
    worker = Proc([sys.executable, "-m", "jobengine_worker"],
                  service_env(url, JOBENGINE_WORKER_NAME="obs-worker", JOBENGINE_METRICS_PORT=str(metrics_port),
                              JOBENGINE_METRICS_HOST="127.0.0.1", **common),
                  logs / "worker.log", name="worker")
    try:
        api_url, worker_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
        api_metrics_url = f"http://127.0.0.1:{api_metrics_port}"
        _wait_http(api_url + "/healthz", api, "API")
        _wait_http(worker_url + "/metrics", worker, "worker metrics server")
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 20
        while not client.exists("rq:worker:obs-worker"):  # registered: it takes jobs
            assert worker.alive() and time.monotonic() < deadline, worker.log()
            time.sleep(0.05)
        client.close()
        with httpx.Client(base_url=api_url, timeout=30) as http:
            yield Stack(url, api_url, api_metrics_url, worker_url, api, worker, http)
    finally:
        worker.stop()
        api.stop()
        redis_server.stop()


@dataclass
class PromServer:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def api(self, path: str, **params: Any) -> Any:
        resp = self.http.get(self.url + path, params=params)
        body = resp.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, None when it returns nothing."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: more than one series: {result}"
        return float(result[0]["value"][1]) if result else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def prometheus_config(api_target: str, worker_targets: list[str], rules: Path, namespace: str,
                      interval: str) -> dict[str, Any]:
    """A scrape config like the chart's ServiceMonitor/PodMonitor give: namespace label on every series."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "jobengine-api", "static_configs": [
                {"targets": [api_target], "labels": {"namespace": namespace, "service": "jobengine-api"}}]},
            {"job_name": "jobengine-worker", "static_configs": [
                {"targets": worker_targets, "labels": {"namespace": namespace, "pool": "default"}}]},
        ],
    }


@pytest.fixture(scope="package")
def prometheus(obs_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    binary = ensure_tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(
        obs_stack.api_metrics_url.removeprefix("http://"), [obs_stack.worker_metrics_url.removeprefix("http://")],
        RULES_FILE, NAMESPACE, SCRAPE_INTERVAL)))
    port = free_port()
    log_path = work / "prometheus.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
             "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
    server = PromServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if server.http.get(server.url + "/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{server.log()}")
            time.sleep(0.1)
        # both targets up: the first scrape sees every counter at 0, before any job
        deadline = time.monotonic() + 30
        while len(server.query('up{job=~"jobengine-.*"} == 1')) < 2:
            assert time.monotonic() < deadline, f"targets not up: {server.api('/api/v1/targets')}\n{server.log()}"
            time.sleep(0.2)
        yield server
    finally:
        server.http.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# The workload: every outcome, with exact expected counts.
OK_DEFAULT, OK_HIGH, FAIL, FLAKY, SLOW = 30, 10, 6, 3, 1
SCHEDULED = 2  # obs_ok jobs of a schedule with two ticks (not submissions: no jobs_submitted)


@dataclass
class Workload:
    ids: dict[str, list[str]]
    submitted: dict[tuple[str, str], int]  # (queue, job_type) -> jobs accepted
    started: int
    finished: dict[str, int]  # outcome -> runs
    rejected: int
    prometheus: PromServer | None
    scheduled: int = 0  # jobs made by schedule ticks
    elapsed: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)


@pytest.fixture(scope="package")
def workload(obs_stack: Stack, request: pytest.FixtureRequest) -> Workload:
    """50 jobs: 40 succeed (10 of them on queue high, in one batch), 6 fail, 3 fail once and succeed on
    their retry, 1 times out; plus 1 invalid submission (422). Waits until every job has ended."""
    try:
        prom: PromServer | None = request.getfixturevalue("prometheus")  # started first: it sees the zeros
    except pytest.skip.Exception:
        prom = None
    http = obs_stack.client
    started_at = time.monotonic()
    ids: dict[str, list[str]] = {"obs_ok": [], "obs_fail": [], "obs_flaky": [], "obs_slow": []}

    def submit(job_type: str, payload: dict[str, Any], **options: Any) -> None:
        resp = http.post("/v1/jobs", json={"type": job_type, "payload": payload, **options})
        assert resp.status_code == 202, resp.text
        ids[job_type].append(resp.json()["id"])

    # a schedule with exactly two ticks (start_at and one interval later; end_at before the third)
    start = datetime.fromtimestamp(int(time.time()) + 2, timezone.utc)
    schedule = http.post("/v1/schedules", json={
        "name": "obs-two-ticks", "type": "obs_ok", "payload": {"seconds": 0.005}, "interval_seconds": 1,
        "start_at": start.isoformat(), "end_at": (start + timedelta(seconds=1.5)).isoformat()})
    assert schedule.status_code == 201, schedule.text
    submit("obs_slow", {"seconds": 5})  # first: its 1 s timeout overlaps the rest
    for n in range(OK_DEFAULT):  # the last one waits for the first (a dependency: time spent deferred)
        submit("obs_ok", {"seconds": 0.005}, **({"depends_on": [ids["obs_ok"][0]]} if n == OK_DEFAULT - 1 else {}))
    for _ in range(FAIL):
        submit("obs_fail", {})
    for _ in range(FLAKY):
        submit("obs_flaky", {})
    batch = http.post("/v1/jobs:batch", json={"jobs": [
        {"type": "obs_ok", "payload": {"seconds": 0.005}, "queue": "high"} for _ in range(OK_HIGH)]})
    assert batch.status_code == 202, batch.text
    ids["obs_ok"].extend(item["id"] for item in batch.json()["results"])
    invalid = http.post("/v1/jobs", json={"type": "obs_ok", "payload": {"seconds": -1}})
    assert invalid.status_code == 422, invalid.text

    deadline = time.monotonic() + 30
    while True:  # the schedule's two jobs ended
        runs = http.get("/v1/schedules/obs-two-ticks").json()["runs"]
        if [r["job_status"] for r in runs] == ["finished"] * SCHEDULED:
            break
        assert time.monotonic() < deadline, f"schedule runs: {runs}\n{obs_stack.logs()}"
        time.sleep(0.2)
    statuses: Counter[str] = Counter()
    for job_ids in ids.values():
        for job_id in job_ids:
            deadline = time.monotonic() + 30
            while True:
                job = http.get(f"/v1/jobs/{job_id}", params={"wait": 5}).json()
                if job["status"] in TERMINAL:
                    statuses[job["status"]] += 1
                    break
                assert time.monotonic() < deadline, f"job {job_id} did not end: {job}\n{obs_stack.logs()}"
    return Workload(
        ids=ids,
        submitted={("default", "obs_ok"): OK_DEFAULT, ("high", "obs_ok"): OK_HIGH, ("default", "obs_fail"): FAIL,
                   ("default", "obs_flaky"): FLAKY, ("default", "obs_slow"): SLOW},
        started=OK_DEFAULT + OK_HIGH + FAIL + 2 * FLAKY + SLOW + SCHEDULED, scheduled=SCHEDULED,
        finished={"succeeded": OK_DEFAULT + OK_HIGH + FLAKY + SCHEDULED, "failed": FAIL, "retried": FLAKY, "timed_out": SLOW,
                  "canceled": 0, "requeued": 0},
        rejected=1, prometheus=prom, elapsed=time.monotonic() - started_at, statuses=statuses,
    )
