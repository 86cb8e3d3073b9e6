"""The chart's pods as containers: Redis, the API and two workers run from the built images with the
env, args, user, read-only root, dropped capabilities, volumes and probes of the rendered
Deployments and StatefulSet (podspec.py translates them). The seed's example and a burst go through
the API container; `podman stop` with the rendered grace period drains a worker mid-job; every
rendered probe passes. Chart values that break the pods make the same check fail."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ..chart.conftest import Rendered
from .cluster import SystemBroken, podman
from .conftest import ROOT, ApiKey, System, bring_up, run_seed_job
from .podspec import Pod

PLATFORM_CONTAINERFILE = Path(__file__).with_name("platform-worker.Containerfile")

# Cold: base bootstrap (~1 min) + two image builds (~1 min) + the system; warm: the system only.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BURST = 200


def test_seed_example_job_through_the_api_container(system: System) -> None:
    job = run_seed_job(system)
    assert job["result"] == {"primes": [11, 13, 17], "count": 3}


def test_burst_through_the_batch_endpoint_finishes(system: System) -> None:
    jobs = [{"type": "echo", "payload": {"message": f"burst-{i}"}} for i in range(BURST)]
    ids = system.api.submit_batch(jobs)
    assert len(ids) == BURST
    done = system.api.wait_finished(ids, timeout=120)
    assert [d["result"]["message"] for d in done] == [f"burst-{i}" for i in range(BURST)]
    workers = {d["worker"].rsplit(".", 1)[0] for d in done}
    assert workers <= {w.name for w in system.workers}, workers  # the containers' hostnames are their pod names


def test_the_declared_schedule_fires_in_the_api_container(system: System) -> None:
    """The chart's `schedules` value -> its ConfigMap -> the API's schedules file -> jobs at each tick."""
    deadline = time.monotonic() + 30
    while True:
        response = system.api.client.get("/v1/schedules/ci-every-2s")
        assert response.status_code == 200, response.text
        schedule = response.json()
        finished = [r for r in schedule["runs"] if r["outcome"] == "enqueued" and r["job_status"] == "finished"]
        if len(finished) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert schedule["source"] == "declared" and schedule["state"] == "active", schedule
    assert len(finished) >= 2, schedule["runs"]
    job = system.api.job(finished[0]["job_id"])
    assert job["result"]["message"] == "scheduled", job


def test_every_rendered_probe_passes_inside_its_container(system: System) -> None:
    failures = [f for pod in [*system.redis, system.api_pod, *system.workers] for f in system.cluster.check_probes(pod)]
    assert not failures, "\n".join(failures)


def test_the_containers_run_as_rendered(system: System) -> None:
    """Spot check of the translation against the engine's own view: user, read-only root, no capabilities."""
    for pod in [*system.redis, system.api_pod, *system.workers]:
        container = pod.containers()[0]
        name = _container(pod)
        ctx = (pod.spec.get("securityContext") or {}) | container["securityContext"]
        status = podman("exec", name, "sh", "-c", "id -u; grep CapEff /proc/self/status; touch /probe-ro 2>&1 || true").stdout
        uid, caps, touch = status.splitlines()[:3]
        assert uid == str(ctx["runAsUser"])
        assert caps.split()[-1] == "0000000000000000", caps
        assert "Read-only file system" in touch


