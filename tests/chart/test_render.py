"""The chart lints strictly and every object of every value set passes strict schema validation:
built-in kinds for Kubernetes 1.35 (kubernetes-validate), KEDA and Prometheus Operator kinds
against their CRDs."""

from __future__ import annotations

import kubernetes_validate
import pytest

from .conftest import CHART, KUBERNETES_VERSION, VALUE_SETS, Rendered, crd_validators, run_helm

CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict(helm: str, value_set: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in VALUE_SETS[value_set]:
        args += ["-f", str(path)]
    proc = run_helm(helm, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_every_object_is_valid(rendered: Rendered) -> None:
    errors = []
    for obj in rendered.objects:
        ref = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"].startswith(CRD_GROUPS):
            validator = crd_validators().get((obj["apiVersion"], obj["kind"]))
            if validator is None:
                errors.append(f"{ref}: no CRD for {obj['apiVersion']} {obj['kind']}")
                continue
            errors += [f"{ref}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{ref}: {'/'.join(map(str, exc.path))}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError:
                errors.append(f"{ref}: {obj['apiVersion']} {obj['kind']} is not a Kubernetes {KUBERNETES_VERSION} kind")
    assert not errors, "\n".join(errors)


def test_object_names_are_unique_and_short(rendered: Rendered) -> None:
    seen = set()
    for obj in rendered.objects:
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in seen, f"{key} rendered twice"
        seen.add(key)
        assert len(obj["metadata"]["name"]) <= 63


def test_matrix_covers_the_toggles(render) -> None:  # type: ignore[no-untyped-def]
    """The CI matrix really switches the features on (a value set that renders nothing new is useless)."""
    kinds = {name: {o["kind"] for o in render(name).objects} for name in VALUE_SETS}
    assert "ScaledObject" not in kinds["default"] and "HorizontalPodAutoscaler" in kinds["default"]
    assert {"ScaledObject", "TriggerAuthentication"} <= kinds["keda"]
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds["monitoring"]
    assert "ServiceMonitor" not in kinds["default"]
    assert "Ingress" in kinds["ingress-tls"]
    assert "NetworkPolicy" in kinds["networkpolicy"]
    assert "StatefulSet" not in kinds["external-redis-tls"]
    assert len(render("two-pools").kind("ScaledObject")) == 2
