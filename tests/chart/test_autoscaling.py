"""Autoscaling never costs a running job (docs/kubernetes.md, "Autoscaling"): the scaling formula sums
a pool's queues and counts each running job as a replica; workers may patch their pod's deletion cost
and nothing more; ScaledJob pools; the chart refuses settings that lose work."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bench.autoscale_sim import evaluate_formula
from jobengine import keys
from jobengine_worker.deletion_cost import DeletionCostConfig

from .conftest import NAMESPACE, RenderError, Rendered, template

FIVE_QUEUES = ["--set-json", 'workerPools.default.queues=["a","b","c","d","e"]']
KEDA = ["--set", "keda.enabled=true"]
IN_FLIGHT = [*KEDA, "--set", "keda.inFlight.enabled=true", "--set", "monitoring.enabled=true"]


def pool_objects(rendered: Rendered, kind: str, pool: str = "default") -> list[dict[str, Any]]:
    return [o for o in rendered.kind(kind) if o["metadata"]["labels"].get("jobengine.io/pool") == pool]


# ---------------- replicas follow the work ----------------

@pytest.mark.parametrize("in_flight", [True, False])
def test_formula_sums_every_queue_and_counts_each_running_job(helm: str, in_flight: bool) -> None:
    rendered = template(helm, *(IN_FLIGHT if in_flight else KEDA), *FIVE_QUEUES,
                        "--set", "worker.autoscaling.targetJobsPerReplica=4")
    so = pool_objects(rendered, "ScaledObject")[0]
    modifiers = so["spec"]["advanced"]["scalingModifiers"]
    triggers = {t["name"]: t for t in so["spec"]["triggers"]}
    assert set(re.findall(r"[a-z]+[0-9]*", modifiers["formula"])) == set(triggers)
    lists = {name: t["metadata"]["listName"] for name, t in triggers.items() if t["type"] == "redis"}
    waiting = {name: key for name, key in lists.items() if name.startswith("waiting")}
    paused = {name: key for name, key in lists.items() if name.startswith("paused")}
    assert sorted(waiting.values()) == sorted(keys.queue(q) for q in "abcde")
    assert sorted(paused.values()) == sorted(keys.paused(q) for q in "abcde")  # the pause markers (LLEN 0 or 1)
    assert all(name.replace("waiting", "paused") in paused for name in waiting)  # (each queue's own marker)
    values = ({name: float(i + 1) for i, name in enumerate(sorted(waiting))} | dict.fromkeys(paused, 0.0)
              | ({"running": 7.0} if in_flight else {}))
    expected = (7 if in_flight else 0) + sum(range(1, 6)) / 4  # running + (waiting summed) / target
    assert evaluate_formula(modifiers["formula"], values) == expected
    # a paused queue's waiting jobs count as zero (its running ones still hold their replicas)
    queue_c = next(name for name, key in waiting.items() if key == keys.queue("c"))
    values[queue_c.replace("waiting", "paused")] = 1.0
    c_jobs = values[queue_c]
    assert evaluate_formula(modifiers["formula"], values) == expected - c_jobs / 4
    assert (modifiers["metricType"], modifiers["target"]) == ("AverageValue", "1")  # replicas = ceil(formula)
    assert so["spec"]["fallback"]["behavior"] == "currentReplicasIfHigher"  # an unreadable trigger never scales down


def test_hpa_fallback_has_the_scaledobjects_behavior(helm: str) -> None:
    hpa = pool_objects(template(helm), "HorizontalPodAutoscaler")[0]
    so = pool_objects(template(helm, *KEDA), "ScaledObject")[0]
    assert hpa["spec"]["behavior"] == so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]


# ---------------- idle pods go first ----------------

def resolve_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet fills it (field references with stand-in values)."""
    fields = {"metadata.name": "pod-1", "metadata.namespace": NAMESPACE}
    return {e["name"]: e["value"] if "value" in e
            else fields.get(e["valueFrom"].get("fieldRef", {}).get("fieldPath"), "x") for e in container["env"]}


