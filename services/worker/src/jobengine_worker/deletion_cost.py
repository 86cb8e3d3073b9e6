"""Keep this pod's `controller.kubernetes.io/pod-deletion-cost` current: busy high, idle low.

When the HPA (or KEDA through it) lowers a Deployment's replicas, the ReplicaSet picks the pods to
delete; among ready pods it removes the ones with the lowest deletion cost first. A worker that
marks its pod busy while it runs a job and idle once it waits for work makes a scale-down take idle
pods first (docs/kubernetes.md, "Idle pods go first").

Self-contained (standard library only): a background thread sends a JSON merge patch of that one
annotation to the Kubernetes API, authenticated by the pod's projected service-account token, read
again for every request since the kubelet rotates it. The worker loop never waits on the API server:
`set_busy` only records the wanted state. Busy is sent at once; idle only after the worker stayed
idle for `idle_grace` seconds, so a worker between two quick jobs sends nothing (the Kubernetes
docs ask not to update the annotation at a high rate). A failed patch is retried with backoff and
logged; it never stops the worker.

Hook: build it once (`cost = PodDeletionCost.from_env(); cost.start()`), call
`cost.set_busy(True)` when a batch starts running and `cost.set_busy(False)` when the worker waits
for work, and `cost.stop()` at exit. Off (a no-op) unless JOBENGINE_POD_DELETION_COST=on.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

log = logging.getLogger("jobengine.worker.deletion_cost")

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
BUSY_COST = 1000  # any value above IDLE_COST; one value, so busy pods stay ordered by the ReplicaSet's own rules
IDLE_COST = 0  # the value of a pod without the annotation: new pods count as idle
IDLE_GRACE_SECONDS = 2.0
TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
PATCH_CONTENT_TYPE = "application/merge-patch+json"


@dataclass(frozen=True)
class DeletionCostConfig:
    """Where to send the patch; read from the environment the chart sets (templates/_helpers.tpl)."""

    enabled: bool
    pod_name: str = ""
    namespace: str = ""
    api_url: str = ""
    token_file: str = TOKEN_FILE
    ca_file: str = CA_FILE
    timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeletionCostConfig:
        env = os.environ if environ is None else environ
        if env.get("JOBENGINE_POD_DELETION_COST", "off").lower() not in ("on", "true", "1"):
            return cls(enabled=False)
        missing = [v for v in ("JOBENGINE_POD_NAME", "JOBENGINE_POD_NAMESPACE") if not env.get(v)]
        api_url = env.get("JOBENGINE_KUBERNETES_API_URL") or in_cluster_api_url(env)
        if not api_url:
            missing.append("JOBENGINE_KUBERNETES_API_URL (or KUBERNETES_SERVICE_HOST)")
        if missing:
            raise ValueError(f"JOBENGINE_POD_DELETION_COST=on needs {', '.join(missing)}")
        return cls(
            enabled=True,
            pod_name=env["JOBENGINE_POD_NAME"],
            namespace=env["JOBENGINE_POD_NAMESPACE"],
            api_url=api_url.rstrip("/"),
            token_file=env.get("JOBENGINE_KUBERNETES_TOKEN_FILE", TOKEN_FILE),
            ca_file=env.get("JOBENGINE_KUBERNETES_CA_FILE", CA_FILE),
        )


def in_cluster_api_url(env: Mapping[str, str]) -> str:
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return ""
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def patch_request(config: DeletionCostConfig, cost: int) -> urllib.request.Request:
    """The PATCH of the pod's annotation alone (merge patch: no read, no resourceVersion, no conflict)."""
    with open(config.token_file, encoding="utf-8") as f:
        token = f.read().strip()
    path = f"/api/v1/namespaces/{quote(config.namespace, safe='')}/pods/{quote(config.pod_name, safe='')}"
    body = json.dumps({"metadata": {"annotations": {ANNOTATION: str(cost)}}}).encode()
    return urllib.request.Request(
        config.api_url + path, data=body, method="PATCH",
        headers={"Content-Type": PATCH_CONTENT_TYPE, "Authorization": f"Bearer {token}", "Accept": "application/json"},
    )


def send_patch(config: DeletionCostConfig, cost: int) -> None:
    """One PATCH; raises OSError (URLError, HTTPError) on failure."""
    context = None
    if config.api_url.startswith("https://"):
        context = ssl.create_default_context(cafile=config.ca_file if os.path.exists(config.ca_file) else None)
    with urllib.request.urlopen(patch_request(config, cost), timeout=config.timeout_seconds, context=context) as resp:
        resp.read()


class PodDeletionCost:
    """Records the worker's busy/idle state; a daemon thread mirrors it into the pod's annotation."""

    def __init__(self, config: DeletionCostConfig, idle_grace: float = IDLE_GRACE_SECONDS,
                 retry_base: float = 0.5, retry_max: float = 30.0) -> None:
        self.config = config
        self.idle_grace = idle_grace
        self.retry_base, self.retry_max = retry_base, retry_max
        self._cond = threading.Condition()
        self._busy = False
        self._changed_at = time.monotonic()
        self._sent: bool | None = None  # state the pod's annotation holds; None: never sent (reads as idle)
        self._stopping = False
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls) -> PodDeletionCost:
        return cls(DeletionCostConfig.from_env())

    def start(self) -> None:
        if self.config.enabled and self._thread is None:
            self._sent = False  # a new pod has no annotation: cost 0, idle
            self._thread = threading.Thread(target=self._run, name="pod-deletion-cost", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def set_busy(self, busy: bool) -> None:
        """Cheap and non-blocking: call it on every state change of the worker loop."""
        with self._cond:
            if busy != self._busy:
                self._busy = busy
                self._changed_at = time.monotonic()
                self._cond.notify_all()

    def _next_send(self) -> bool | None:
        """Wait until a state is due to be sent (busy at once, idle after the grace); None when stopping."""
        with self._cond:
            while not self._stopping:
                if self._busy != self._sent:
                    due = self._changed_at + (0.0 if self._busy else self.idle_grace)
                    left = due - time.monotonic()
                    if left <= 0:
                        return self._busy
                    self._cond.wait(left)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        failures = 0
        while (busy := self._next_send()) is not None:
            try:
                send_patch(self.config, BUSY_COST if busy else IDLE_COST)
            except (OSError, ValueError) as exc:  # URLError/HTTPError are OSErrors; a token file missing too
                failures += 1
                delay = min(self.retry_max, self.retry_base * 2 ** (failures - 1))
                log.warning("pod-deletion-cost patch failed; retrying", extra={"error": str(exc), "retry_in": delay})
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, timeout=delay)
                continue
            failures = 0
            with self._cond:
                self._sent = busy
