"""values.schema.json covers every value and rejects bad ones with a clear message; the chart
refuses value combinations the schema cannot express; the helm test script works."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
import pytest
import yaml

from jobengine.settings import QUEUE_NAME_PATTERN

from .conftest import CHART, ROOT, VALUE_SETS, RenderError, template

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")
    for name, sub in schema.get("definitions", {}).items():
        yield from walk(sub, f"#{name}")


def test_schema_is_strict_everywhere() -> None:
    """Every object with declared properties refuses unknown keys: the schema covers every value."""
    loose = [p for p, s in walk(SCHEMA) if "properties" in s and s.get("additionalProperties") is not False]
    assert not loose, f"objects accepting unknown keys: {loose}"
    undocumented = [p for p, s in walk(SCHEMA) if p and not p.startswith("#") and not p.endswith("*")
                    and "description" not in s and "$ref" not in s]
    assert not undocumented, undocumented


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_defaults_and_ci_values_match_the_schema(value_set: str) -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    validator.check_schema(SCHEMA)
    values = DEFAULTS
    for path in VALUE_SETS[value_set]:
        values = deep_merge(values, yaml.safe_load(path.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]
    assert not errors, errors


def deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: deep_merge(base[k], v) if k in base else v for k, v in over.items()} | {
            k: v for k, v in base.items() if k not in over}
    return over


def load_doc_script() -> Any:
    spec = importlib.util.spec_from_file_location("chart_values_doc", ROOT / "scripts" / "chart_values_doc.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_value_is_documented_and_the_readme_table_is_current() -> None:
    doc = load_doc_script()
    documented = {key for key, _ in doc.documented_keys((CHART / "values.yaml").read_text())}

    def leaves(node: Any, prefix: str = "") -> Iterator[str]:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, f"{prefix}.{key}" if prefix else key)
        else:
            yield prefix

    def covered(key: str) -> bool:
        parts = key.split(".")
        return any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1))

    missing = [key for key in leaves(DEFAULTS) if not covered(key)]
    assert not missing, f"values without a `# --` comment in values.yaml: {missing}"
    assert doc.table() in (CHART / "README.md").read_text(), \
        "charts/jobengine/README.md's values table is stale: run python scripts/chart_values_doc.py --write"


def test_queue_pattern_is_the_settings_pattern() -> None:
    pool = SCHEMA["properties"]["workerPools"]["additionalProperties"]
    assert pool["properties"]["queues"]["items"]["pattern"] == QUEUE_NAME_PATTERN
    assert SCHEMA["properties"]["config"]["properties"]["defaultQueue"]["pattern"] == QUEUE_NAME_PATTERN


BAD_VALUES = [
    (["--set", "api.replicas=two"], ["/api/replicas", "want integer"]),
    (["--set", "worker.replicas=two"], ["/worker/replicas", "want integer"]),
    (["--set", "api.replicaCount=2"], ["/api", "additional properties 'replicaCount' not allowed"]),
    (["--set", "kedaa.enabled=true"], ["additional properties 'kedaa' not allowed"]),
    (["--set-json", 'workerPools.default.queues=["bad queue"]'], ["/workerPools/default/queues/0", "bad queue"]),
    (["--set-json", 'workerPools.Big={"queues":["x"]}'], ["invalid propertyName 'Big'"]),
    (["--set-json", 'workerPools.extra={"replicas":1}'], ["/workerPools/extra", "queues"]),
    (["--set", "worker.drainSeconds=-1"], ["/worker/drainSeconds", "-1"]),
    (["--set", "redis.auth.password=p@ss:word"], ["/redis/auth/password", "p@ss:word"]),
    (["--set", "redis.appendfsync=no"], ["/redis/appendfsync", "everysec"]),
    (["--set", "worker.resources.requests.memory=lots"], ["/worker/resources/requests/memory"]),
    (["--set", "externalRedis.sentinel.hosts={s1:26379/x}"], ["/externalRedis/sentinel/hosts/0"]),
]


@pytest.mark.parametrize(("args", "expected"), BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_schema_rejects_bad_values_clearly(helm: str, args: list[str], expected: list[str]) -> None:
    with pytest.raises(RenderError) as info:
        template(helm, *args)
    message = str(info.value)
    assert "values don't meet the specifications of the schema" in message
    for fragment in expected:
        assert fragment in message, message


BAD_COMBINATIONS = [
    (["--set", "workerPools.default.autoscaling.minReplicas=0"], "scale to zero) needs keda.enabled"),
    (["--set", "redis.enabled=false"], "externalRedis.host is required"),
    (["--set", "redis.enabled=false", "--set", "externalRedis.sentinel.enabled=true"],
     "externalRedis.sentinel.hosts is required"),
    (["--set", "tracing.enabled=true"], "tracing.endpoint is required"),
    (["--set", "workerPools.default.enabled=false"], "enable at least one pool"),
    (["--set", "worker.autoscaling.minReplicas=5", "--set", "worker.autoscaling.maxReplicas=2"], "above maxReplicas"),
]


@pytest.mark.parametrize(("args", "expected"), BAD_COMBINATIONS, ids=[" ".join(a) for a, _ in BAD_COMBINATIONS])
def test_invalid_combinations_fail_with_a_message(helm: str, args: list[str], expected: str) -> None:
    with pytest.raises(RenderError, match=re.escape(expected)):
        template(helm, *args)


# ---------------- the helm test script, against a stand-in API ----------------

class FakeApi(BaseHTTPRequestHandler):
    result: dict[str, Any] = {"primes": [11, 13, 17], "count": 3}
    submitted: list[Any] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeApi.submitted.append(body)
        self.reply(202, {"id": "j1", "status": "queued"})

    def do_GET(self) -> None:  # noqa: N802
        assert self.path == "/v1/jobs/j1?wait=10"
        self.reply(200, {"id": "j1", "status": "finished", "result": FakeApi.result})

    def reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("result", "ok"), [({"primes": [11, 13, 17], "count": 3}, True), ({"primes": [11]}, False)])
def test_helm_test_script(result: dict[str, Any], ok: bool) -> None:
    FakeApi.result, FakeApi.submitted = result, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = subprocess.run(
            [sys.executable, str(CHART / "files" / "helm-test.py"), f"http://127.0.0.1:{server.server_port}", "10"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    assert FakeApi.submitted == [{"type": "primes", "payload": {"lowest": 10, "highest": 17}}]
