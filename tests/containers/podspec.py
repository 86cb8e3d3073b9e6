"""Rendered pod templates -> `podman run` arguments, translated from the rendered YAML, never restated.

Translated: env (value with Kubernetes' $(VAR) expansion, valueFrom Secret/ConfigMap keys, fieldRef,
envFrom), command/args, the user (runAsUser/runAsGroup/fsGroup/supplementalGroups), runAsNonRoot,
readOnlyRootFilesystem (podman's own tmpfs on /tmp, /run, /var/tmp switched off), capabilities,
allowPrivilegeEscalation, privileged, seccompProfile, the memory limit, workingDir, volumes
(emptyDir -> tmpfs with its sizeLimit; Secret and ConfigMap files with their items, modes and the
fsGroup owner; claims -> a host folder) and the probes (exec inside the container, httpGet and
tcpSocket from the host).

The one change of model: every pod shares the host's network (`--network host`, loopback only), so
each declared containerPort gets a free host port, and the places that name the pod's own listening
address or a Service are rewritten to 127.0.0.1 and that port:
- env `*_PORT` whose value is a declared containerPort -> its host port; env `*_HOST` 0.0.0.0 or
  :: -> 127.0.0.1 (bound to loopback only);
- `<service>[.<ns>[.svc[.cluster.local]]]:<port>` in env, command and args -> 127.0.0.1:<host port
  of the selected pod's target port>;
- redis.conf in a mounted ConfigMap: `port <containerPort>` and `bind` -> the host port, 127.0.0.1;
  `redis-cli` in an exec probe gets `-p <host port>` (its default port is the pod's own 6379).
A value the chart gets wrong (a port env that is not the declared port, an unknown $(VAR), a
missing Secret key, a path outside the writable mounts) is passed through unchanged and breaks the
container as it would break the pod.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobengine.redis_conn import free_port

_VAR = re.compile(r"\$\((\w+)\)|\$\$")


class SystemBroken(Exception):
    """The rendered system does not work: a pod cannot start, a container exited, a probe kept failing,
    a job did not end."""


class PodConfigError(SystemBroken):
    """What Kubernetes reports as CreateContainerConfigError: the pod cannot start as rendered."""


class NotTranslated(Exception):
    """The rendered spec uses something this translation does not cover: a gap of the test, not of the chart."""


@dataclass
class Manifest:
    """The rendered objects the translation reads, by kind and name."""

    objects: list[dict[str, Any]]
    namespace: str

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name), None)

    def data(self, kind: str, name: str) -> dict[str, str] | None:
        """Decoded data of a rendered Secret or ConfigMap; None when not rendered."""
        obj = self.find(kind, name)
        if obj is None:
            return None
        if kind == "Secret":
            out = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            return out | dict(obj.get("stringData") or {})
        return dict(obj.get("data") or {})

    def workload(self, name: str) -> dict[str, Any]:
        for kind in ("Deployment", "StatefulSet"):
            if (obj := self.find(kind, name)) is not None:
                return obj
        raise KeyError(f"no Deployment or StatefulSet {name} rendered")


def _quantity_bytes(text: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 1000, "M": 1000**2, "G": 1000**3}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


@dataclass
class Pod:
    """One pod of a workload: its name (the hostname, as in Kubernetes), spec and host ports."""

    name: str
    workload: dict[str, Any]
    run: str  # prefix of the container names: one system check's containers never clash with another's
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> host port

    @property
    def spec(self) -> dict[str, Any]:
        return self.workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]

    @property
    def labels(self) -> dict[str, str]:
        return self.workload["spec"]["template"]["metadata"].get("labels") or {}  # type: ignore[no-any-return]

    def containers(self) -> list[dict[str, Any]]:
        return list(self.spec["containers"])

    def port(self, container: dict[str, Any], port: int | str) -> int:
        """Host port of a probe's or Service's port (number or name)."""
        if isinstance(port, str) and not port.isdigit():
            for declared in container.get("ports") or []:
                if declared.get("name") == port:
                    return self.ports[declared["containerPort"]]
            raise PodConfigError(f"{self.name}/{container['name']}: no port named {port!r}")
        return self.ports.get(int(port), int(port))


def plan_pods(manifest: Manifest, workload_name: str, replicas: int, run: str) -> list[Pod]:
    """`replicas` pods of a workload, each with free host ports for its declared containerPorts."""
    workload = manifest.workload(workload_name)
    pods = []
    for index in range(replicas):
        suffix = str(index) if workload["kind"] == "StatefulSet" else f"{run}{index}"
        pod = Pod(name=f"{workload_name}-{suffix}", workload=workload, run=run)
        check_translatable(pod)
        for container in pod.containers():
            for declared in container.get("ports") or []:
                pod.ports[declared["containerPort"]] = free_port()
        pods.append(pod)
    return pods


class Network:
    """Service names -> 127.0.0.1:<host port> of the first running pod the Service selects."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.pods: list[Pod] = []

    def add(self, pods: list[Pod]) -> None:
        self.pods += pods

    def _endpoints(self) -> dict[str, str]:
        out: dict[str, str] = {}
        ns = self.manifest.namespace
        for svc in (o for o in self.manifest.objects if o["kind"] == "Service"):
            selector = svc["spec"].get("selector") or {}
            pod = next((p for p in self.pods if selector and selector.items() <= p.labels.items()), None)
            if pod is None:
                continue
            name = svc["metadata"]["name"]
            for svc_port in svc["spec"]["ports"]:
                target = svc_port.get("targetPort", svc_port["port"])
                container = next(c for c in pod.containers()
                                 if isinstance(target, int) or any(p.get("name") == target for p in c.get("ports") or []))
                host_port = pod.port(container, target)
                for host in (f"{name}.{ns}.svc.cluster.local", f"{name}.{ns}.svc", f"{name}.{ns}", name):
                    out[f"{host}:{svc_port['port']}"] = f"127.0.0.1:{host_port}"
        return out

    def rewrite(self, text: str) -> str:
        endpoints = self._endpoints()
        if not endpoints:
            return text
        # Longest names first, whole host names only (rel-x-redis must not match inside rel-x-redis-headless).
        pattern = re.compile(r"(?<![\w.-])(" + "|".join(re.escape(k) for k in sorted(endpoints, key=len, reverse=True)) + r")(?!\d)")
        return pattern.sub(lambda m: endpoints[m.group(1)], text)


