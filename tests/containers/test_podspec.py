"""The translation of rendered pod specs into podman flags, without podman: Kubernetes' env rules,
the host-network rewrite, the security flags, and the refusals."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from .podspec import (Manifest, Network, NotTranslated, PodConfigError, container_env, plan_pods, run_args,
                      security_args)

NS = "jobs"


def _workload(container: dict[str, Any], kind: str = "Deployment", **spec: Any) -> dict[str, Any]:
    pod_spec = {"enableServiceLinks": False, "containers": [container]} | spec
    return {"kind": kind, "metadata": {"name": "app"},
            "spec": {"template": {"metadata": {"labels": {"component": "app"}}, "spec": pod_spec}}}


def _secret(name: str, **data: str) -> dict[str, Any]:
    return {"kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def _service(name: str, port: int, target: str | int) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"component": "app"}, "ports": [{"port": port, "targetPort": target}]}}


def _env(container: dict[str, Any], *objects: dict[str, Any]) -> tuple[dict[str, str], Any]:
    manifest = Manifest([_workload(container), *objects], NS)
    pod, = plan_pods(manifest, "app", 1, run="t")
    network = Network(manifest)
    network.add([pod])
    return container_env(pod, container, manifest, network), pod


def test_env_follows_kubernetes_expansion_and_value_from() -> None:
    container = {"name": "c", "image": "i", "env": [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
        {"name": "URL", "value": "redis://:$(PASSWORD)@db:6379/0"},
        {"name": "TYPO", "value": "x$(PASSWD)y"},
        {"name": "ESCAPED", "value": "$$(PASSWORD)"},
        {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope", "optional": True}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]}
    env, pod = _env(container, _secret("s", pw="pa55"))
    assert env["URL"] == "redis://:pa55@db:6379/0"
    assert env["TYPO"] == "x$(PASSWD)y"  # an unknown name stays as written, as the kubelet leaves it
    assert env["ESCAPED"] == "$(PASSWORD)"
    assert "GONE" not in env
    assert env["POD"] == pod.name


def test_a_missing_secret_key_is_a_pod_that_cannot_start() -> None:
    container = {"name": "c", "image": "i", "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    with pytest.raises(PodConfigError, match="key 'k' not in Secret s"):
        _env(container, _secret("s", other="x"))


def test_host_network_rewrites_own_ports_hosts_and_service_names_only() -> None:
    container = {"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 8000}], "env": [
        {"name": "APP_PORT", "value": "8000"},
        {"name": "WRONG_PORT", "value": "8001"},
        {"name": "APP_HOST", "value": "0.0.0.0"},
        {"name": "URL", "value": "http://svc.jobs.svc:80/x"},
        {"name": "OTHER", "value": "http://svc-headless:80/x"},
    ]}
    env, pod = _env(container, _service("svc", 80, "http"))
    port = pod.ports[8000]
    assert env["APP_PORT"] == str(port) and port != 8000
    assert env["WRONG_PORT"] == "8001"  # not the declared port: passed on, so it breaks as in a pod
    assert env["APP_HOST"] == "127.0.0.1"
    assert env["URL"] == f"http://127.0.0.1:{port}/x"
    assert env["OTHER"] == "http://svc-headless:80/x"


def test_security_context_becomes_podman_flags() -> None:
    container = {"name": "c", "image": "i", "securityContext": {
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
    manifest = Manifest([_workload(container, securityContext={"runAsUser": 10001, "runAsGroup": 10001,
                                                              "fsGroup": 2000, "runAsNonRoot": True})], NS)
    pod, = plan_pods(manifest, "app", 1, run="t")
    args = security_args(pod, container, image_user="")
    assert args == ["--user", "10001:10001", "--group-add", "2000", "--read-only", "--read-only-tmpfs=false",
                    "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def test_run_as_non_root_refuses_a_root_image_user() -> None:
    container = {"name": "c", "image": "i", "securityContext": {"runAsNonRoot": True}}
    pod, = plan_pods(Manifest([_workload(container)], NS), "app", 1, run="t")
    with pytest.raises(PodConfigError, match="runAsNonRoot"):
        security_args(pod, container, image_user="root")


@pytest.mark.skipif(os.geteuid() != 0, reason="files owned by the fsGroup need root, as rootful podman has")
def test_empty_dir_is_a_sized_tmpfs_and_secret_files_keep_mode_and_group(tmp_path: Path) -> None:
    container = {"name": "c", "image": "i", "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                                                            {"name": "keys", "mountPath": "/keys", "readOnly": True}]}
    workload = _workload(container, securityContext={"fsGroup": 2000}, volumes=[
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "keys", "secret": {"secretName": "s", "defaultMode": 0o440, "items": [{"key": "k", "path": "k.json"}]}}])
    manifest = Manifest([workload, _secret("s", k="{}")], NS)
    pod, = plan_pods(manifest, "app", 1, run="t")
    args = run_args(pod, container, manifest, Network(manifest), tmp_path, image_user="", label="l")
    assert "/tmp:rw,exec,mode=1777,size=67108864" in args
    key_file = tmp_path / pod.name / "keys" / "k.json"
    assert f"{key_file.parent}:/keys:ro" in args
    stat = key_file.stat()
    assert (stat.st_mode & 0o777, stat.st_gid) == (0o440, 2000)


@pytest.mark.parametrize("change", [{"hostNetwork": True}, {"enableServiceLinks": True}])
def test_what_is_not_translated_is_refused(change: dict[str, Any]) -> None:
    manifest = Manifest([_workload({"name": "c", "image": "i"}, **change)], NS)
    with pytest.raises(NotTranslated):
        plan_pods(manifest, "app", 1, run="t")
