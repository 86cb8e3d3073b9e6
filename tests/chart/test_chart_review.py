"""The rest of the chart review (issue 15): names, probes, rollouts, secrets, ServiceAccounts."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import yaml

from .conftest import CHART, KUBERNETES_VERSION, NAMESPACE, RenderError, run_helm

LONG_RELEASE = "r" * 47  # helm allows 53; 47 made a 72-character Service name before
POOL_A = "p" * 29 + "a"  # the longest pool names the schema allows, equal but for the last character
POOL_B = "p" * 29 + "b"


def render_release(helm: str, release: str, *args: str, lookup_free: bool = True) -> list[dict[str, Any]]:
    allow = ["--set", "secrets.generateWithoutLookup=true"] if lookup_free else []
    proc = run_helm(helm, "template", release, str(CHART), "--namespace", NAMESPACE,
                    "--kube-version", KUBERNETES_VERSION, *allow, *args)
    if proc.returncode != 0:
        raise RenderError(proc.stderr)
    return [o for o in yaml.safe_load_all(proc.stdout) if o]


def two_long_pools() -> list[str]:
    return ["--set", f"workerPools.{POOL_A}.queues={{a}}", "--set", f"workerPools.{POOL_B}.queues={{b}}"]


def test_every_name_fits_a_dns_label_with_a_long_release(helm: str) -> None:
    for extra in ([], ["-f", str(CHART / "ci/monitoring-values.yaml")], ["-f", str(CHART / "ci/keda-values.yaml")]):
        objects = render_release(helm, LONG_RELEASE, *extra, *two_long_pools())
        too_long = [(o["kind"], o["metadata"]["name"]) for o in objects if len(o["metadata"]["name"]) > 63]
        assert not too_long, too_long
        names = Counter((o["kind"], o["metadata"]["name"]) for o in objects)
        assert all(n == 1 for n in names.values()), [k for k, n in names.items() if n > 1]


def test_two_long_pools_never_collapse_to_one_name(helm: str) -> None:
    objects = render_release(helm, LONG_RELEASE, *two_long_pools())
    workers = [o for o in objects if o["kind"] == "Deployment"
               and o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"]
    names = {o["metadata"]["labels"]["jobengine.io/pool"]: o["metadata"]["name"] for o in workers}
    assert set(names) >= {POOL_A, POOL_B}
    assert names[POOL_A] != names[POOL_B]
    assert all(len(n) <= 63 for n in names.values())


def test_short_names_are_unchanged(helm: str) -> None:
    """Releases that fitted keep their names (a rename would orphan the Redis volume)."""
    objects = render_release(helm, "rel")
    assert {"rel-jobengine-api", "rel-jobengine-redis"} <= {o["metadata"]["name"] for o in objects}


# ---------------- API rollouts ----------------

def api_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-api"))["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_api_grace_period_is_derived_from_the_pause_and_the_longest_long_poll(helm: str) -> None:
    for max_wait, pause in ((30, 5), (120, 10)):
        spec = api_pod(render_release(helm, "rel", "--set", f"api.maxWaitSeconds={max_wait}",
                                      "--set", f"api.preStop.seconds={pause}"))
        container = spec["containers"][0]
        env = env_of(container)
        graceful = float(env["JOBENGINE_API_GRACEFUL_SHUTDOWN_SECONDS"])
        assert float(env["JOBENGINE_MAX_WAIT_SECONDS"]) == max_wait
        assert graceful >= max_wait  # a long-poll running at SIGTERM ends whole
        assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": pause}}
        assert spec["terminationGracePeriodSeconds"] > pause + graceful  # SIGKILL only after both


def test_api_pre_stop_exec_for_clusters_before_1_30(helm: str) -> None:
    spec = api_pod(render_release(helm, "rel", "--set", "api.preStop.mode=exec"))
    command = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python", "-c"] and "sleep(5)" in command[2]
    spec = api_pod(render_release(helm, "rel", "--set", "api.preStop.mode=none"))
    assert "lifecycle" not in spec["containers"][0]


# ---------------- probes ----------------

def test_worker_liveness_reads_the_loop_not_redis(helm: str) -> None:
    for extra in ([], ["-f", str(CHART / "ci/scaledjob-values.yaml")]):
        objects = render_release(helm, "rel", *extra)
        pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]
        pods += [o["spec"]["jobTargetRef"]["template"]["spec"] for o in objects if o["kind"] == "ScaledJob"]
        workers = [(p, c) for p in pods for c in p["containers"] if c["name"] == "worker"]
        assert workers
        for pod, container in workers:
            for kind in ("livenessProbe", "startupProbe"):
                assert container[kind]["exec"]["command"] == ["jobengine-worker-health", "--live"], kind
            if "readinessProbe" in container:  # readiness may ask Redis
                assert container["readinessProbe"]["exec"]["command"] == ["jobengine-worker-health"]
            path = env_of(container)["JOBENGINE_LIVENESS_FILE"]
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert path.startswith(mounts["tmp"] + "/")  # writable under the read-only root
            assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == "tmp")


def test_api_readiness_keeps_endpoints_through_a_redis_blip(helm: str) -> None:
    container = api_pod(render_release(helm, "rel"))["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"  # the API answers its own 503s
    container = api_pod(render_release(helm, "rel", "--set", "api.probes.readinessPath=/readyz"))["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


# ---------------- generated secrets ----------------

def render_text(helm: str, *args: str) -> str:
    proc = run_helm(helm, "template", "rel", str(CHART), "--namespace", NAMESPACE,
                    "--kube-version", KUBERNETES_VERSION, *args)
    if proc.returncode != 0:
        raise RenderError(proc.stderr)
    return proc.stdout


def test_a_render_without_lookup_is_stable_or_refused(helm: str) -> None:
    """helm template (as Argo CD and helmfile run it) cannot keep a generated secret: it refuses, naming
    the one-time step; with the secrets given, two renders are identical."""
    with pytest.raises(RenderError, match=r"(?s)redis.auth.*kubectl -n jobs create secret generic rel-redis-auth"):
        render_text(helm)
    with pytest.raises(RenderError, match=r"tests.enabled.*apiKeys.existingSecret"):
        render_text(helm, "--set", "redis.auth.existingSecret=rel-redis-auth")
    for given in (["--set", "redis.auth.existingSecret=rel-redis-auth", "--set", "apiKeys.existingSecret=keys"],
                  ["--set", "redis.auth.existingSecret=rel-redis-auth", "--set", "tests.enabled=false"],
                  ["--set", "redis.auth.password=p4ss", "--set", "apiKeys.enabled=false"],
                  ["-f", str(CHART / "ci/external-redis-password-values.yaml"), "--set", "tests.enabled=false"],
                  ["-f", str(CHART / "ci/keda-values.yaml"), "--set", "redis.auth.existingSecret=rel-redis-auth",
                   "--set", "redis.kedaUser.existingSecret=rel-redis-keda", "--set", "tests.enabled=false"]):
        assert render_text(helm, *given) == render_text(helm, *given), given
    # KEDA's own Redis user (its generated password is kept only by lookup too)
    with pytest.raises(RenderError, match=r"(?s)redis.kedaUser.*create secret generic rel-redis-keda"):
        render_text(helm, "-f", str(CHART / "ci/keda-values.yaml"), "--set", "redis.auth.existingSecret=rel-redis-auth",
                    "--set", "tests.enabled=false")


# ---------------- ServiceAccounts ----------------

def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(component, pod spec) of every pod the chart renders."""
    out = [(o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"], o["spec"]["template"]["spec"])
           for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    out += [("worker", o["spec"]["jobTargetRef"]["template"]["spec"]) for o in objects if o["kind"] == "ScaledJob"]
    out += [("test", o["spec"]) for o in objects if o["kind"] == "Pod"]
    return out


def test_one_service_account_per_component_and_no_automounted_token(helm: str) -> None:
    for extra in ([], ["-f", str(CHART / "ci/keda-values.yaml")], ["-f", str(CHART / "ci/scaledjob-values.yaml")]):
        objects = render_release(helm, "rel", *extra)
        accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
        assert set(accounts) == {"rel-jobengine-api", "rel-jobengine-worker", "rel-jobengine-redis"}, extra
        assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
        expected = {"api": "rel-jobengine-api", "test": "rel-jobengine-api", "worker": "rel-jobengine-worker",
                    "redis": "rel-jobengine-redis"}
        for component, spec in pod_specs(objects):
            assert spec["serviceAccountName"] == expected[component], (component, extra)
            assert spec["automountServiceAccountToken"] is False, (component, extra)
        # the pod-deletion-cost Role binds the workers' account, and no other
        for binding in (o for o in objects if o["kind"] == "RoleBinding"):
            assert [s["name"] for s in binding["subjects"]] == ["rel-jobengine-worker"]