# Keys of a rendered pod spec and container: translated here, or without meaning on one host
# (scheduling, pulling, the API token). Any other key fails the test rather than being dropped.
POD_KEYS = {"containers", "initContainers", "volumes", "securityContext", "terminationGracePeriodSeconds",
            "serviceAccountName", "automountServiceAccountToken", "enableServiceLinks", "restartPolicy",
            "topologySpreadConstraints", "affinity", "nodeSelector", "tolerations", "priorityClassName",
            "imagePullSecrets", "schedulerName", "preemptionPolicy"}
CONTAINER_KEYS = {"name", "image", "imagePullPolicy", "command", "args", "env", "envFrom", "ports", "securityContext",
                  "resources", "volumeMounts", "startupProbe", "livenessProbe", "readinessProbe", "lifecycle",
                  "workingDir", "terminationMessagePolicy", "terminationMessagePath"}


def check_translatable(pod: Pod) -> None:
    """Refuse what this translation does not cover, so a chart change cannot pass by being ignored."""
    if unknown := set(pod.spec) - POD_KEYS:
        raise NotTranslated(f"{pod.name}: pod spec keys not translated: {sorted(unknown)}")
    if pod.spec.get("enableServiceLinks", True) is not False:
        raise NotTranslated(f"{pod.name}: enableServiceLinks is on; Service env variables are not translated")
    for container in [*pod.containers(), *(pod.spec.get("initContainers") or [])]:
        if unknown := set(container) - CONTAINER_KEYS:
            raise NotTranslated(f"{pod.name}/{container['name']}: keys not translated: {sorted(unknown)}")
        if unknown := set(container.get("lifecycle") or {}) - {"preStop"}:
            raise NotTranslated(f"{pod.name}/{container['name']}: lifecycle hooks not translated: {sorted(unknown)}")


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR): defined earlier -> its value, $$ -> $, unknown -> left as written."""
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _VAR.sub(sub, text)


def _field_ref(pod: Pod, manifest: Manifest, path: str) -> str:
    values = {"metadata.name": pod.name, "metadata.namespace": manifest.namespace, "status.podIP": "127.0.0.1",
              "status.hostIP": "127.0.0.1", "spec.nodeName": os.uname().nodename,
              "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default")}
    if path.startswith("metadata.labels['"):
        return pod.labels.get(path[len("metadata.labels['"):-2], "")
    if path not in values:
        raise NotTranslated(f"{pod.name}: fieldRef {path} not translated")
    return values[path]


def _ref(manifest: Manifest, kind: str, ref: dict[str, Any], what: str) -> dict[str, str] | None:
    data = manifest.data(kind, ref["name"])
    if data is None and not ref.get("optional"):
        raise PodConfigError(f"{what}: {kind} {ref['name']} not found in the rendered manifest")
    return data


def container_env(pod: Pod, container: dict[str, Any], manifest: Manifest, network: Network) -> dict[str, str]:
    """The container's environment as the kubelet builds it, then the host-network rewrite."""
    what = f"{pod.name}/{container['name']}"
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else ("Secret", source["secretRef"])
        for key, value in (_ref(manifest, kind, ref, what) or {}).items():
            env[source.get("prefix", "") + key] = value
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            env[name] = _expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_ref(pod, manifest, source["fieldRef"]["fieldPath"])
            continue
        if "resourceFieldRef" in source:
            raise NotTranslated(f"{what}: resourceFieldRef of {name} not translated")
        kind, ref = ("Secret", source["secretKeyRef"]) if "secretKeyRef" in source else ("ConfigMap", source["configMapKeyRef"])
        data = _ref(manifest, kind, ref, what)
        if data is None or ref["key"] not in data:
            if ref.get("optional"):
                continue
            raise PodConfigError(f"{what}: env {name}: key {ref['key']!r} not in {kind} {ref['name']}")
        env[name] = data[ref["key"]]
    declared = {p["containerPort"] for p in container.get("ports") or []}
    for name, value in env.items():
        if name.endswith("_PORT") and value.isdigit() and int(value) in declared:
            env[name] = str(pod.ports[int(value)])
        elif name.endswith("_HOST") and value in ("0.0.0.0", "::", "[::]"):
            env[name] = "127.0.0.1"
        else:
            env[name] = network.rewrite(value)
    return env


