"""Run rendered workloads as podman containers (podspec.py translates them) and judge them by their
rendered probes: the startup probe within its failure budget, then readiness and liveness."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .podspec import (Manifest, Network, NotTranslated, Pod, SystemBroken, container_name, plan_pods, probe_command,
                      run_args)

# podman's own start-up of `podman exec` on a busy 2-core machine, on top of a probe's timeoutSeconds.
EXEC_OVERHEAD_SECONDS = 3.0


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} ... failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


@dataclass
class ProbeResult:
    ok: bool
    detail: str


@dataclass
class Cluster:
    """The containers of one system check; every container carries `label` for the cleanup."""

    manifest: Manifest
    workdir: Path
    label: str
    run: str
    network: Network = field(init=False)
    pods: list[Pod] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.network = Network(self.manifest)

    def start(self, workload: str, replicas: int) -> list[Pod]:
        """Start `replicas` pods of a workload (init containers first) and wait until they are ready."""
        pods = plan_pods(self.manifest, workload, replicas, self.run)
        self.network.add(pods)
        for pod in pods:
            self.pods.append(pod)
            for init in pod.spec.get("initContainers") or []:
                self._run_init(pod, init)
            for container in pod.containers():
                podman(*run_args(pod, container, self.manifest, self.network, self.workdir,
                                 self._image_user(container["image"]), self.label))
        for pod in pods:
            self.wait_ready(pod)
        return pods

    def _image_user(self, image: str) -> str:
        return podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()

    def _run_init(self, pod: Pod, init: dict[str, Any]) -> None:
        args = run_args(pod, init, self.manifest, self.network, self.workdir, self._image_user(init["image"]), self.label)
        podman(*args)
        name = container_name(pod, init)
        code = podman("wait", name, timeout=300).stdout.strip()
        if code != "0":
            raise SystemBroken(f"init container {name} exited {code}:\n{self.logs(name)}")

    def logs(self, name: str, tail: int = 40) -> str:
        proc = podman("logs", "--tail", str(tail), name, check=False)
        return (proc.stdout + proc.stderr)[-4000:]

    def running(self, name: str) -> tuple[bool, str]:
        state = json.loads(podman("inspect", "--format", "{{json .State}}", name).stdout)
        return bool(state.get("Running")), f"exit code {state.get('ExitCode')}"

    # ---------------- probes ----------------

    def probe(self, pod: Pod, container: dict[str, Any], probe: dict[str, Any]) -> ProbeResult:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            cmd = probe_command(pod, [str(c) for c in probe["exec"]["command"]])
            try:
                proc = podman("exec", container_name(pod, container), *cmd,
                              timeout=timeout + EXEC_OVERHEAD_SECONDS, check=False)
            except subprocess.TimeoutExpired:
                return ProbeResult(False, f"exec {cmd} timed out after {timeout} s")
            return ProbeResult(proc.returncode == 0, f"exec {cmd}: exit {proc.returncode} {proc.stdout[-300:]}{proc.stderr[-300:]}")
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = (f"{get.get('scheme', 'HTTP').lower()}://{get.get('host') or '127.0.0.1'}:"
                   f"{pod.port(container, get['port'])}{get.get('path', '/')}")
            request = urllib.request.Request(url, headers={h["name"]: h["value"] for h in get.get("httpHeaders") or []})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
                    return ProbeResult(200 <= response.status < 400, f"GET {url}: {response.status}")
            except urllib.error.HTTPError as exc:
                return ProbeResult(False, f"GET {url}: {exc.code} {exc.read()[:300]!r}")
            except OSError as exc:
                return ProbeResult(False, f"GET {url}: {exc}")
        if "tcpSocket" in probe:
            port = pod.port(container, probe["tcpSocket"]["port"])
            try:
                socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
                return ProbeResult(True, f"tcp {port}: open")
            except OSError as exc:
                return ProbeResult(False, f"tcp {port}: {exc}")
        raise NotTranslated(f"{pod.name}: probe kind not translated: {sorted(probe)}")

    def _until(self, pod: Pod, container: dict[str, Any], kind: str, budget: float) -> None:
        """Poll one probe until it succeeds, the container exits, or the probe's budget runs out."""
        probe = container[kind]
        name = container_name(pod, container)
        deadline = time.monotonic() + budget
        last = ProbeResult(False, "not run")
        while True:
            alive, state = self.running(name)
            if not alive:
                raise SystemBroken(f"{name} exited ({state}) before its {kind} passed:\n{self.logs(name)}")
            last = self.probe(pod, container, probe)
            if last.ok:
                return
            if time.monotonic() > deadline:
                raise SystemBroken(f"{name}: {kind} still failing after {budget:.0f} s: {last.detail}\n{self.logs(name)}")
            time.sleep(min(1.0, float(probe.get("periodSeconds", 10))))  # poll interval, bounded by the deadline

    @staticmethod
    def budget(probe: dict[str, Any]) -> float:
        """How long the kubelet lets a probe fail: initial delay + threshold x period."""
        return float(probe.get("initialDelaySeconds", 0)) + float(probe.get("failureThreshold", 3)) * float(
            probe.get("periodSeconds", 10))

    def wait_ready(self, pod: Pod) -> None:
        for container in pod.containers():
            if "startupProbe" in container:
                self._until(pod, container, "startupProbe", self.budget(container["startupProbe"]))
            # After the startup probe: readiness and liveness within their own threshold x period.
            for kind in ("readinessProbe", "livenessProbe"):
                if kind in container:
                    self._until(pod, container, kind, self.budget(container[kind]))

    def check_probes(self, pod: Pod) -> list[str]:
        """Run every rendered probe of the pod once; the failures."""
        failures = []
        for container in pod.containers():
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                if kind in container:
                    result = self.probe(pod, container, container[kind])
                    if not result.ok:
                        failures.append(f"{container_name(pod, container)} {kind}: {result.detail}")
        return failures

    def stop(self, pod: Pod) -> tuple[float, int]:
        """As the kubelet deletes a pod: each container's preStop hook, then SIGTERM and SIGKILL when the
        rest of terminationGracePeriodSeconds is over (`podman stop -t`). Seconds taken, exit code."""
        grace = int(pod.spec.get("terminationGracePeriodSeconds", 30))
        started = time.monotonic()
        for container in pod.containers():
            self._pre_stop(pod, container, grace)
            left = max(2, round(grace - (time.monotonic() - started)))  # the kubelet grants 2 s at least
            podman("stop", "-t", str(left), container_name(pod, container), timeout=grace + 60)
        took = time.monotonic() - started
        code = json.loads(podman("inspect", "--format", "{{json .State.ExitCode}}",
                                 container_name(pod, pod.containers()[0])).stdout)
        return took, int(code)

    def _pre_stop(self, pod: Pod, container: dict[str, Any], grace: int) -> None:
        hook = (container.get("lifecycle") or {}).get("preStop")
        if not hook:
            return
        if "sleep" in hook:
            time.sleep(float(hook["sleep"]["seconds"]))  # the hook itself is a pause: the kubelet waits the same
        elif "exec" in hook:
            podman("exec", container_name(pod, container), *probe_command(pod, [str(c) for c in hook["exec"]["command"]]),
                   timeout=grace + EXEC_OVERHEAD_SECONDS, check=False)
        else:
            self.probe(pod, container, hook)  # httpGet / tcpSocket, as a probe would

    def remove_all(self) -> None:
        names = podman("ps", "-a", "--filter", f"label={self.label}", "--format", "{{.Names}}", check=False).stdout.split()
        if names:
            podman("rm", "-f", "-t", "0", *names, check=False, timeout=180)

