"""The alert rules: promtool checks them, their unit tests pass, and every alert is tested firing and silent."""

from __future__ import annotations

import subprocess
import re
from pathlib import Path
from typing import Any

import yaml

from .conftest import RULES_FILE

RULE_TESTS = sorted((Path(__file__).parent / "rules").glob("*_test.yaml"))
# What the issue asks alerts for, and the alert answering it.
REQUIRED = {
    "backlog growing": "JobengineQueueBacklogGrowing",
    "wait time over an SLO": "JobengineWaitTimeOverSLO",
    "failure ratio": "JobengineJobFailureRatioHigh",
    "no workers for a non-empty queue": "JobengineNoWorkersForQueue",
    "API 5xx ratio": "JobengineApiErrorRatioHigh",
    "Redis unreachable": "JobengineRedisDown",
    # the chart review (issue 15)
    "a missing API scrape target": "JobengineApiTargetMissing",
    "KEDA scaler errors": "JobengineKedaScalerErrors",
    "Redis memory": "JobengineRedisMemoryHigh",
    "rejected writes (OOM)": "JobengineRedisRejectedWrites",
    "AOF errors": "JobengineRedisAofErrors",
}
ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/jobengine/jobengine/blob/main/docs/runbooks.md#"
VALUES = ROOT / "charts" / "jobengine" / "values.yaml"


def alerts() -> dict[str, dict]:
    doc = yaml.safe_load(RULES_FILE.read_text())
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule}


def test_promtool_check_rules(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(promtool: str) -> None:
    assert RULE_TESTS
    result = subprocess.run([promtool, "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = set(alerts())
    assert names - firing == set(), f"alerts never tested firing: {sorted(names - firing)}"
    assert names - silent == set(), f"alerts never tested silent: {sorted(names - silent)}"


def test_alerts_cover_the_issue_and_carry_runbooks() -> None:
    rules = alerts()
    for need, name in REQUIRED.items():
        assert name in rules, f"no alert for {need}"
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key, "").strip(), f"{name}: no {key}"
        assert "job_id" not in rule["expr"], name


def test_every_alert_links_its_runbook_section() -> None:
    sections = set(re.findall(r"^## (\w+)$", RUNBOOKS.read_text(), flags=re.M))
    for name, rule in alerts().items():
        url = rule["annotations"].get("runbook_url", "")
        assert url == RUNBOOK_BASE + name.lower(), f"{name}: runbook_url {url!r}"
        assert name in sections, f"{name}: no section in docs/runbooks.md"


def _values_path_exists(tree: Any, parts: list[str]) -> bool:
    """A dotted values path; `<name>` and `[]` stand for any map key or list item."""
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    if head.startswith("<") or head == "[]":
        children = list(tree.values()) if isinstance(tree, dict) else list(tree) if isinstance(tree, list) else []
        return any(_values_path_exists(c, rest) for c in children)
    head = head.removesuffix("[]")
    return isinstance(tree, dict) and head in tree and _values_path_exists(tree[head], rest)


def test_values_keys_named_in_alerts_and_notes_exist() -> None:
    """A runbook or NOTES.txt that names a values key sends the operator to a key that must exist."""
    values = yaml.safe_load(VALUES.read_text())
    top = "|".join(map(re.escape, values))
    texts = [a for r in alerts().values() for a in r["annotations"].values()]
    notes = (VALUES.parent / "templates" / "NOTES.txt").read_text()
    named = {m for t in texts for m in re.findall(rf"\b(?:{top})(?:\.(?:<\w+>|\w+(?:\[\])?))+", t)}
    named |= {m.removeprefix(".Values.") for m in re.findall(r"\.Values(?:\.\w+)+", notes)}
    assert named, "no values key named anywhere"
    missing = sorted(k for k in named if not _values_path_exists(values, re.split(r"\.(?![^<]*>)", k)))
    assert not missing, f"values keys that do not exist: {missing}"