def _container(pod: Pod) -> str:
    return f"{pod.run}-{pod.name}-{pod.containers()[0]['name']}"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_image_facts(service: str, system: System, images: dict[str, str]) -> None:
    """tini is PID 1 with the service as its child, the OCI labels are set, pip is gone."""
    pod = system.api_pod if service == "api" else system.workers[-1]
    pid1 = podman("exec", _container(pod), "cat", "/proc/1/cmdline").stdout.split("\0")
    assert pid1[:3] == ["/usr/bin/tini", "--", f"jobengine-{service}"], pid1
    labels = json.loads(podman("image", "inspect", "--format", "{{json .Labels}}", images[service]).stdout)
    for key in ("title", "description", "source", "version", "revision", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), (key, labels)
    assert labels["org.opencontainers.image.title"] == f"jobengine-{service}"
    no_pip = podman("exec", _container(pod), "python", "-c", "import pip", check=False)
    assert no_pip.returncode != 0 and "No module named 'pip'" in no_pip.stderr
    assert podman("exec", _container(pod), "sh", "-c", "command -v pip pip3", check=False).returncode != 0
    # the image's own HEALTHCHECK (for docker/podman runs outside Kubernetes) passes in the running container
    check = json.loads(podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", images[service]).stdout)
    assert check["Test"][0] == "CMD", check
    assert podman("exec", _container(pod), *check["Test"][1:], check=False).returncode == 0, check


# Last of the tests on the running system: it stops a worker.
def test_stop_with_the_rendered_grace_drains_a_busy_worker(system: System) -> None:
    worker = system.workers[0]
    grace = int(worker.spec["terminationGracePeriodSeconds"])
    env = {e["name"]: e.get("value") for e in worker.containers()[0]["env"]}
    drain = float(env["JOBENGINE_DRAIN_SECONDS"])
    seconds = min(4.0, drain / 2)  # ends well inside the drain
    # Only the worker under test takes jobs: the other is paused (frozen, not stopped).
    others = [f"{w.run}-{w.name}-{w.containers()[0]['name']}" for w in system.workers[1:]]
    podman("pause", *others)
    try:
        job_id = system.api.submit({"type": "sleep", "payload": {"seconds": seconds}})
        job = system.api.wait_status(job_id, "started", timeout=30)
        assert job["status"] == "started", job
        assert job["worker"].startswith(worker.name + "."), job["worker"]
        took, code = system.cluster.stop(worker)
    finally:
        podman("unpause", *others)
    done, = system.api.wait_finished([job_id], timeout=30)
    assert done["attempts"] == 1 and done["worker"] == job["worker"], done  # finished by the draining worker
    assert code == 0, f"worker exit code {code} (137: SIGTERM never reached it, killed at the grace period)"
    assert took < grace, f"stop took {took:.1f} s of the {grace} s grace"


def test_platform_team_installs_its_jobs_from_the_worker_image(images: dict[str, str]) -> None:
    """The documented FROM-the-worker-image build: the package's job types load, and pip is gone again."""
    digest = hashlib.sha256(PLATFORM_CONTAINERFILE.read_bytes() + images["worker"].encode()).hexdigest()[:16]
    image = f"localhost/jobengine-ci-platform-worker:c-{digest}"
    if podman("image", "exists", image, check=False).returncode != 0:
        podman("build", "-q", "--network", "host", "--build-arg", f"WORKER_IMAGE={images['worker']}",
               "-f", str(PLATFORM_CONTAINERFILE), "-t", image, str(ROOT / "examples/jobengine-example-jobs"), timeout=600)
    check = ("from jobengine.catalog import get_catalog; print(' '.join(get_catalog().names()))\n"
             "import importlib.util; print(importlib.util.find_spec('pip'))")
    proc = podman("run", "--rm", "--pull", "never", "--read-only", "--entrypoint", "python", image, "-c", check)
    names, pip = proc.stdout.splitlines()
    assert "primes" in names.split() and len(names.split()) > 3, names  # built-ins plus the example package's types
    assert pip == "None"


# ---------------- values that break the pods must fail the check ----------------

BROKEN = {
    # A wrong env name: $(REDIS_PASSWD) is no variable of the container, so Kubernetes passes it on
    # literally and the API authenticates to Redis with a wrong password. Its readiness (/healthz) does not
    # ask Redis (a Redis blip must not empty the Service): the first submit gets the API's own 503.
    "wrong-env-name": (["--set-json", 'api.extraEnv=[{"name": "JOBENGINE_REDIS_URL", "value": '
                        '"redis://:$(REDIS_PASSWD)@rel-jobengine-redis.jobs.svc:6379/0"}]'], "Redis is unreachable"),
    # A path that is writable in the image but not under a read-only root: Redis cannot create its AOF.
    "path-on-read-only-root": (["--set", "redis.extraConfig=dir /var/tmp"], "Read-only file system"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_value_that_breaks_the_pods_fails_the_check(case: str, render_system: Callable[..., Rendered],
                                                      api_key: ApiKey, tmp_path: Path) -> None:
    args, evidence = BROKEN[case]
    rendered = render_system(*args)
    with pytest.raises(SystemBroken) as failed:
        with bring_up(rendered, tmp_path / "pods", api_key) as system:
            run_seed_job(system)
    assert evidence in str(failed.value), str(failed.value)[-3000:]