def _security(pod: Pod, container: dict[str, Any]) -> dict[str, Any]:
    return (pod.spec.get("securityContext") or {}) | (container.get("securityContext") or {})


def security_args(pod: Pod, container: dict[str, Any], image_user: str) -> list[str]:
    """--user, groups, --read-only, capabilities, no-new-privileges, seccomp, from the merged contexts."""
    ctx = _security(pod, container)
    pod_ctx = pod.spec.get("securityContext") or {}
    args: list[str] = []
    uid = ctx.get("runAsUser")
    if uid is not None:
        args += ["--user", f"{uid}:{ctx['runAsGroup']}" if ctx.get("runAsGroup") is not None else str(uid)]
    effective = str(uid) if uid is not None else (image_user.split(":")[0] or "0")
    if ctx.get("runAsNonRoot") and effective in ("0", "root"):
        raise PodConfigError(f"{pod.name}/{container['name']}: runAsNonRoot but the user is {effective!r}")
    for gid in [pod_ctx.get("fsGroup"), *(pod_ctx.get("supplementalGroups") or [])]:
        if gid is not None:
            args += ["--group-add", str(gid)]
    if ctx.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]
    caps = ctx.get("capabilities") or {}
    args += [a for cap in caps.get("drop") or [] for a in ("--cap-drop", cap)]
    args += [a for cap in caps.get("add") or [] for a in ("--cap-add", cap)]
    if ctx.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if ctx.get("privileged"):
        args += ["--privileged"]
    seccomp = (ctx.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise NotTranslated(f"{pod.name}: seccompProfile {seccomp} not translated")
    return args


def _rewrite_conf(text: str, pod: Pod) -> str:
    """redis.conf under host networking: the declared port -> its host port, bound to loopback."""
    def port(match: re.Match[str]) -> str:
        number = int(match.group(1))
        return f"port {pod.ports.get(number, number)}"
    text = re.sub(r"^port (\d+)$", port, text, flags=re.M)
    return re.sub(r"^bind .*$", "bind 127.0.0.1", text, flags=re.M)


def _write_files(folder: Path, files: dict[str, str], source: dict[str, Any], owner_gid: int | None) -> None:
    """A Secret or ConfigMap volume: its items (or every key), modes, root-owned with the fsGroup."""
    folder.mkdir(parents=True)
    items = source.get("items") or [{"key": k, "path": k} for k in files]
    for item in items:
        if item["key"] not in files:
            raise PodConfigError(f"volume key {item['key']!r} missing")
        path = folder / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[item["key"]])
        os.chmod(path, item.get("mode", source.get("defaultMode", 0o644)))
        os.chown(path, 0, owner_gid if owner_gid is not None else 0)
    for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        os.chmod(sub, 0o755)


