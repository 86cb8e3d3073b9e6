"""The chart's API keys: authentication on by default, the key file mounted from a Secret into the
api pods only, and a helm test that authenticates with its own key from the same Secret."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jobengine_api.keyring import KeyRing, parse_keys

from .conftest import CHART, RenderError, Rendered, template


def _api(rendered: Rendered) -> dict[str, Any]:
    return rendered.component("api")[0]["spec"]["template"]["spec"]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_auth_is_on_by_default_and_the_helm_test_key_opens_the_door(render) -> None:  # type: ignore[no-untyped-def]
    rendered: Rendered = render("default")
    secret = rendered.get("Secret", "rel-jobengine-api-keys")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    ring = KeyRing(parse_keys(data["keys.json"], yaml_ok=False))
    principal = ring.authenticate(data["helm-test-key"])
    assert principal is not None and principal.tenant == "helm-test"
    assert principal.scopes == {"submit", "read"}
    assert data["helm-test-key"].split(".", 1)[1] not in data["keys.json"]  # only its hash is in the file

    pod = _api(rendered)
    env = _env(pod["containers"][0])
    assert env["JOBENGINE_AUTH"] == "on" and env["JOBENGINE_API_KEYS_FILE"] == "/etc/jobengine/api-keys/keys.json"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "api-keys")
    assert mount["mountPath"] == "/etc/jobengine/api-keys" and mount["readOnly"] and "subPath" not in mount
    volume = next(v for v in pod["volumes"] if v["name"] == "api-keys")["secret"]
    assert volume["secretName"] == "rel-jobengine-api-keys"
    assert volume["items"] == [{"key": "keys.json", "path": "keys.json"}]  # not the test's key

    test_env = _env(rendered.kind("Pod")[0]["spec"]["containers"][0])
    assert test_env["JOBENGINE_TEST_API_KEY"]["secretKeyRef"]["name"] == "rel-jobengine-api-keys"
    assert test_env["JOBENGINE_TEST_API_KEY"]["secretKeyRef"]["key"] == "helm-test-key"
    for worker in rendered.component("worker"):  # workers never see API keys
        assert "api-keys" not in json.dumps(worker)


def test_values_keys_join_the_file_and_an_existing_secret_is_used_as_is(  # type: ignore[no-untyped-def]
        helm: str, render) -> None:
    entry = {"id": "k1", "tenant": "acme", "scopes": ["submit"], "secret_hash": "sha256:" + "ab" * 32}
    rendered = template(helm, "--set-json", f"apiKeys.keys=[{json.dumps(entry)}]")
    data = rendered.get("Secret", "rel-jobengine-api-keys")["data"]
    ids = set(parse_keys(base64.b64decode(data["keys.json"]).decode(), yaml_ok=False))
    assert ids == {"k1", "helm-test"}

    existing = render("api-keys")
    assert not [s for s in existing.kind("Secret") if s["metadata"]["name"].endswith("api-keys")]
    pod = _api(existing)
    volume = next(v for v in pod["volumes"] if v["name"] == "api-keys")["secret"]
    assert volume["secretName"] == "jobengine-api-keys"
    assert _env(pod["containers"][0])["JOBENGINE_AUTH_REFRESH_SECONDS"] == "2"


def test_auth_off_is_explicit(helm: str) -> None:
    rendered = template(helm, "--set", "apiKeys.enabled=false")
    env = _env(_api(rendered)["containers"][0])
    assert env["JOBENGINE_AUTH"] == "off" and env["JOBENGINE_AUTH_ALLOW_OFF_IN_PRODUCTION"] == "true"
    assert "rel-jobengine-api-keys" not in rendered.manifest
    assert "env" not in rendered.kind("Pod")[0]["spec"]["containers"][0]


@pytest.mark.parametrize("entry", [
    {"id": "k1", "tenant": "acme", "scopes": ["root"], "secret_hash": "sha256:" + "ab" * 32},
    {"id": "k1", "tenant": "acme", "scopes": ["read"], "secret_hash": "plain-secret"},
    {"id": "k.1", "tenant": "acme", "scopes": ["read"], "secret_hash": "sha256:" + "ab" * 32},
])
def test_schema_rejects_bad_key_entries(helm: str, entry: dict[str, Any]) -> None:
    with pytest.raises(RenderError, match="/apiKeys/keys/0"):
        template(helm, "--set-json", f"apiKeys.keys=[{json.dumps(entry)}]")


class KeyedApi(BaseHTTPRequestHandler):
    key = "helm-test.s3cret"
    seen: list[str | None] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.check() and self.reply(202, {"id": "j1", "status": "queued"})

    def do_GET(self) -> None:  # noqa: N802
        self.check() and self.reply(200, {"id": "j1", "status": "finished", "result": {"primes": [11, 13, 17]}})

    def check(self) -> bool:
        KeyedApi.seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != f"Bearer {KeyedApi.key}":
            self.reply(401, {"status": 401})
            return False
        return True

    def reply(self, code: int, body: dict[str, Any]) -> bool:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("key", "ok"), [("helm-test.s3cret", True), ("helm-test.wrong", False), (None, False)])
def test_helm_test_script_sends_its_key(key: str | None, ok: bool) -> None:
    KeyedApi.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeyedApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PATH": "/usr/bin:/bin"} | ({"JOBENGINE_TEST_API_KEY": key} if key else {})
    try:
        proc = subprocess.run([sys.executable, str(CHART / "files" / "helm-test.py"),
                               f"http://127.0.0.1:{server.server_port}", "10"],
                              capture_output=True, text=True, timeout=30, check=False, env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    if not ok:
        assert "refused the test's key (401)" in proc.stderr
