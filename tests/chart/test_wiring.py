"""The chart's wiring, checked against the running code's contracts: queue keys, the Redis
connection seen by api, workers and KEDA, drain vs grace period, selectors, monitoring files."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from jobengine import keys, metrics
from jobengine.redis_url import parse_sentinel
from jobengine.settings import Settings

from .conftest import CHART, NAMESPACE, RELEASE, VALUE_SETS, Rendered, run_helm, template

KEDA_SETS = sorted(n for n in VALUE_SETS if n.startswith(("keda", "two-pools", "external-redis", "networkpolicy", "kind",
                                                           "dev")) and n != "keda-off")


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def main_container(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]["containers"][0]


def redis_view(container: dict[str, Any]) -> dict[str, Any]:
    """What a jobengine container gets about Redis: the URL (password substituted) and the Secret."""
    env = env_of(container)
    names = [e["name"] for e in container["env"]]
    url = env["JOBENGINE_REDIS_URL"]["value"]
    secret = None
    if "REDIS_PASSWORD" in env:
        # Kubernetes expands $(REDIS_PASSWORD) only when it is defined earlier in the list.
        assert names.index("REDIS_PASSWORD") < names.index("JOBENGINE_REDIS_URL")
        assert "$(REDIS_PASSWORD)" in url
        ref = env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        secret = (ref["name"], ref["key"])
    else:
        assert "$(" not in url
    if sentinel := parse_sentinel(url.replace("$(REDIS_PASSWORD)", "pw")):  # what the services will read
        return {"url": url, "secret": secret, "scheme": url.partition("://")[0], "host": None, "port": None,
                "db": str(sentinel.db), "username": sentinel.username or "", "query": urlparse(url).query,
                "sentinel": sentinel}
    parsed = urlparse(url.replace("$(REDIS_PASSWORD)", "pw"))
    return {"url": url, "secret": secret, "scheme": parsed.scheme, "host": parsed.hostname, "port": parsed.port,
            "db": parsed.path.lstrip("/"), "username": parsed.username or "", "query": parsed.query, "sentinel": None}


QUEUE_TRIGGERS = ("redis", "redis-sentinel")


# ---------------- KEDA: the list names are the code's queue keys ----------------

@pytest.mark.parametrize("value_set", KEDA_SETS)
def test_scaledobject_list_names_are_the_queue_keys_of_the_code(render, value_set: str) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render(value_set)
    scaled = rendered.kind("ScaledObject")
    assert scaled, "KEDA value set without ScaledObject"
    for so in scaled:
        target = rendered.get("Deployment", so["spec"]["scaleTargetRef"]["name"])
        queues = env_of(main_container(target))["JOBENGINE_QUEUES"]["value"].split(",")
        assert Settings(queues=",".join(queues)).queues == queues  # the worker accepts them
        list_names = [t["metadata"]["listName"] for t in so["spec"]["triggers"] if t["type"] in QUEUE_TRIGGERS]
        assert list_names == [key for q in queues for key in (keys.queue(q), keys.paused(q))]  # each queue's list
        # and its pause marker (the formula counts a paused queue's waiting jobs as zero)


@pytest.mark.parametrize("value_set", KEDA_SETS)
def test_redis_address_and_password_reach_api_worker_and_keda_the_same_way(render, value_set: str) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render(value_set)
    views = [redis_view(main_container(w)) for w in rendered.component("api") + rendered.component("worker")]
    assert len({v["url"] for v in views}) == 1, "api and workers get different JOBENGINE_REDIS_URLs"
    view = views[0]
    auths = {a["metadata"]["name"]: a for a in rendered.kind("TriggerAuthentication")}
    for so in rendered.kind("ScaledObject"):
        for trigger in (t for t in so["spec"]["triggers"] if t["type"] in QUEUE_TRIGGERS):
            meta = trigger["metadata"]
            sentinel = view["sentinel"]
            if sentinel:  # KEDA asks the same sentinels for the same primary
                assert trigger["type"] == "redis-sentinel"
                assert meta["addresses"] == ", ".join(f"{h}:{p}" for h, p in sentinel.sentinels)
                assert meta["sentinelMaster"] == sentinel.primary
                assert meta.get("sentinelUsername") == sentinel.sentinel_username
            else:
                assert trigger["type"] == "redis"
                assert meta["address"] == f"{view['host']}:{view['port']}"
            assert meta["databaseIndex"] == view["db"]
            own_user = bool(rendered.kind("StatefulSet"))  # the chart's Redis: KEDA's own read-only ACL user
            assert meta.get("username", "") == ("keda" if own_user else view["username"])
            assert (meta.get("enableTLS") == "true") == view["scheme"].startswith("rediss")
            if view["secret"]:
                auth = auths[trigger["authenticationRef"]["name"]]
                refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
                assert refs["password"] == (("rel-jobengine-redis-keda", "keda-password") if own_user else view["secret"])
                if sentinel:
                    assert refs.get("sentinelPassword") == (view["secret"] if sentinel.sentinel_password else None)
            else:
                assert "authenticationRef" not in trigger
    if view["secret"] and view["secret"][0].startswith("rel-"):  # chart-managed: the Secret is rendered
        secret = rendered.get("Secret", view["secret"][0])
        assert view["secret"][1] in secret["data"]
    redis = rendered.kind("StatefulSet")
    if redis:
        sts = redis[0]
        svc_names = {s["metadata"]["name"] for s in rendered.kind("Service")}
        assert view["host"] == f"{sts['metadata']['name']}.{NAMESPACE}.svc" and sts["metadata"]["name"] in svc_names
        ref = env_of(main_container(sts))["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == view["secret"]


def test_external_redis_tls_wiring(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("external-redis-tls")
    for workload in rendered.component("api") + rendered.component("worker"):
        container = main_container(workload)
        view = redis_view(container)
        assert view["scheme"] == "rediss" and view["secret"] == ("managed-redis", "password")
        assert (view["host"], view["port"], view["db"], view["username"]) == ("redis.example.internal", 6380, "2", "jobengine")
        ca_path = dict(p.split("=") for p in view["query"].split("&"))["ssl_ca_certs"]
        mount = next(m for m in container["volumeMounts"] if m["name"] == "redis-tls")
        volume = next(v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "redis-tls")
        assert ca_path == f"{mount['mountPath']}/{volume['secret']['items'][0]['path']}"
        assert volume["secret"]["secretName"] == "managed-redis-ca"
    auth = rendered.kind("TriggerAuthentication")[0]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs["ca"] == ("managed-redis-ca", "ca.crt")
    assert not rendered.kind("StatefulSet")
    assert [s["metadata"]["name"] for s in rendered.kind("Secret")] == ["rel-jobengine-api-keys"]  # no Redis one


def test_external_redis_sentinel_wiring(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("external-redis-sentinel")
    for workload in rendered.component("api") + rendered.component("worker"):
        url = redis_view(main_container(workload))["url"].replace("$(REDIS_PASSWORD)", "pw")
        assert Settings(redis_url=url).redis_url == url  # the services start with it
        target = parse_sentinel(url)
        assert target is not None and target.ssl and target.primary == "jobs-primary" and target.db == 1
        assert target.sentinels == (("sentinel-0.sentinel.redis.svc", 26379), ("sentinel-1.sentinel.redis.svc", 26380),
                                    ("sentinel-2.sentinel.redis.svc", 26379))
        assert target.password == "pw" and target.sentinel_password == "pw"
        assert target.sentinel_username == "jobengine-sentinel"
        assert target.ssl_options["ssl_ca_certs"].startswith("/etc/jobengine/redis-tls/")
    assert not rendered.kind("StatefulSet")


def test_redis_url_parses_with_redis_py(render) -> None:  # type: ignore[no-untyped-def]
    from redis.connection import parse_url

    for value_set in ("default", "external-redis-tls", "external-redis-password"):
        view = redis_view(main_container(render(value_set).component("worker")[0]))
        kwargs = parse_url(view["url"].replace("$(REDIS_PASSWORD)", "pw"))
        assert kwargs["host"] == view["host"] and kwargs["port"] == view["port"]
        assert kwargs.get("password") == ("pw" if view["secret"] else None)


# ---------------- in-flight scaling ----------------

def test_inflight_scaling_counts_running_jobs(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("keda-inflight")
    api_service = rendered.component("api")[0]["metadata"]["name"]
    for so in rendered.kind("ScaledObject"):
        triggers = so["spec"]["triggers"]
        names = [t["name"] for t in triggers]
        modifiers = so["spec"]["advanced"]["scalingModifiers"]
        assert set(re.findall(r"[a-z]+[0-9]*", modifiers["formula"])) == set(names)  # every trigger, nothing else
        prom = next(t for t in triggers if t["type"] == "prometheus")
        query = prom["metadata"]["query"]
        assert metrics.QUEUE_IN_FLIGHT._name in query  # a series the api really exports
        assert f'namespace="{NAMESPACE}"' in query and f'service="{api_service}"' in query
        assert "vector(0)" not in query and prom["metadata"]["ignoreNullValues"] == "false"
    monitor = rendered.kind("ServiceMonitor")[0]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= rendered.get("Service", api_service)["metadata"]["labels"].items()


def test_inflight_needs_keda(helm: str) -> None:
    with pytest.raises(Exception, match="keda.inFlight.enabled needs keda.enabled"):
        template(helm, "--set", "keda.inFlight.enabled=true")


# ---------------- drain deadline vs grace period ----------------

def test_worker_drain_is_below_termination_grace(rendered: Rendered) -> None:
    workers = rendered.component("worker")
    assert workers
    for worker in workers:
        drain = float(env_of(main_container(worker))["JOBENGINE_DRAIN_SECONDS"]["value"])
        grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert drain + 5 <= grace, f"{worker['metadata']['name']}: drain {drain}s vs grace {grace}s"


def test_grace_follows_a_fractional_drain(helm: str) -> None:
    rendered = template(helm, "--set-json", "worker.drainSeconds=42.5", "--set", "worker.autoscaling.jobTimeoutSeconds=40")
    spec = rendered.component("worker")[0]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 53  # ceil(42.5) + 10


# ---------------- selectors and ports ----------------

def test_selectors_match_pod_labels(rendered: Rendered) -> None:
    pods = rendered.pods()

    def matching(selector: dict[str, str]) -> list[str]:
        return [name for name, labels, _ in pods if selector.items() <= labels.items()]

    for workload in rendered.workloads():
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
        assert not {"helm.sh/chart", "app.kubernetes.io/version"} & selector.keys()
        # a workload's selector must not catch another workload's pods
        assert matching(selector) == [workload["metadata"]["name"]]
    for svc in rendered.kind("Service"):
        targets = [spec for name, labels, spec in pods if svc["spec"]["selector"].items() <= labels.items()]
        assert targets, f"Service {svc['metadata']['name']} selects no pod"
        for port in svc["spec"]["ports"]:
            names = {p["name"] for spec in targets for c in spec["containers"] for p in c.get("ports", [])}
            assert port["targetPort"] in names
    for pdb in rendered.kind("PodDisruptionBudget"):
        assert matching(pdb["spec"]["selector"]["matchLabels"]), pdb["metadata"]["name"]
    for policy in rendered.kind("NetworkPolicy"):
        assert matching(policy["spec"]["podSelector"]["matchLabels"]), policy["metadata"]["name"]
    for monitor in rendered.kind("PodMonitor"):
        selected = [spec for name, labels, spec in pods if monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert selected
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            for spec in selected:
                assert endpoint["port"] in {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
    for monitor in rendered.kind("ServiceMonitor"):
        services = [s for s in rendered.kind("Service")
                    if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert len(services) == 1
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in services[0]["spec"]["ports"]}
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for scaler in rendered.kind(kind):
            rendered.get("Deployment", scaler["spec"]["scaleTargetRef"]["name"])
            deployment = rendered.get("Deployment", scaler["spec"]["scaleTargetRef"]["name"])
            assert "replicas" not in deployment["spec"], "an autoscaled Deployment must not pin replicas"
    for ingress in rendered.kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                svc = rendered.get("Service", path["backend"]["service"]["name"])
                assert path["backend"]["service"]["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}


def test_only_api_worker_and_keda_reach_redis(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("networkpolicy")
    policy = rendered.get("NetworkPolicy", "rel-jobengine-redis")
    peers = policy["spec"]["ingress"][0]["from"]
    in_namespace = [p["podSelector"]["matchLabels"] for p in peers if "namespaceSelector" not in p]
    components = {name: labels.get("app.kubernetes.io/component") for name, labels, _ in rendered.pods()}
    allowed = {components[name] for name, labels, _ in rendered.pods()
               if any(sel.items() <= labels.items() for sel in in_namespace)}
    assert allowed == {"api", "worker"}
    keda = [p for p in peers if "namespaceSelector" in p]
    assert keda and keda[0]["podSelector"]["matchLabels"] == {"app": "keda-operator"}
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "redis", "protocol": "TCP"}]
    # the helm test pod may still reach the api when apiFrom narrows it
    api_policy = rendered.get("NetworkPolicy", "rel-jobengine-api")
    test_labels = rendered.kind("Pod")[0]["metadata"]["labels"]
    assert any("podSelector" in p and p["podSelector"]["matchLabels"].items() <= test_labels.items()
               and "namespaceSelector" not in p for p in api_policy["spec"]["ingress"][0]["from"])


def test_two_pools_have_their_own_deployment_and_scaler(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("two-pools")
    workers = {w["metadata"]["labels"]["jobengine.io/pool"]: w for w in rendered.component("worker")}
    assert set(workers) == {"default", "high-memory"}
    queues = {pool: env_of(main_container(w))["JOBENGINE_QUEUES"]["value"] for pool, w in workers.items()}
    assert queues == {"default": "high,default,low", "high-memory": "reports,exports"}
    big = workers["high-memory"]["spec"]["template"]["spec"]
    assert big["nodeSelector"] == {"workload": "high-memory"}
    assert big["containers"][0]["resources"]["limits"]["memory"] == "8Gi"
    assert big["terminationGracePeriodSeconds"] == 130
    # defaults not overridden by the pool are inherited
    assert big["containers"][0]["resources"]["requests"]["cpu"] == "1"
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in rendered.kind("ScaledObject")}
    assert scaled[workers["high-memory"]["metadata"]["name"]]["spec"]["minReplicaCount"] == 0
    assert scaled[workers["default"]["metadata"]["name"]]["spec"]["minReplicaCount"] == 1


def test_pool_override_can_switch_things_off(helm: str) -> None:
    """false and 0 in a pool override the defaults (sprig's mergeOverwrite would drop them)."""
    rendered = template(helm, "--set", "workerPools.default.autoscaling.enabled=false",
                        "--set", "workerPools.default.replicas=0", "--set", "workerPools.default.pdb.enabled=false")
    worker = rendered.component("worker")[0]
    assert worker["spec"]["replicas"] == 0
    assert not rendered.kind("HorizontalPodAutoscaler") or all(
        h["spec"]["scaleTargetRef"]["name"] != worker["metadata"]["name"] for h in rendered.kind("HorizontalPodAutoscaler"))
    assert all(p["metadata"]["name"] != worker["metadata"]["name"] for p in rendered.kind("PodDisruptionBudget"))


# ---------------- config rollouts ----------------

def test_config_change_rolls_api_and_workers(helm: str, render) -> None:  # type: ignore[no-untyped-def]
    def checksums(r: Rendered) -> set[str]:
        return {w["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                for w in r.component("api") + r.component("worker")}

    base = checksums(render("default"))
    assert len(base) == 1
    assert checksums(template(helm, "--set", "config.logLevel=DEBUG")) != base
    assert checksums(template(helm, "--set", "api.replicas=3")) == base


# ---------------- security defaults ----------------

def test_secure_pod_defaults(rendered: Rendered) -> None:
    for name, _, spec in rendered.pods():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            # only the Tilt values (k8s/values-dev.yaml) open the root filesystem, for live_update
            assert ctx["readOnlyRootFilesystem"] is True or rendered.name == "dev", name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert "memory" in container["resources"]["limits"], name
            assert ":latest" not in container["image"], name


def test_redis_is_official_durable_and_password_protected(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("default")
    sts = rendered.kind("StatefulSet")[0]
    container = main_container(sts)
    assert container["image"] == "redis:7.4-alpine"
    assert "bitnami" not in rendered.manifest.lower()
    conf = rendered.get("ConfigMap", "rel-jobengine-redis")["data"]["redis.conf"].splitlines()
    for line in ("appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction",
                 "stream-node-max-bytes 512", "include /run/redis/auth.conf"):
        assert line in conf
    # a maxmemory below the container's limit by default: refusals (503) instead of an OOM kill
    assert "maxmemory 700mb" in conf and container["resources"]["limits"]["memory"] == "1Gi"
    assert "$REDIS_PASSWORD" in container["args"][0] and "user default reset on >%s" in container["args"][0]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"


# ---------------- monitoring files ----------------

def test_dashboard_configmap_holds_the_dashboard_file(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("monitoring")
    cm = rendered.get("ConfigMap", "rel-jobengine-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    on_disk = json.loads((CHART / "dashboards" / "jobengine.json").read_text())
    dashboard = json.loads(cm["data"]["jobengine.json"])
    # the file's dashboard, with a uid and title of this release (two installs must not share a uid)
    assert dashboard["uid"].startswith("jobengine-") and len(dashboard["uid"]) <= 40
    assert dashboard["title"] == f"jobengine ({NAMESPACE}/{RELEASE})"
    assert {k: v for k, v in dashboard.items() if k not in ("uid", "title")} == \
        {k: v for k, v in on_disk.items() if k not in ("uid", "title")}


def test_two_releases_get_two_dashboard_uids(helm: str) -> None:
    uids = set()
    for release, namespace in (("a", "jobs"), ("b", "jobs"), ("a", "other")):
        proc = run_helm(helm, "template", release, str(CHART), "--namespace", namespace, "--set", "monitoring.enabled=true",
                        "--set", "secrets.generateWithoutLookup=true", "-s", "templates/monitoring/dashboard-configmap.yaml")
        assert proc.returncode == 0, proc.stderr
        uids.add(json.loads(yaml.safe_load(proc.stdout)["data"]["jobengine.json"])["uid"])
    assert len(uids) == 3, uids


def test_prometheus_rule_holds_the_rule_file(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("monitoring")
    rule = rendered.kind("PrometheusRule")[0]
    assert rule["metadata"]["labels"]["release"] == "prom"
    on_disk = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"]["groups"] == on_disk["groups"]
    for monitor in rendered.kind("ServiceMonitor") + rendered.kind("PodMonitor"):
        assert monitor["metadata"]["labels"]["release"] == "prom"


def test_tracing_env(render) -> None:  # type: ignore[no-untyped-def]
    data = render("monitoring").get("ConfigMap", "rel-jobengine-config")["data"]
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert data["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert not any(k.startswith("OTEL_") for k in render("default").get("ConfigMap", "rel-jobengine-config")["data"])


# ---------------- helm test ----------------

def test_helm_test_pod_targets_the_api_service(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("default")
    pod = rendered.kind("Pod")[0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = pod["spec"]["containers"][0]["command"]
    assert command[:2] == ["python", "-c"]
    assert command[2] == (CHART / "files" / "helm-test.py").read_text()
    svc = rendered.component("api")[0]["metadata"]["name"]
    port = rendered.get("Service", svc)["spec"]["ports"][0]["port"]
    assert command[3] == f"http://{svc}:{port}"