# Issued by a cluster, not by the chart: there is no Kubernetes API server here, so stand-ins (the
# workers then find no KUBERNETES_SERVICE_HOST either, as outside a cluster).
CLUSTER_PROVIDED = {("ConfigMap", "kube-root-ca.crt"): {"ca.crt": "# no cluster CA: no Kubernetes API server here\n"}}
NO_TOKEN = "no-kubernetes-api-server-here"


def _write_projected(folder: Path, pod: Pod, manifest: Manifest, projected: dict[str, Any], owner_gid: int | None) -> None:
    """A projected volume: its Secret, ConfigMap, downwardAPI and serviceAccountToken sources in one folder."""
    files: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    for source in projected.get("sources") or []:
        if "serviceAccountToken" in source:
            path = source["serviceAccountToken"]["path"]
            files[f"sa:{path}"] = NO_TOKEN
            items.append({"key": f"sa:{path}", "path": path})
        elif "downwardAPI" in source:
            for item in source["downwardAPI"]["items"]:
                files[f"dw:{item['path']}"] = _field_ref(pod, manifest, item["fieldRef"]["fieldPath"])
                items.append({"key": f"dw:{item['path']}", "path": item["path"]})
        elif "secret" in source or "configMap" in source:
            kind, ref = ("Secret", source["secret"]) if "secret" in source else ("ConfigMap", source["configMap"])
            data = manifest.data(kind, ref["name"]) or CLUSTER_PROVIDED.get((kind, ref["name"]))
            if data is None:
                if ref.get("optional"):
                    continue
                raise PodConfigError(f"{pod.name}: projected {kind} {ref['name']} not rendered")
            for item in ref.get("items") or [{"key": k, "path": k} for k in data]:
                files[f"{kind}:{ref['name']}:{item['key']}"] = data[item["key"]]
                items.append({"key": f"{kind}:{ref['name']}:{item['key']}", "path": item["path"]})
        else:
            raise NotTranslated(f"{pod.name}: projected source not translated: {sorted(source)}")
    _write_files(folder, files, {"items": items, "defaultMode": projected.get("defaultMode", 0o644)}, owner_gid)


