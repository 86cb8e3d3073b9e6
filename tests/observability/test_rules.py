"""The alert rules: promtool checks them, their unit tests pass, and every alert is tested firing and silent."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
}


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
