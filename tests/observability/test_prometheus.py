"""A real Prometheus scrapes the API and a worker during a workload with every outcome; every dashboard
panel and every alert expression is evaluated through its HTTP API, and the counters match the workload."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import pytest
import yaml

from .conftest import DASHBOARD_FILE, NAMESPACE, RULES_FILE, PromServer, Stack, Workload
from .external_series import DOCUMENTED, PROMETHEUS

RATE_WINDOW = "1m"  # stands for $__rate_interval: the workload and its scrapes fit in it
VARIABLES = {"namespace": NAMESPACE, "pool": ".*", "queue": ".*", "job_type": ".*", "__rate_interval": RATE_WINDOW,
             "__interval": RATE_WINDOW, "__range": RATE_WINDOW}
OBS = 'job_type=~"obs_.*"'
# series exported by the workers (docs/metrics.md, column "from"): the ones the pool variable filters
WORKER_SERIES = ("jobengine_jobs_started", "jobengine_jobs_finished", "jobengine_jobs_recovered", "jobengine_job_",
                 "jobengine_worker_")


def external_only(expr: str) -> bool:
    """A panel fed only by exporters that do not run here (external_series.py): checked by name, not data."""
    return not re.search(r"\bjobengine_", expr) and bool(re.search(r"\b(?:redis|keda)_", expr))


def expand(expr: str) -> str:
    """Grafana variables -> concrete values: the namespace of the scrape config, `.*` for All."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in VARIABLES, f"unknown variable ${name} in {expr}"
        return VARIABLES[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dash["panels"]:
        out.extend(panels(panel) if panel.get("panels") else [])
        if panel.get("type") != "row":
            out.append(panel)
    return out


def panel_targets() -> list[tuple[str, str]]:
    return [(f"{p['title']} [{t['refId']}]", t["expr"]) for p in panels(dashboard()) for t in p.get("targets", [])]


def alert_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES_FILE.read_text())
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in doc["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def prom(workload: Workload, obs_stack: Stack) -> PromServer:
    if workload.prometheus is None:
        pytest.skip("no prometheus binary (see the skip reason of the prometheus fixture)")
    prom = workload.prometheus
    # the last outcomes written reach Prometheus with the next scrapes
    expected_runs = sum(workload.finished.values())
    deadline = time.monotonic() + 20
    while True:
        runs = prom.value(f"sum(jobengine_jobs_finished_total{{{OBS}}})")
        e2e = prom.value(f"sum(jobengine_job_e2e_seconds_count{{{OBS}}})")
        if runs == expected_runs and e2e == sum(workload.submitted.values()) + workload.scheduled:
            break
        assert time.monotonic() < deadline, f"Prometheus saw {runs} runs, {e2e} ended jobs; expected {expected_runs}"
        time.sleep(0.25)
    # The HTTP panels need requests between two scrapes of the API (a scrape is no request of its own:
    # /metrics has its port, outside the HTTP metrics): probe the API until Prometheus sees a request rate,
    # which also takes scrapes of the queue gauges after the workload.
    rate = f'sum(rate(jobengine_http_request_duration_seconds_count{{route="/healthz"}}[{RATE_WINDOW}]))'
    deadline = time.monotonic() + 20
    while not prom.value(rate):
        assert time.monotonic() < deadline, "Prometheus saw no HTTP request rate"
        obs_stack.client.get("/healthz").raise_for_status()
        time.sleep(0.25)
    return prom


def test_workload_ended_as_planned(workload: Workload) -> None:
    assert workload.statuses == {"finished": 43, "failed": 7}


def test_counters_match_the_workload_exactly(prom: PromServer, workload: Workload) -> None:
    assert prom.value("sum(jobengine_jobs_submitted_total)") == 50
    for (queue, job_type), count in workload.submitted.items():
        assert prom.value(f'sum(jobengine_jobs_submitted_total{{queue="{queue}",job_type="{job_type}"}})') == count
    assert prom.value(f"sum(jobengine_jobs_started_total{{{OBS}}})") == workload.started == 55  # 2 of a schedule
    for outcome, count in workload.finished.items():
        got = prom.value(f'sum(jobengine_jobs_finished_total{{{OBS},outcome="{outcome}"}})')
        assert got == count, f"outcome {outcome}: {got} != {count}"
    assert workload.finished == {"succeeded": 45, "failed": 6, "retried": 3, "timed_out": 1, "canceled": 0,
                                 "requeued": 0}
    assert prom.value('sum(jobengine_jobs_finished_total{job_type="obs_ok",queue="high",outcome="succeeded"})') == 10
    assert prom.value('sum(jobengine_jobs_rejected_total{reason="validation"})') == 1
    assert prom.value("sum(jobengine_jobs_rejected_total)") == 1
    for histogram, count in (("wait", 55), ("run", 55), ("e2e", 52)):
        assert prom.value(f"sum(jobengine_job_{histogram}_seconds_count{{{OBS}}})") == count, histogram
    # the timeout shows in the run time: the obs_slow run took its 1 s timeout, not its 5 s sleep
    slow = prom.value('sum(jobengine_job_run_seconds_sum{job_type="obs_slow"})')
    assert slow is not None and 0.9 < slow < 3
    http = 'jobengine_http_requests_total{method="POST",route="%s",status="%s"}'
    assert prom.value("sum(%s)" % http % ("/v1/jobs", "202")) == 40
    assert prom.value("sum(%s)" % http % ("/v1/jobs", "422")) == 1
    assert prom.value("sum(%s)" % http % ("/v1/jobs:batch", "202")) == 1
    assert prom.value('sum(jobengine_http_request_duration_seconds_count{route="/v1/jobs",method="POST"})') == 41
    # queues and workers after the workload: nothing waiting, the failed registry holds the 7 failures
    assert prom.value("sum(max by (queue) (jobengine_queue_depth))") == 0
    assert prom.value("sum(max by (queue) (jobengine_queue_in_flight))") == 0
    assert prom.value('max(jobengine_queue_failed{queue="default"})') == 7
    assert prom.value('max(jobengine_queue_workers{queue="default"})') == 1
    assert prom.value("count(jobengine_worker_idle)") == 1
    assert prom.value("sum(jobengine_worker_busy)") == 0
    assert prom.value("min(jobengine_redis_up)") == 1
    # the schedule: two ticks, each enqueued once (by one of the API's loop), each late by a measured amount
    assert prom.value('sum(jobengine_schedule_fires_total{outcome="enqueued"})') == workload.scheduled
    assert prom.value("sum(jobengine_schedule_lateness_seconds_count)") == workload.scheduled
    assert prom.value('max(jobengine_schedules{state="ended"})') == 1


def test_dashboard_is_templated_for_the_grafana_sidecar() -> None:
    dash = dashboard()
    assert dash["uid"] == "jobengine" and "id" not in dash and "__inputs" not in dash
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "pool", "queue", "job_type"):
        assert variables[name]["type"] == "query" and variables[name]["includeAll"], name
    # the pool variable filters every series a worker exports (the PodMonitor adds `pool`), and nothing else
    for panel in panels(dash):
        for target in panel["targets"]:
            for selector in re.findall(r"\b(jobengine_[a-z_]+)\{([^}]*)\}", target["expr"]):
                worker = selector[0].startswith(WORKER_SERIES)
                assert ('pool=~"$pool"' in selector[1]) == worker, f"{panel['title']}: {selector}"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(dash):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'namespace=~"$namespace"' in target["expr"], f"{panel['title']}: not filtered by namespace"
    titles = " ".join(p["title"].lower() for p in panels(dash))
    for needed in ("redis memory", "rejected", "aof", "started /s", "wait", "run time", "end-to-end", "failure ratio", "retries", "queue depth",
                   "in flight", "workers busy", "saturation", "requests /s", "5xx", "latency", "schedules by state",
                   "schedule fires", "schedule fire lateness"):
        assert needed in titles, f"no panel about {needed}"


def test_every_panel_returns_data(prom: PromServer) -> None:
    problems = []
    for title, expr in panel_targets():
        if external_only(expr):
            continue
        try:
            result = prom.query(expand(expr))
        except AssertionError as exc:
            problems.append(f"{title}: {exc}")
            continue
        values = [float(r["value"][1]) for r in result]
        if not values:
            problems.append(f"{title}: no data for {expand(expr)}")
        elif all(math.isnan(v) for v in values):
            problems.append(f"{title}: only NaN for {expand(expr)}")
    assert not problems, "\n".join(problems)


def test_dashboard_variables_find_their_values(prom: PromServer) -> None:
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        series = prom.query(expand(match.group(1)))
        found = {s["metric"].get(match.group(2)) for s in series} - {None}
        assert found, f"variable {variable['name']}: no values"
        if variable["name"] == "namespace":
            assert found == {NAMESPACE}


def test_every_alert_expression_evaluates_and_stays_silent(prom: PromServer) -> None:
    # the workload is healthy by the alerts' standards: 7 of 50 jobs failed, but fewer than 10 of a type
    for name, expr in alert_exprs():
        assert prom.query(expr) == [], f"{name} fires after the workload"
    # Prometheus itself loaded the rule file and evaluates every rule without error
    deadline = time.monotonic() + 10
    while True:
        rules = [r for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("2") for r in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    assert {r["name"] for r in rules} == {name for name, _ in alert_exprs()}
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
        assert rule["state"] == "inactive", rule["name"]


def test_every_expression_names_exported_series(prom: PromServer, obs_stack: Stack) -> None:
    exported = set(prom.api("/api/v1/label/__name__/values"))
    exprs = [e for _, e in panel_targets()] + [e for _, e in alert_exprs()]
    exprs += [v["query"]["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    named = {name for expr in exprs for name in re.findall(r"\bjobengine_[a-z0-9_]+", expr)}
    assert named and named <= exported, f"not exported: {sorted(named - exported)}"
    # redis_exporter and KEDA do not run here: their names must be the documented ones (external_series.py)
    external = {name for expr in exprs for name in re.findall(r"\b(?:redis|keda)_[a-z0-9_]+", expr)}
    assert external and external <= DOCUMENTED, f"not documented by the exporter: {sorted(external - DOCUMENTED)}"
    assert "up" in exported and PROMETHEUS <= exported
