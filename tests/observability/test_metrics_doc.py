"""docs/metrics.md lists exactly the metric families of jobengine.metrics, and /metrics exposes exactly those."""

from __future__ import annotations

import re

import httpx
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from jobengine import metrics
from tests.conftest import ROOT

from .conftest import Stack, Workload

DOC = ROOT / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(jobengine_[a-z0-9_]+)` \| (counter|gauge|histogram) \| ([^|]*) \| (api|worker) \| (.+) \|$")


def documented() -> dict[str, tuple[str, tuple[str, ...], str]]:
    """name -> (type, labels, exported by), from the table of docs/metrics.md."""
    rows: dict[str, tuple[str, tuple[str, ...], str]] = {}
    for line in DOC.read_text().splitlines():
        if line.startswith("| `jobengine_"):
            match = ROW.match(line)
            assert match, f"malformed row in docs/metrics.md: {line}"
            name, kind, labels, where, meaning = match.groups()
            assert meaning.strip(), f"{name}: no meaning given"
            assert name not in rows, f"{name} documented twice"
            rows[name] = (kind, tuple(re.findall(r"`([a-z_]+)`", labels)), where)
    assert rows, "no metric table in docs/metrics.md"
    return rows


def defined() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name as exposed -> (type, labels), from the objects of jobengine.metrics."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            out[value._name + "_total"] = ("counter", tuple(value._labelnames))
        elif isinstance(value, Gauge):
            out[value._name] = ("gauge", tuple(value._labelnames))
        elif isinstance(value, Histogram):
            out[value._name] = ("histogram", tuple(value._labelnames))
    return out


def exposed(url: str) -> dict[str, tuple[str, set[str]]]:
    """jobengine_* families of a /metrics page: name -> (type, label names seen)."""
    text = httpx.get(url, timeout=10).text
    out: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("jobengine_"):
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        labels: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        out[name] = (family.type, labels)
    return out


def exposed_name(metric: object) -> str:
    return metric._name + "_total" if isinstance(metric, Counter) else metric._name  # type: ignore[attr-defined]


def test_the_table_matches_the_definitions() -> None:
    table = documented()
    docs = {name: (kind, labels) for name, (kind, labels, _) in table.items()}
    code = defined()
    for where, group in (("api", metrics.API_METRICS), ("worker", metrics.WORKER_METRICS)):
        assert {exposed_name(m) for m in group} == {n for n, (_, _, w) in table.items() if w == where}, where
    assert sorted(docs) == sorted(code), "docs/metrics.md and jobengine/metrics.py list different metrics"
    for name, (kind, labels) in code.items():
        assert docs[name][0] == kind, f"{name}: documented as {docs[name][0]}, defined as {kind}"
        assert docs[name][1] == labels, f"{name}: documented labels {docs[name][1]}, defined {labels}"


def test_metrics_endpoints_expose_exactly_the_table(obs_stack: Stack, workload: Workload) -> None:
    docs = documented()
    seen = {"api": exposed(obs_stack.api_metrics_url + "/metrics"),
            "worker": exposed(obs_stack.worker_metrics_url + "/metrics")}
    for where, families in seen.items():
        expected = {name for name, (_, _, w) in docs.items() if w == where}
        missing, extra = sorted(expected - set(families)), sorted(set(families) - expected)
        assert not missing and not extra, f"{where} /metrics: missing {missing}, undocumented {extra}"
        for name, (kind, labels) in families.items():
            assert kind == docs[name][0], f"{where}: {name} is a {kind}, documented as {docs[name][0]}"
            assert labels == set(docs[name][1]), f"{where}: {name} has labels {labels}, documented {docs[name][1]}"


def test_no_job_id_in_any_label(obs_stack: Stack, workload: Workload) -> None:
    job_ids = {job_id for ids in workload.ids.values() for job_id in ids}
    for url in (obs_stack.api_metrics_url + "/metrics", obs_stack.worker_metrics_url + "/metrics"):
        text = httpx.get(url, timeout=10).text
        assert not [job_id for job_id in job_ids if job_id in text], f"a job id appears in {url}"
