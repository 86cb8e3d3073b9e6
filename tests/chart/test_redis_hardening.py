"""The chart's Redis, run for real: the rendered start script and redis.conf start a local redis-server
(the pod's paths moved to a temporary folder); the application's user cannot FLUSHALL, FLUSHDB or CONFIG,
the probes' PING works, and KEDA's own user can run exactly what KEDA's redis scaler sends and nothing else.
Plus the rendered pod facts: Guaranteed QoS, priority class, `save ""`, the exporter sidecar, digests."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobengine.redis_conn import free_port

from .conftest import Rendered, template

# KEDA's redis list scaler (pkg/scalers/redis_scaler.go): one Lua script a poll, on the trigger's listName.
KEDA_SCRIPT = """
local listName = KEYS[1]
local listType = redis.call('type', listName).ok
local cmd = {zset = 'zcard', set = 'scard', list = 'llen', hash = 'hlen', none = 'llen'}
return redis.call(cmd[listType], listName)
"""
APP_PASSWORD = "app-secret"
KEDA_PASSWORD = "keda-secret"


def redis_pod(rendered: Rendered) -> tuple[dict[str, Any], dict[str, Any]]:
    sts = rendered.kind("StatefulSet")[0]
    return sts["spec"]["template"]["spec"], sts["spec"]["template"]["spec"]["containers"][0]


@pytest.fixture(scope="module")
def keda_render(helm: str) -> Rendered:
    return template(helm, "--set", "keda.enabled=true", "--set", "monitoring.enabled=true", name="keda-monitoring")


@pytest.fixture(scope="module")
def chart_redis(keda_render: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server started by the pod's own script and config, on a free local port."""
    tmp = tmp_path_factory.mktemp("chart-redis")
    (tmp / "run").mkdir()
    (tmp / "data").mkdir()
    port = free_port()
    conf = keda_render.get("ConfigMap", "rel-jobengine-redis")["data"]["redis.conf"]
    conf = conf.replace("port 6379", f"port {port}").replace("bind * -::*", "bind 127.0.0.1")
    conf = conf.replace("dir /data", f"dir {tmp / 'data'}").replace("/run/redis/", f"{tmp / 'run'}/")
    (tmp / "redis.conf").write_text(conf)
    _, container = redis_pod(keda_render)
    assert container["command"] == ["sh", "-c"]
    script = container["args"][0].replace("/run/redis/", f"{tmp / 'run'}/").replace("/etc/redis/", f"{tmp}/")
    env = {**os.environ, "REDIS_PASSWORD": APP_PASSWORD, "KEDA_PASSWORD": KEDA_PASSWORD}
    proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = redis.Redis(port=port, password=APP_PASSWORD)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the chart's redis did not start"
            time.sleep(0.05)
    client.close()
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_application_user_cannot_wipe_or_reconfigure(chart_redis: int) -> None:
    app = redis.Redis(port=chart_redis, password=APP_PASSWORD)
    app.rpush("rq:queue:default", "job-1")
    for command in (("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "maxmemory"), ("CONFIG", "SET", "appendonly", "no")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)
    assert app.llen("rq:queue:default") == 1
    assert app.info("memory")["maxmemory"] > 0  # what the API's memory guard and the exporter read
    app.close()


def test_probe_command_passes_with_the_pod_env(keda_render: Rendered, chart_redis: int) -> None:
    _, container = redis_pod(keda_render)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = [part.replace("redis-cli", f"redis-cli -p {chart_redis}") for part in container[probe]["exec"]["command"]]
        env = {**os.environ, "REDISCLI_AUTH": APP_PASSWORD}
        assert subprocess.run(command, env=env, timeout=10, check=False).returncode == 0, probe


def test_keda_user_reads_queue_lengths_only(keda_render: Rendered, chart_redis: int) -> None:
    app = redis.Redis(port=chart_redis, password=APP_PASSWORD)
    app.rpush("rq:queue:high", "a", "b")
    app.set("rq:job:x", "secret payload")
    so = keda_render.get("ScaledObject", "rel-jobengine-worker-default")
    trigger = next(t for t in so["spec"]["triggers"] if t["type"] == "redis")
    keda = redis.Redis(port=chart_redis, username=trigger["metadata"]["username"], password=KEDA_PASSWORD,
                       db=int(trigger["metadata"]["databaseIndex"]))
    assert keda.ping()
    assert keda.eval(KEDA_SCRIPT, 1, "rq:queue:high") == 2
    assert keda.eval(KEDA_SCRIPT, 1, trigger["metadata"]["listName"]) >= 0
    assert keda.llen("rq:queue:high") == 2
    app.rpush("jobengine:paused:high", "{}")  # a pause marker: the formula's paused<i> trigger reads it
    paused = next(t for t in so["spec"]["triggers"] if t["metadata"]["listName"].startswith("jobengine:paused:"))
    assert keda.eval(KEDA_SCRIPT, 1, "jobengine:paused:high") == 1
    assert keda.eval(KEDA_SCRIPT, 1, paused["metadata"]["listName"]) >= 0
    denied = [("GET", "rq:job:x"), ("LLEN", "rq:job:x"), ("RPUSH", "rq:queue:high", "c"), ("DEL", "rq:queue:high"),
              ("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "GET", "*")]
    for command in denied:
        with pytest.raises(redis.exceptions.NoPermissionError):
            keda.execute_command(*command)
    with pytest.raises(redis.exceptions.ResponseError):  # a script cannot write through KEDA's user either
        keda.eval("return redis.call('del', KEYS[1])", 1, "rq:queue:high")
    assert app.llen("rq:queue:high") == 2
    keda.close()
    app.close()


def test_keda_authenticates_as_its_own_user(keda_render: Rendered) -> None:
    auth = keda_render.get("TriggerAuthentication", "rel-jobengine-redis")
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"] == ("rel-jobengine-redis-keda", "keda-password")
    assert "keda-password" in keda_render.get("Secret", "rel-jobengine-redis-keda")["data"]
    _, container = redis_pod(keda_render)
    ref = {e["name"]: e for e in container["env"]}["KEDA_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == refs["password"]
    for kind in ("ScaledObject",):
        for so in keda_render.kind(kind):
            for trigger in (t for t in so["spec"]["triggers"] if t["type"] == "redis"):
                assert trigger["metadata"]["username"] == "keda"


def test_external_redis_keda_user_is_the_operators(helm: str) -> None:
    rendered = template(helm, "--set", "keda.enabled=true", "--set", "redis.enabled=false",
                        "--set", "externalRedis.host=redis.example", "--set", "externalRedis.existingSecret=app",
                        "--set", "keda.redisAuth.username=keda-ro", "--set", "keda.redisAuth.existingSecret=keda-ro",
                        name="external-keda")
    auth = rendered.get("TriggerAuthentication", "rel-jobengine-redis")
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"] == ("keda-ro", "keda-password")
    for so in rendered.kind("ScaledObject"):
        assert {t["metadata"].get("username") for t in so["spec"]["triggers"] if t["type"] == "redis"} == {"keda-ro"}
    # an external Redis without an application password still authenticates KEDA's own user
    bare = template(helm, "--set", "keda.enabled=true", "--set", "redis.enabled=false",
                    "--set", "externalRedis.host=redis.example",
                    "--set", "keda.redisAuth.username=keda-ro", "--set", "keda.redisAuth.existingSecret=keda-ro",
                    name="external-keda-no-app-password")
    refs = {r["parameter"]: r["name"] for r in bare.get("TriggerAuthentication", "rel-jobengine-redis")["spec"]["secretTargetRef"]}
    assert refs == {"password": "keda-ro"}
    for so in bare.kind("ScaledObject"):
        assert all(t["authenticationRef"]["name"] == "rel-jobengine-redis" for t in so["spec"]["triggers"] if t["type"] == "redis")


def test_redis_pod_is_guaranteed_and_can_take_a_priority_class(helm: str, keda_render: Rendered) -> None:
    pod, container = redis_pod(keda_render)
    for c in pod["containers"]:  # every container: requests == limits, cpu and memory (Guaranteed QoS)
        assert c["resources"]["requests"] == c["resources"]["limits"], c["name"]
        assert set(c["resources"]["limits"]) == {"cpu", "memory"}, c["name"]
    rendered = template(helm, "--set", "redis.priorityClassName=critical-data", name="priority")
    assert redis_pod(rendered)[0]["priorityClassName"] == "critical-data"


def test_aof_only_no_rdb_snapshots(keda_render: Rendered) -> None:
    conf = keda_render.get("ConfigMap", "rel-jobengine-redis")["data"]["redis.conf"].splitlines()
    assert "appendonly yes" in conf and 'save ""' in conf


def test_exporter_sidecar_follows_monitoring_and_is_scraped(helm: str, keda_render: Rendered) -> None:
    pod, _ = redis_pod(keda_render)
    exporter = next(c for c in pod["containers"] if c["name"] == "exporter")
    assert exporter["image"].startswith("oliver006/redis_exporter:v")
    assert exporter["securityContext"]["readOnlyRootFilesystem"] and exporter["securityContext"]["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e for e in exporter["env"]}
    assert env["REDIS_EXPORTER_CONFIG_COMMAND"]["value"] == "-"  # CONFIG is disabled; maxmemory comes from INFO
    port = next(p for p in exporter["ports"] if p["name"] == "metrics")
    assert port["containerPort"] == 9121
    monitors = [m for m in keda_render.kind("PodMonitor")
                if m["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component") == "redis"]
    assert len(monitors) == 1 and monitors[0]["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    off = template(helm, name="no-monitoring")
    assert [c["name"] for c in redis_pod(off)[0]["containers"]] == ["redis"]
    forced = template(helm, "--set", "monitoring.enabled=true", "--set", "redis.exporter.enabled=false", name="exp-off")
    assert [c["name"] for c in redis_pod(forced)[0]["containers"]] == ["redis"]


def test_every_image_takes_a_digest(helm: str) -> None:
    digest = "sha256:" + "a" * 64
    args = ["--set", "monitoring.enabled=true"]
    for key in ("api.image", "worker.image", "redis.image", "redis.exporter.image"):
        args += ["--set", f"{key}.digest={digest}"]
    rendered = template(helm, *args, name="digests")
    images = [c["image"] for _, _, spec in rendered.pods() for c in spec.get("initContainers", []) + spec["containers"]]
    assert len(images) >= 4 and all(image.endswith("@" + digest) for image in images), images
