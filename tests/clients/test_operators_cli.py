"""The `jobengine` operator and schedule commands run as processes against the real API and worker: workers,
queues pause/resume, bulk retry followed with --wait (its progress bar and counts), ops, and schedules created
by the CLI firing jobs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from jobengine_client import Client
from tests.clients.conftest import USER_KEY, Platform
from tests.clients.test_cli import Cli, cli_env
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def cli(platform: Platform, home: Path) -> Cli:
    return Cli(platform, home)


def test_workers_and_queues_pause_resume(cli: Cli) -> None:
    workers = cli.json("workers")
    mine = next(w for w in workers if w["name"] == cli.platform.worker.name)
    assert "default" in mine["queues"] and mine["rss_bytes"] > 0
    table = cli.run("workers").stdout
    assert table.splitlines()[0].split()[:4] == ["NAME", "POOL", "QUEUES", "STATE"]
    assert "HEARTBEAT" in table and "MEMORY" in table and "MiB" in table

    assert cli.run("queues", "pause", "low").stdout.split() == ["low", "paused"]
    waiting = cli.json("submit", "echo", "--queue", "low", "--set", "message=w")
    assert cli.json("submit", "echo", "--set", "message=control", "--wait")["status"] == "finished"
    time.sleep(0.5)  # claim rounds of the worker passed over low
    assert cli.json("get", waiting["id"])["status"] == "queued"
    low = next(q for q in cli.json("queues") if q["name"] == "low")
    assert low["paused"] and not low["refuse_submits"]
    row = next(line for line in cli.run("queues").stdout.splitlines() if line.split()[:1] == ["low"])
    assert row.split()[-1] == "yes" and "PAUSED" in cli.run("queues").stdout

    refused = cli.json("queues", "pause", "low", "--refuse-submits")
    assert refused["paused"] and refused["refuse_submits"]
    problem = json.loads(cli.run("--json", "submit", "echo", "--queue", "low", code=7).stderr)
    assert problem["status"] == 409
    assert cli.run("queues", "resume", "low").stdout.split() == ["low", "active"]
    assert cli.json("get", waiting["id"], "--wait")["status"] == "finished"
    cli.run("queues", "pause", "nope", code=3)
    cli.run("queues", "pause", "low", code=4, JOBENGINE_API_KEY=USER_KEY)


def test_bulk_retry_waits_with_a_progress_bar_and_counts(cli: Cli) -> None:
    ids = [cli.json("submit", "echo", "--set", "fail=true", "--max-retries", "0", "--queue", "high", "--wait",
                    code=1)["id"] for _ in range(3)]
    env = cli_env(cli.platform, cli.home, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", COLUMNS="120", TERM="xterm")
    result = cli.run("bulk", "retry", "--queue", "high", "--type", "echo", env=env)  # --wait: stderr is a terminal
    assert "started operation" in result.stderr
    frames = [f for f in re.split(r"\r|\x1b\[2K|\x1b\[\d*A", result.stderr) if "retry" in f and "%" in f]
    assert frames and "100%" in frames[-1] and "done" in frames[-1] and "━" in frames[-1], result.stderr
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout)
    assert re.search(r"retry done: matched 3, skipped \d+, examined \d+", plain), plain
    for ident in ids:
        assert cli.json("get", ident, "--wait", code=1)["attempts"] == 2  # ran again (and failed again)

    op = cli.json("bulk", "retry", "--queue", "high", "--type", "echo", "--wait")
    assert (op["state"], op["counts"]["matched"]) == ("done", 3)
    started = cli.json("bulk", "delete", "--type", "echo", "--status", "failed",
                       "--created-after", "2020-01-01T00:00:00Z", "--no-wait")
    assert started["state"] in ("pending", "running", "done")
    ended = cli.json("ops", "get", started["id"], "--wait")
    assert (ended["state"], ended["counts"]["matched"]) == ("done", 3)
    cli.run("get", ids[0], code=3)

    later = cli.json("submit", "counted", "--delay", "300")
    canceled = cli.json("bulk", "cancel", "--type", "counted", "--wait")
    assert canceled["counts"]["matched"] == 1 and cli.json("get", later["id"])["status"] == "canceled"

    listed = cli.json("ops", "ls")
    assert {op["id"], started["id"], canceled["id"]} <= {o["id"] for o in listed}
    table = cli.run("ops", "ls").stdout
    assert table.splitlines()[0].split()[:3] == ["ID", "ACTION", "STATE"] and "type=echo" in table
    assert "matched 3" in cli.run("ops", "get", op["id"]).stdout
    assert cli.json("ops", "cancel", op["id"])["state"] == "done"
    cli.run("ops", "get", "0" * 32, code=3)
    problem = json.loads(cli.run("--json", "bulk", "retry", "--queue", "nope", "--no-wait", code=2).stderr)
    assert problem["status"] == 422
    assert "--created-after" in cli.run("bulk", "cancel", "--created-after", "yesterday", code=2).stderr


def test_schedules_created_by_the_cli_fire_jobs(cli: Cli, tmp_path: Path) -> None:
    made = cli.json("schedules", "create", "cli-every", "counted", "--every", "1", "--set", "seconds=0",
                    "--overlap", "skip")
    assert (made["interval_seconds"], made["overlap"], made["state"]) == (1, "skip", "active")
    with Client(cli.platform.url, api_key=cli.platform.key) as client:
        runs = wait_until(lambda: [r for r in client.schedule("cli-every").runs if r.job_id], timeout=15)
        assert client.wait(runs[0].job_id or "", timeout=30).ok  # the schedule's job ran
    shown = cli.run("schedules", "get", "cli-every", "--next", "3").stdout
    assert "next runs (UTC)" in shown and "last runs (UTC)" in shown and "enqueued" in shown
    assert len(cli.json("schedules", "get", "cli-every", "--next", "3")["next_runs"]) == 3

    (tmp_path / "spec.json").write_text(json.dumps({"name": "cli-nightly", "type": "echo", "payload": {
        "message": "from a file"}, "cron": "30 2 * * *", "timezone": "Europe/Berlin", "catch_up": "latest"}))
    from_file = cli.json("schedules", "create", f"@{tmp_path / 'spec.json'}")
    assert (from_file["cron"], from_file["timezone"], from_file["catch_up"]) == ("30 2 * * *", "Europe/Berlin",
                                                                                "latest")
    line = cli.run("schedules", "create", "cli-cron", "echo", "--cron", "0 3 * * 1", "--tz", "UTC",
                   "--payload", '{"message": "m"}').stdout
    assert line.startswith("cli-cron active: echo cron 0 3 * * 1, next ")

    assert [s["name"] for s in cli.json("schedules", "ls", "--all", "--limit", "1")["items"]] == [
        "cli-cron", "cli-every", "cli-nightly"]
    table = cli.run("schedules", "ls", "--limit", "2")
    assert table.stdout.splitlines()[0].split()[:4] == ["NAME", "TYPE", "RULE", "STATE"]
    assert "more: jobengine schedules ls --cursor" in table.stderr

    changed = cli.json("schedules", "update", "cli-nightly", "--set", "fail=false", "--every", "3600")
    assert changed["payload"] == {"message": "from a file", "fail": False} and changed["cron"] is None
    assert cli.json("schedules", "pause", "cli-every")["state"] == "paused"
    assert "cli-every active" in cli.run("schedules", "resume", "cli-every").stdout
    job = cli.json("schedules", "trigger", "cli-cron")
    assert cli.json("get", job["id"], "--wait")["result"]["message"] == "m"

    cli.run("schedules", "create", "cli-cron", "echo", "--cron", "0 3 * * *", code=7)  # exists
    invalid = cli.run("schedules", "create", "bad", "primes", "--cron", "0 3 * * *", "--set", "lowest=x", code=2)
    assert "payload.lowest" in invalid.stderr
    assert "--cron EXPR or --every" in cli.run("schedules", "create", "bad", "echo", code=2).stderr
    assert "nothing to change" in cli.run("schedules", "update", "cli-cron", code=2).stderr
    for name in ("cli-every", "cli-nightly", "cli-cron"):
        assert cli.run("schedules", "delete", name).stdout.strip() == f"{name} deleted"
    cli.run("schedules", "get", "cli-every", code=3)
    cli.run("schedules", "delete", "cli-every", code=3)
