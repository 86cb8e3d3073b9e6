"""Container system test fixtures: podman (installed by scripts/container-engine.sh when missing,
with the project's containers.conf), the images built by scripts/build-images.sh (cached by content
tag), a Redis image for CI, the chart rendered with ci/containers-values.yaml, and the system
(Redis, the API, two workers) run from the rendered pod specs."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..chart.conftest import NAMESPACE, Rendered, find_helm, template
from ..conftest import key_entry
from .cluster import Cluster, SystemBroken, podman
from .podspec import OWNER_LABEL, Manifest, Pod, clean

ROOT = Path(__file__).resolve().parents[2]
CI_VALUES = ROOT / "charts/jobengine/ci/containers-values.yaml"
REDIS_CONTAINERFILE = Path(__file__).with_name("redis.Containerfile")
BASE_IMAGE = "localhost/python-base:3.11-bookworm"
WORKERS = 2


def _podman_ready() -> str | None:
    """None when podman runs containers here; else why not."""
    if os.geteuid() != 0:
        return "rootful podman needed (pods' volume files are owned by their fsGroup, as the kubelet makes them)"
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "scripts/containers.conf"))
    proc = subprocess.run(["bash", str(ROOT / "scripts/container-engine.sh")], capture_output=True, text=True,
                          timeout=900, check=False, env=os.environ | {"CONTAINER_ENGINE": "podman"})
    if proc.returncode != 0 or proc.stdout.strip() != "podman":
        return f"podman not available ({proc.stdout.strip() or 'none'}): {proc.stderr.strip()[-300:]}"
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=120, check=False)
    if info.returncode != 0:
        return f"podman cannot run here: {info.stderr.strip()[-300:]}"
    return None


def _remove_orphans() -> None:
    """Containers left by a test process that died (killed, timed out): never one of a live run."""
    listing = podman("ps", "-a", "--filter", f"label={OWNER_LABEL}", "--format",
                     f'{{{{.Names}}}} {{{{index .Labels "{OWNER_LABEL}"}}}}', check=False).stdout
    orphans = [name for name, pid in (line.split() for line in listing.splitlines() if line.strip())
               if not Path(f"/proc/{pid}").exists()]
    if orphans:
        podman("rm", "-f", "-t", "0", *orphans, check=False, timeout=180)


@pytest.fixture(scope="session")
def podman_engine() -> None:
    reason = _podman_ready()
    if reason:
        pytest.skip(reason)
    _remove_orphans()


@pytest.fixture(scope="session")
def images(podman_engine: None) -> dict[str, str]:
    """service -> image:c-<content hash> for api, worker (scripts/build-images.sh) and redis."""
    proc = subprocess.run(["bash", str(ROOT / "scripts/build-images.sh")], capture_output=True, text=True,
                          timeout=1200, check=False, env=os.environ | {"CONTAINER_ENGINE": "podman"})
    assert proc.returncode == 0, f"make images failed:\n{proc.stderr[-4000:]}"
    built = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    built["redis"] = _redis_image()
    return built


def _redis_image() -> str:
    """Debian's redis-server on the bootstrapped base, tagged by the content of its Containerfile and base."""
    base_id = podman("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE).stdout.strip()
    digest = hashlib.sha256(REDIS_CONTAINERFILE.read_bytes() + base_id.encode()).hexdigest()[:16]
    image = f"localhost/jobengine-ci-redis:c-{digest}"
    if podman("image", "exists", image, check=False).returncode != 0:
        podman("build", "-q", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
               "-f", str(REDIS_CONTAINERFILE), "-t", image, str(REDIS_CONTAINERFILE.parent), timeout=600)
    return image


@dataclass
class ApiKey:
    key: str
    entry: dict[str, Any]


@pytest.fixture(scope="session")
def api_key() -> ApiKey:
    """A key made for this run (scopes submit, read), passed to the chart as apiKeys.keys."""
    key = f"ci-containers.{secrets.token_hex(24)}"
    return ApiKey(key, key_entry(key, tenant="ci", scopes=("submit", "read")))


@pytest.fixture(scope="session")
def render_system(images: dict[str, str], api_key: ApiKey) -> Callable[..., Rendered]:
    """render(*extra helm args) -> the chart with ci/containers-values.yaml and the built images."""
    helm = find_helm()

    def _render(*extra: str) -> Rendered:
        sets = []
        for component, service in (("api", "api"), ("worker", "worker"), ("redis", "redis")):
            repository, tag = images[service].rsplit(":", 1)
            sets += ["--set", f"{component}.image.repository={repository}", "--set", f"{component}.image.tag={tag}"]
        sets += ["--set-json", "apiKeys.keys=" + json.dumps([api_key.entry])]
        return template(helm, *sets, *extra, values=[CI_VALUES], name="containers")

    return _render


class Api:
    """The API container over loopback, with the run's key."""

    def __init__(self, base_url: str, key: str) -> None:
        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def submit(self, job: dict[str, Any]) -> str:
        response = self.client.post("/v1/jobs", json=job)
        if response.status_code != 202:
            raise SystemBroken(f"submit answered {response.status_code}: {response.text[:500]}")
        return str(response.json()["id"])

    def submit_batch(self, jobs: list[dict[str, Any]]) -> list[str]:
        response = self.client.post("/v1/jobs:batch", json={"jobs": jobs})
        if response.status_code != 202:
            raise SystemBroken(f"batch answered {response.status_code}: {response.text[:500]}")
        return [item["id"] for item in response.json()["results"]]

    def job(self, job_id: str, wait: int = 0) -> dict[str, Any]:
        response = self.client.get(f"/v1/jobs/{job_id}", params={"wait": wait} if wait else None)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def wait_finished(self, job_ids: list[str], timeout: float) -> list[dict[str, Any]]:
        """Each job's final record; SystemBroken when one fails or is not finished by the deadline."""
        deadline = time.monotonic() + timeout
        done = []
        for job_id in job_ids:
            while True:
                job = self.job(job_id, wait=5)
                if job["status"] == "finished":
                    done.append(job)
                    break
                if job["status"] in ("failed", "canceled", "stopped"):
                    raise SystemBroken(f"job {job_id} ended {job['status']}: {job.get('error')}")
                if time.monotonic() > deadline:
                    raise SystemBroken(f"job {job_id} still {job['status']} after {timeout:.0f} s")
        return done

    def wait_status(self, job_id: str, status: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] == status or time.monotonic() > deadline:
                return job
            time.sleep(0.1)  # poll interval, bounded by the deadline


@dataclass
class System:
    cluster: Cluster
    redis: list[Pod]
    api_pod: Pod
    workers: list[Pod]
    api: Api


def _component(rendered: Rendered, component: str) -> str:
    found = rendered.component(component)
    assert found, f"no {component} workload rendered"
    return str(found[0]["metadata"]["name"])


@contextmanager
def bring_up(rendered: Rendered, workdir: Path, api_key: ApiKey) -> Iterator[System]:
    """Redis, one API and WORKERS workers of the first pool, each ready by its rendered probes."""
    run = uuid.uuid4().hex[:6]
    cluster = Cluster(Manifest(rendered.objects, namespace=NAMESPACE), workdir, label=f"jobengine-ci={run}", run=run)
    api: Api | None = None
    try:
        redis = cluster.start(_component(rendered, "redis"), 1)
        api_pod, = cluster.start(_component(rendered, "api"), 1)
        workers = cluster.start(_component(rendered, "worker"), WORKERS)
        service = next(s for s in rendered.kind("Service")
                       if s["metadata"]["labels"].get("app.kubernetes.io/component") == "api")
        # The API Service's name and port, as the helm test pod reaches it, resolved to the API container.
        port = next((p for p in service["spec"]["ports"] if p.get("name") == "http"), service["spec"]["ports"][0])
        api = Api("http://" + cluster.network.rewrite(f"{service['metadata']['name']}:{port['port']}"), api_key.key)
        yield System(cluster, redis, api_pod, workers, api)
    finally:
        if api is not None:
            api.client.close()
        cluster.remove_all()
        clean(workdir)


SEED_JOB = {"type": "primes", "payload": {"lowest": 10, "highest": 17}}


def run_seed_job(system: System) -> dict[str, Any]:
    job_id = system.api.submit(SEED_JOB)
    job, = system.api.wait_finished([job_id], timeout=60)
    return job


@pytest.fixture(scope="module")
def system(render_system: Callable[..., Rendered], api_key: ApiKey,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with bring_up(render_system(), tmp_path_factory.mktemp("pods"), api_key) as up:
        yield up
