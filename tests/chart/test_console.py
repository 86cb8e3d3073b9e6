"""The web console in the chart (issue 19): `console.enabled` (off by default, on in k8s/values-dev.yaml) turns
on JOBENGINE_CONSOLE in the API's config and routes /console through the same Ingress as the API, to the
Service's http port only."""

from __future__ import annotations

import pytest

from .conftest import RenderError, Rendered, template

API = "rel-jobengine-api"


def config(rendered: Rendered) -> dict[str, str]:
    return rendered.get("ConfigMap", "rel-jobengine-config")["data"]


def routed(rendered: Rendered) -> dict[str, tuple[str, str]]:
    """path -> (pathType, Service port name) of the API's Ingress (every host routes the same paths)."""
    ingress = rendered.get("Ingress", API)
    out = {}
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            assert p["backend"]["service"]["name"] == API
            out[p["path"]] = (p["pathType"], p["backend"]["service"]["port"]["name"])
    return out


def test_the_console_is_off_by_default_and_not_routed(render, helm: str) -> None:  # type: ignore[no-untyped-def]
    assert "JOBENGINE_CONSOLE" not in config(render("default"))
    assert "/console" not in routed(template(helm, "--set", "ingress.enabled=true"))


def test_console_enabled_serves_it_and_routes_it_through_the_same_ingress(helm: str) -> None:
    rendered = template(helm, "--set", "ingress.enabled=true", "--set", "console.enabled=true",
                        "--set", "console.sessionSeconds=3600")
    data = config(rendered)
    assert data["JOBENGINE_CONSOLE"] == "true" and data["JOBENGINE_CONSOLE_SESSION_SECONDS"] == "3600"
    paths = routed(rendered)
    assert paths["/console"] == ("Prefix", "http")  # the API's port, never metrics
    assert {"/v1", "/docs"} <= set(paths)  # beside the API, in the same Ingress
    assert len(rendered.kind("Ingress")) == 1
    no_ingress = template(helm, "--set", "console.enabled=true")
    # no Ingress: the console is still served (through a port-forward)
    assert config(no_ingress)["JOBENGINE_CONSOLE"] == "true" and not no_ingress.kind("Ingress")


def test_the_dev_values_turn_the_console_on(render) -> None:  # type: ignore[no-untyped-def]
    dev, kind = render("dev"), render("kind")
    assert config(dev)["JOBENGINE_CONSOLE"] == "true" and "/console" in routed(dev)
    assert "JOBENGINE_CONSOLE" not in config(kind) and "/console" not in routed(kind)


@pytest.mark.parametrize("args, message", [
    (["--set", "console.sessionSeconds=10"], "sessionSeconds"),
    (["--set", "console.enabeld=true"], "enabeld"),
    (["--set", "console.enabled=yes"], "enabled"),
])
def test_the_schema_checks_the_console_values(helm: str, args: list[str], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        template(helm, *args)