def volume_args(pod: Pod, container: dict[str, Any], manifest: Manifest, workdir: Path) -> list[str]:
    """-v / --tmpfs for each volumeMount, from the pod's volumes."""
    volumes = {v["name"]: v for v in pod.spec.get("volumes") or []}
    claims = {c["metadata"]["name"] for c in pod.workload["spec"].get("volumeClaimTemplates") or []}
    fs_group = (pod.spec.get("securityContext") or {}).get("fsGroup")
    args: list[str] = []
    for mount in container.get("volumeMounts") or []:
        name, target = mount["name"], mount["mountPath"]
        mode = "ro" if mount.get("readOnly") else "rw"
        folder = workdir / pod.name / name
        if name in claims:  # a PersistentVolumeClaim: a host folder, group fsGroup and setgid as the kubelet does
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, 0, fs_group or 0)
            os.chmod(folder, 0o2775)
            args += ["-v", f"{folder}:{target}:{mode}"]
            continue
        volume = volumes.get(name)
        if volume is None:
            raise PodConfigError(f"{pod.name}: volumeMount {name} has no volume")
        if "emptyDir" in volume:
            size = (volume["emptyDir"] or {}).get("sizeLimit")
            options = ["rw", "exec", "mode=1777"] + ([f"size={_quantity_bytes(str(size))}"] if size else [])
            args += ["--tmpfs", f"{target}:{','.join(options)}"]
            continue
        if "secret" in volume or "configMap" in volume:
            kind, source = ("Secret", volume["secret"]) if "secret" in volume else ("ConfigMap", volume["configMap"])
            ref_name = source.get("secretName") or source.get("name")
            files = manifest.data(kind, ref_name)
            if files is None:
                raise PodConfigError(f"{pod.name}: volume {name}: {kind} {ref_name} not rendered")
            if kind == "ConfigMap":
                files = {k: _rewrite_conf(v, pod) if k.endswith(".conf") else v for k, v in files.items()}
            if not folder.exists():
                _write_files(folder, files, source, fs_group)
            src = folder / mount["subPath"] if mount.get("subPath") else folder
            args += ["-v", f"{src}:{target}:ro"]
            continue
        if "projected" in volume:
            if not folder.exists():
                _write_projected(folder, pod, manifest, volume["projected"], fs_group)
            args += ["-v", f"{folder}:{target}:ro"]
            continue
        raise NotTranslated(f"{pod.name}: volume {name} of a kind not translated: {sorted(volume)}")
    return args


def run_args(pod: Pod, container: dict[str, Any], manifest: Manifest, network: Network, workdir: Path,
             image_user: str, label: str) -> list[str]:
    """`podman run -d ...` for one container of a pod; the env goes through an env file (not argv)."""
    env = container_env(pod, container, manifest, network)
    env_file = workdir / pod.name / f"{container['name']}.env"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    for name, value in env.items():
        if "\n" in value:
            raise NotTranslated(f"{pod.name}: env {name} holds a newline (not passable to podman)")
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)
    grace = pod.spec.get("terminationGracePeriodSeconds", 30)
    args = ["run", "-d", "--pull", "never", "--name", container_name(pod, container), "--label", label,
            "--label", f"{OWNER_LABEL}={os.getpid()}",
            "--network", "host", "--hostname", pod.name, "--stop-timeout", str(grace),
            "--env-file", str(env_file)]
    args += security_args(pod, container, image_user)
    args += volume_args(pod, container, manifest, workdir)
    memory = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if memory:
        args += ["--memory", str(_quantity_bytes(str(memory)))]
    if container.get("workingDir"):
        args += ["--workdir", container["workingDir"]]
    command = [network.rewrite(_expand(str(a), env)) for a in container.get("command") or []]
    if command:
        args += ["--entrypoint", _json_list(command)]
    args.append(container["image"])
    args += [network.rewrite(_expand(str(a), env)) for a in container.get("args") or []]
    return args


# The pid of the test process that started a container: the next session removes those of dead ones.
OWNER_LABEL = "jobengine-ci.pid"


def container_name(pod: Pod, container: dict[str, Any]) -> str:
    return f"{pod.run}-{pod.name}-{container['name']}"


def probe_command(pod: Pod, command: list[str]) -> list[str]:
    """An exec probe's command under host networking: redis-cli gets the pod's host port."""
    if 6379 not in pod.ports:
        return command
    return [re.sub(r"\bredis-cli\b", f"redis-cli -p {pod.ports[6379]}", part) for part in command]


def _json_list(items: list[str]) -> str:
    return json.dumps(items)


def clean(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