def test_workers_may_patch_pods_and_nothing_else(helm: str) -> None:
    rendered = template(helm)
    (role,) = rendered.kind("Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    (binding,) = rendered.kind("RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    worker_sa = binding["subjects"][0]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": worker_sa, "namespace": NAMESPACE}]
    assert rendered.get("ServiceAccount", worker_sa)["automountServiceAccountToken"] is False
    for name, _, spec in rendered.pods():
        is_worker = name in {w["metadata"]["name"] for w in rendered.component("worker")}
        assert (spec["serviceAccountName"] == worker_sa) is is_worker, name  # the api and Redis never get it
    spec = rendered.component("worker")[0]["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False  # only the worker container mounts the token
    container = spec["containers"][0]
    config = DeletionCostConfig.from_env(resolve_env(container) | {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert config.enabled and (config.pod_name, config.namespace) == ("pod-1", NAMESPACE)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volume = next(v for v in spec["volumes"] if v["name"] == "kube-api-access")
    token = next(s["serviceAccountToken"] for s in volume["projected"]["sources"] if "serviceAccountToken" in s)
    assert config.token_file == f"{mounts['kube-api-access']}/{token['path']}"
    assert config.ca_file == f"{mounts['kube-api-access']}/ca.crt"


def test_deletion_cost_off_leaves_no_role_and_no_token(helm: str) -> None:
    rendered = template(helm, "--set", "worker.autoscaling.podDeletionCost.enabled=false")
    assert not rendered.kind("Role") and not rendered.kind("RoleBinding")
    spec = rendered.component("worker")[0]["spec"]["template"]["spec"]
    assert all(v["name"] != "kube-api-access" for v in spec["volumes"])
    assert not DeletionCostConfig.from_env(resolve_env(spec["containers"][0])).enabled


# ---------------- ScaledJob pools ----------------

def test_scaledjob_pool_runs_one_job_a_pod_and_is_never_scaled_down(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("scaledjob")
    assert not pool_objects(rendered, "Deployment", "batch") and not pool_objects(rendered, "ScaledObject", "batch")
    (job,) = pool_objects(rendered, "ScaledJob", "batch")
    spec = job["spec"]
    assert spec["rollout"]["strategy"] == "gradual"  # an upgrade lets running Jobs finish
    assert spec["scalingStrategy"] == {"strategy": "accurate", "multipleScalersCalculation": "sum"}
    assert [t["metadata"]["listName"] for t in spec["triggers"]] == [keys.queue("batch")]
    pod = spec["jobTargetRef"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and spec["jobTargetRef"]["backoffLimit"] == 0
    env = resolve_env(pod["containers"][0])
    assert (env["JOBENGINE_MAX_JOBS"], env["JOBENGINE_BATCH_SIZE"], env["JOBENGINE_QUEUES"]) == ("1", "1", "batch")
    (pdb,) = pool_objects(rendered, "PodDisruptionBudget", "batch")
    assert pdb["spec"]["maxUnavailable"] == 0  # a node drain waits for the job


# ---------------- refusals ----------------

REFUSED = [
    ([*KEDA, "--set", "worker.autoscaling.minReplicas=0"],
     "workerPools.default: autoscaling.minReplicas 0 would scale the pool to zero while its last jobs run"),
    (["--set", "worker.drainSeconds=25"],
     "workerPools.default: drainSeconds 25 is below autoscaling.jobTimeoutSeconds 120"),
    (["--set", "workerPools.default.autoscaling.jobTimeoutSeconds=600"],
     "workerPools.default: drainSeconds 130 is below autoscaling.jobTimeoutSeconds 600"),
    (["--set", "worker.autoscaling.mode=scaledJob"], "autoscaling.mode scaledJob needs keda.enabled: true"),
]


@pytest.mark.parametrize(("args", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_settings_that_lose_work_are_refused(helm: str, args: list[str], message: str) -> None:
    with pytest.raises(RenderError, match=re.escape(message)):
        template(helm, *args)


ACCEPTED = [
    [*IN_FLIGHT, "--set", "worker.autoscaling.minReplicas=0"],  # running jobs counted: zero only once they ended
    ["--set", "worker.drainSeconds=25", "--set", "worker.autoscaling.allowInterruptingJobs=true"],
    [*KEDA, "--set", "worker.autoscaling.mode=scaledJob", "--set", "worker.autoscaling.jobTimeoutSeconds=86400"],
]


@pytest.mark.parametrize("args", ACCEPTED, ids=[" ".join(a) for a in ACCEPTED])
def test_the_safe_alternatives_and_the_opt_in_render(helm: str, args: list[str]) -> None:
    assert template(helm, *args).kind("ConfigMap")


def test_fallback_can_be_left_to_keda_for_versions_before_2_17(helm: str) -> None:
    """An older KEDA prunes fallback.behavior and would fall back to minReplicas: without the block it
    freezes the replicas on a trigger error instead."""
    so = pool_objects(template(helm, *KEDA, "--set", "keda.fallback.enabled=false"), "ScaledObject")[0]
    assert "fallback" not in so["spec"]
