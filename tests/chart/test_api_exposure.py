"""What the chart exposes of the API (issue 14): the Ingress routes /v1 and the docs only, /metrics is on a
port of its own that monitoring scrapes and the Ingress never routes, and the API accepts exactly the
queues its worker pools serve (JOBENGINE_QUEUES_DECLARED)."""

from __future__ import annotations

from typing import Any

import pytest

from jobengine.settings import Settings

from .conftest import VALUE_SETS, Rendered, template
from .test_wiring import env_of, main_container

API = "rel-jobengine-api"
DOC_PATHS = {"/docs", "/redoc", "/openapi.json"}


def config(rendered: Rendered) -> dict[str, str]:
    return rendered.get("ConfigMap", "rel-jobengine-config")["data"]


def declared(rendered: Rendered) -> list[str]:
    return Settings(queues_declared=config(rendered)["JOBENGINE_QUEUES_DECLARED"]).queues_declared


def test_the_api_declares_the_queues_of_its_enabled_pools(render, helm: str) -> None:  # type: ignore[no-untyped-def]
    assert declared(render("default")) == ["default", "high", "low"]
    assert declared(render("two-pools")) == ["default", "exports", "high", "low", "reports"]
    off = template(helm, "-f", str(VALUE_SETS["two-pools"][0]), "--set", "workerPools.high-memory.enabled=false")
    assert declared(off) == ["default", "high", "low"]  # a disabled pool serves nothing: its queues are refused
    api = main_container(render("default").get("Deployment", API))
    assert any(ref["configMapRef"]["name"] == "rel-jobengine-config" for ref in api["envFrom"])


def test_the_ingress_routes_the_api_and_its_docs_only(render, helm: str) -> None:  # type: ignore[no-untyped-def]
    for rendered in (template(helm, "--set", "ingress.enabled=true"), render("ingress-tls"), render("kind")):
        for ingress in rendered.kind("Ingress"):
            for rule in ingress["spec"]["rules"]:
                paths = {p["path"] for p in rule["http"]["paths"]}
                assert "/v1" in paths and paths <= {"/v1"} | DOC_PATHS, (rendered.name, paths)
                assert {p["backend"]["service"]["port"]["name"] for p in rule["http"]["paths"]} == {"http"}
    default = template(helm, "--set", "ingress.enabled=true").get("Ingress", API)
    assert {p["path"] for p in default["spec"]["rules"][0]["http"]["paths"]} == {"/v1"} | DOC_PATHS


@pytest.mark.parametrize("value_set", ["monitoring", "kind"])
def test_monitoring_scrapes_the_metrics_port_which_the_api_serves_apart(  # type: ignore[no-untyped-def]
        render, value_set: str) -> None:
    rendered: Rendered = render(value_set)
    container = main_container(rendered.get("Deployment", API))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = env_of(container)
    assert int(env["JOBENGINE_API_METRICS_PORT"]["value"]) == ports["metrics"] != ports["http"]
    assert int(env["JOBENGINE_API_PORT"]["value"]) == ports["http"]
    assert env["JOBENGINE_METRICS_HOST"]["value"] == "0.0.0.0"  # reachable by Prometheus in the pod network
    service = rendered.get("Service", API)
    by_name: dict[str, Any] = {p["name"]: p for p in service["spec"]["ports"]}
    assert by_name["metrics"]["targetPort"] == "metrics"
    monitor = rendered.get("ServiceMonitor", API)
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("metrics", "/metrics")]


def test_the_metrics_ports_take_the_metrics_peers_only(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("networkpolicy")
    values = VALUE_SETS["networkpolicy"][0].read_text()
    assert "metricsFrom" in values
    policy = rendered.get("NetworkPolicy", API)
    rules = {tuple(p["port"] for p in rule["ports"]): rule for rule in policy["spec"]["ingress"]}
    assert set(rules) == {("http",), ("metrics",)}
    metrics_peers = rules[("metrics",)]["from"]
    assert metrics_peers == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert all(peer not in rules[("http",)]["from"] for peer in metrics_peers)  # Prometheus does not reach /v1
