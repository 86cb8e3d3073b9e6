"""Chart fixtures: a real helm (installed by scripts/install-tools.sh when missing), each value set
rendered once per session, and strict validators for built-in kinds and the KEDA and Prometheus
Operator CRDs (../shared/k8s-crds, or the folder named by JOBENGINE_K8S_CRDS)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "jobengine"
CI_DIR = CHART / "ci"
NAMESPACE = "jobs"
RELEASE = "rel"
KUBERNETES_VERSION = "1.35.0"

# Value sets of the render matrix: the defaults plus one file per toggle in charts/jobengine/ci/.
# The kind values of the dev loop (k8s/) are rendered and validated too.
VALUE_SETS: dict[str, list[Path]] = {"default": []} | {
    path.name.removesuffix("-values.yaml"): [path] for path in sorted(CI_DIR.glob("*-values.yaml"))
} | {"kind": [ROOT / "k8s/values-kind.yaml"], "dev": [ROOT / "k8s/values-kind.yaml", ROOT / "k8s/values-dev.yaml"]}


def find_helm() -> str:
    """helm from PATH, else .tools/bin, else fetched by scripts/install-tools.sh."""
    found = shutil.which("helm") or (str(ROOT / ".tools/bin/helm") if (ROOT / ".tools/bin/helm").exists() else None)
    if found:
        return found
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/install-tools.sh")], capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0 or not (ROOT / ".tools/bin/helm").exists():
        pytest.fail(f"no helm on PATH and scripts/install-tools.sh failed:\n{proc.stderr[-2000:]}")
    return str(ROOT / ".tools/bin/helm")


@pytest.fixture(scope="session")
def helm() -> str:
    return find_helm()


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


@dataclass
class Rendered:
    """The objects of one `helm template`, with lookups used by the wiring tests."""

    name: str
    objects: list[dict[str, Any]]
    manifest: str = field(repr=False)

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} not rendered in value set {self.name!r}")

    def workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet")]

    def pods(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(owner name, pod labels, pod spec) of every pod template, and of bare Pods (helm test)."""
        out = [(w["metadata"]["name"], w["spec"]["template"]["metadata"]["labels"], w["spec"]["template"]["spec"])
               for w in self.workloads()]
        out += [(p["metadata"]["name"], p["metadata"]["labels"], p["spec"]) for p in self.kind("Pod")]
        out += [(j["metadata"]["name"], t["metadata"]["labels"], t["spec"])
                for j in self.kind("ScaledJob") for t in [j["spec"]["jobTargetRef"]["template"]]]
        return out

    def component(self, component: str) -> list[dict[str, Any]]:
        return [w for w in self.workloads()
                if w["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component]


def template(helm: str, *args: str, values: list[Path] | None = None, name: str = "adhoc") -> Rendered:
    # helm template has no lookup: the generated secrets (a fresh one each render) are allowed here;
    # tests/chart/test_chart_review.py renders without this and checks the refusal
    cmd = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBERNETES_VERSION,
           "--set", "secrets.generateWithoutLookup=true"]
    for path in values or []:
        cmd += ["-f", str(path)]
    proc = run_helm(helm, *cmd, *args)
    if proc.returncode != 0:
        raise RenderError(proc.stderr)
    objects = [o for o in yaml.safe_load_all(proc.stdout) if o]
    return Rendered(name=name, objects=objects, manifest=proc.stdout)


class RenderError(Exception):
    pass


_cache: dict[str, Rendered] = {}


@pytest.fixture(scope="session")
def render(helm: str) -> Callable[[str], Rendered]:
    """render(value_set) -> Rendered, once per session and value set."""

    def _render(value_set: str) -> Rendered:
        if value_set not in _cache:
            _cache[value_set] = template(helm, values=VALUE_SETS[value_set], name=value_set)
        return _cache[value_set]

    return _render


@pytest.fixture(params=sorted(VALUE_SETS), scope="session")
def rendered(request: pytest.FixtureRequest, render: Callable[[str], Rendered]) -> Rendered:
    return render(request.param)


# ---------------- strict validation of custom resources against their CRDs ----------------

def crd_dir() -> Path:
    return Path(os.environ.get("JOBENGINE_K8S_CRDS") or ROOT.parent / "shared" / "k8s-crds")


def _strict(schema: Any) -> Any:
    """The CRD folder's README rules: objects with properties and no preserve-unknown-fields reject
    unknown keys; x-kubernetes-int-or-string means integer or string."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}] + out.get("anyOf", [])
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields") \
            and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a strict validator, from every CRD file of crd_dir()."""
    folder = crd_dir()
    if not folder.is_dir():
        pytest.fail(f"CRD folder {folder} not found: set JOBENGINE_K8S_CRDS to a copy of shared/k8s-crds")
    validators = {}
    for path in sorted(folder.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators
