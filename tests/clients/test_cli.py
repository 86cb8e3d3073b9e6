"""The `jobengine` command run as a process against the real API and worker: every command, its --json output,
its tables, its exit codes, profiles, completion, and the live progress bar of `submit --wait`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from jobengine.redis_conn import free_port
from tests.clients.conftest import USER_KEY, Platform

JOBENGINE = shutil.which("jobengine", path=str(Path(sys.executable).parent)) or "jobengine"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def cli_env(platform: Platform, home: Path, **extra: str) -> dict[str, str]:
    """The platform's URL and key in the environment; no config file of the machine's user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBENGINE_", "TTY_", "FORCE_COLOR"))}
    env.update(JOBENGINE_URL=platform.url, JOBENGINE_API_KEY=platform.key, XDG_CONFIG_HOME=str(home),
               HOME=str(home), NO_COLOR="1", COLUMNS="120", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class Cli:
    def __init__(self, platform: Platform, home: Path) -> None:
        self.platform = platform
        self.home = home

    def run(self, *args: str, code: int = 0, stdin: str | None = None, env: dict[str, str] | None = None,
            **extra: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([JOBENGINE, *args], capture_output=True, text=True, input=stdin, timeout=60,
                                env=env if env is not None else cli_env(self.platform, self.home, **extra))
        assert result.returncode == code, f"exit {result.returncode}, wanted {code}\n{result.stdout}\n{result.stderr}"
        return result

    def json(self, *args: str, code: int = 0, **kwargs: Any) -> Any:
        return json.loads(self.run("--json", *args, code=code, **kwargs).stdout)


@pytest.fixture(scope="module")
def cli(platform: Platform, home: Path) -> Cli:
    return Cli(platform, home)


def test_submit_payload_sources_and_get(cli: Cli, tmp_path: Path) -> None:
    accepted = cli.json("submit", "primes", "--set", "lowest=10", "--set", "highest=17")
    assert accepted["type"] == "primes" and accepted["status"] == "queued" and accepted["idempotency_key"]
    job = cli.json("get", accepted["id"], "--wait")
    assert job["status"] == "finished" and job["result"] == {"primes": [11, 13, 17], "count": 3}

    inline = cli.json("submit", "primes", '{"lowest": 1, "highest": 100}', "--set", "highest=10", "--wait")
    assert inline["payload"] == {"lowest": 1, "highest": 10} and inline["result"]["count"] == 4
    (tmp_path / "payload.json").write_text('{"text": "to be or not to be", "top": 1}')
    from_file = cli.json("submit", "wordcount", f"@{tmp_path / 'payload.json'}", "--wait")
    assert from_file["result"] == {"words": 6, "top": [["to", 2]]}
    from_stdin = cli.json("submit", "echo", "@-", "--wait", stdin='{"message": "piped"}')
    assert from_stdin["result"]["message"] == "piped"
    nested = cli.json("submit", "echo", "--set", "message=plain words", "--queue", "high", "--wait")
    assert nested["result"]["message"] == "plain words" and nested["queue"] == "high"

    shown = cli.run("get", accepted["id"]).stdout  # for people: a grid and the result
    assert re.search(r"status\s+finished", shown) and '"count": 3' in shown


def test_submit_wait_shows_a_live_progress_bar(cli: Cli) -> None:
    """Run as a process whose stderr rich treats as a terminal (TTY_COMPATIBLE, TTY_INTERACTIVE), 100 columns."""
    env = cli_env(cli.platform, cli.home, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", COLUMNS="100", TERM="xterm")
    result = cli.run("submit", "sleep", "--set", "seconds=1.6", "--set", "steps=4", "--wait", env=env)
    frames = [f for f in re.split(r"\r|\x1b\[2K|\x1b\[\d*A", result.stderr) if "sleep" in f]
    assert len(frames) >= 3, result.stderr  # redrawn in place, not printed once
    percents = {int(p) for f in frames for p in re.findall(r"(\d+)%", f)}
    assert 100 in percents and len(percents & {25, 50, 75}) >= 1, percents  # the job's own reports moved it
    assert "step 4/4" in frames[-1] and "finished" in frames[-1] and "━" in frames[-1]
    assert re.search(r'"slept": 1\.6', re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout))  # the result


def test_failed_job_exits_1(cli: Cli) -> None:
    job = cli.json("submit", "echo", "--set", "fail=true", "--max-retries", "0", "--wait", code=1)
    assert job["status"] == "failed" and "echo failed on purpose" in job["error"]
    assert "EchoFailure: echo failed on purpose" in cli.run("get", job["id"], "--wait", code=1).stdout
    assert cli.json("retry", job["id"]) == {"id": job["id"], "status": "queued"}


def test_cancel_retry_and_conflicts(cli: Cli) -> None:
    later = cli.json("submit", "echo", "--set", "message=later", "--delay", "300")
    assert later["status"] == "scheduled"
    assert cli.run("cancel", later["id"]).stdout.split() == [later["id"], "canceled"]
    problem = json.loads(cli.run("--json", "cancel", later["id"], code=7).stderr)
    assert problem["status"] == 409 and problem["job_status"] == "canceled"
    assert cli.run("retry", later["id"]).stdout.split() == [later["id"], "queued"]
    assert cli.json("get", later["id"], "--wait")["status"] == "finished"
    assert "409 Conflict" in cli.run("retry", later["id"], code=7).stderr
    scheduled = cli.json("submit", "echo", "--run-at", "2027-06-01T12:00:00+02:00")
    assert scheduled["status"] == "scheduled"
    assert datetime.fromisoformat(scheduled["run_at"]) == datetime(2027, 6, 1, 10, tzinfo=timezone.utc)
    assert cli.json("cancel", scheduled["id"])["status"] == "canceled"
    assert "not an RFC 3339 time" in cli.run("submit", "echo", "--run-at", "tomorrow", code=2).stderr


def test_wait_timeout_exits_6(cli: Cli) -> None:
    job = cli.json("submit", "sleep", "--set", "seconds=30", "--wait", "--wait-timeout", "0.5", code=6)
    assert job["status"] in ("queued", "started")
    assert cli.json("cancel", job["id"])["status"] in ("canceled", "canceling")


def test_ls_filters_and_pages(cli: Cli) -> None:
    ids = {cli.json("submit", "counted", "--set", "seconds=0", "--wait")["id"] for _ in range(3)}
    first = cli.json("ls", "--type", "counted", "--limit", "2")
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = cli.json("ls", "--type", "counted", "--limit", "2", "--cursor", first["next_cursor"])
    assert {j["id"] for j in first["items"] + second["items"]} == ids and second["next_cursor"] is None
    everything = cli.json("ls", "--type", "counted", "--status", "finished", "--limit", "1", "--all")
    assert {j["id"] for j in everything["items"]} == ids
    assert cli.json("ls", "--type", "counted", "--status", "failed")["items"] == []
    table = cli.run("ls", "--type", "counted", "--limit", "2")
    assert table.stdout.splitlines()[0].split()[:4] == ["ID", "TYPE", "QUEUE", "STATUS"]
    assert "more: jobengine ls --cursor" in table.stderr
    cli.run("ls", "--status", "nope", code=2)


def test_types_queues_health(cli: Cli) -> None:
    types = cli.json("types")
    assert {"primes", "echo", "sleep"} <= {t["name"] for t in types} and all("input_schema" in t for t in types)
    primes = cli.json("types", "primes")
    assert primes["input_schema"]["properties"]["highest"]["type"] == "integer"
    human = cli.run("types", "primes").stdout
    assert "primes input schema" in human and '"lowest"' in human
    assert "Find the primes in [lowest, highest]" in cli.run("types").stdout
    cli.run("types", "nope", code=3)
    queues = {q["name"]: q for q in cli.json("queues")}
    assert queues["default"]["workers"] >= 1
    assert "IN FLIGHT" in cli.run("queues").stdout
    assert cli.json("health") == {"alive": True, "ready": True, "detail": ""}


def test_exit_codes_of_errors(cli: Cli) -> None:
    cli.run("get", "0123456789abcdef0123456789abcdef", code=3)
    denied = cli.run("queues", code=4, JOBENGINE_API_KEY="nobody.wrong")
    assert "401 Unauthorized" in denied.stderr
    cli.run("queues", code=4, JOBENGINE_API_KEY=USER_KEY)  # 403: no admin scope
    down = cli.run("--retries", "1", "queues", code=5, JOBENGINE_URL=f"http://127.0.0.1:{free_port()}")
    assert "ConnectError" in down.stderr
    invalid = cli.run("submit", "primes", "--set", "lowest=9", "--set", "highest=1", code=2)
    assert "422 Validation failed" in invalid.stderr and "payload" in invalid.stderr
    problem = json.loads(cli.run("--json", "submit", "primes", "--set", "lowest=x", code=2).stderr)
    assert {e["field"] for e in problem["errors"]} >= {"payload.lowest", "payload.highest"}
    assert "expected key=value" in cli.run("submit", "echo", "--set", "oops", code=2).stderr
    assert "not valid JSON" in cli.run("submit", "echo", "{nope", code=2).stderr
    cli.run("submit", code=2)  # usage: TYPE missing
    cli.run("frobnicate", code=2)


def test_profiles_from_the_config_file(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'default_profile = "test"\n\n[profiles.test]\nurl = "{cli.platform.url}"\n'
                      f'api_key = "{cli.platform.key}"\n\n[profiles.user]\nurl = "{cli.platform.url}"\n'
                      f'api_key_env = "USER_KEY_VAR"\n')
    env = {k: v for k, v in cli_env(cli.platform, cli.home).items() if k not in ("JOBENGINE_URL", "JOBENGINE_API_KEY")}
    env.update(JOBENGINE_CONFIG=str(config), USER_KEY_VAR=USER_KEY)
    assert "default" in {q["name"] for q in cli.json("queues", env=env)}  # the default profile: admin key
    cli.run("--profile", "user", "queues", code=4, env=env)  # its key from USER_KEY_VAR: no admin scope
    assert cli.json("--profile", "user", "types", env=env)
    assert "no profile 'prod'" in cli.run("--profile", "prod", "types", code=2, env=env).stderr
    # a flag beats the profile; the environment beats the default profile
    cli.run("--api-key", "nobody.wrong", "types", code=4, env=env)
    cli.run("queues", code=4, env={**env, "JOBENGINE_API_KEY": USER_KEY})
    (cli.home / "jobengine").mkdir(exist_ok=True)  # the default place: ~/.config/jobengine/config.toml
    (cli.home / "jobengine" / "config.toml").write_text(config.read_text())
    del env["JOBENGINE_CONFIG"]
    assert cli.json("queues", env=env)


def test_shell_completion_and_version(cli: Cli) -> None:
    assert cli.run("--version").stdout.strip() == "jobengine-client 0.1.0"
    # the script `jobengine --install-completion` writes (asked for bash by name: --show-completion detects the
    # shell from the process tree, and a test run from a non-shell parent has none)
    script = cli.run(env=cli_env(cli.platform, cli.home, _JOBENGINE_COMPLETE="source_bash")).stdout
    assert "_JOBENGINE_COMPLETE" in script and "complete " in script
    env = cli_env(cli.platform, cli.home, _JOBENGINE_COMPLETE="complete_bash", COMP_WORDS="jobengine su",
                  COMP_CWORD="1")
    assert "submit" in cli.run(env=env).stdout
