"""The README against the running app: its curl session is replayed on a real API + worker and must answer what
the README shows; every endpoint of its API table is served with the method it names."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
README_HOST = "localhost:8000"  # where `make run` listens, as the README's commands spell it
JOB_ID = re.compile(r"\b[0-9a-f]{32}\b")


@dataclass
class CurlStep:
    """One `$ curl ...` of the README's session and the answer printed under it."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    shown: str = ""


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def curl_session() -> list[CurlStep]:
    """The commands of the README's ```console block, with their continuation lines joined."""
    block = re.search(r"```console\n(.*?)```", section("A session with curl"), re.S)
    assert block, "the README's curl session (a ```console block) is gone"
    steps: list[CurlStep] = []
    lines = iter(block.group(1).splitlines())
    for line in lines:
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\"):
                command = command[:-1] + next(lines).strip()
            steps.append(parse_curl(command))
        elif line.strip():
            steps[-1].shown += line.strip()
    return steps


def parse_curl(command: str) -> CurlStep:
    """The flags the README uses; any other flag fails the test, so a new one is checked, not ignored."""
    args = shlex.split(command)
    assert args[0] == "curl", command
    method, url, headers, body = "GET", "", {}, None
    rest = iter(args[1:])
    for arg in rest:
        if arg == "-s":
            continue
        if arg == "-X":
            method = next(rest)
        elif arg == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            body = next(rest)
            method = method if method != "GET" else "POST"
        elif arg.startswith("-"):
            raise AssertionError(f"the README's curl uses {arg}, which this test does not replay: {command}")
        else:
            url = arg
    assert url.startswith(README_HOST), f"the README's curl calls {url}, not the local API at {README_HOST}"
    return CurlStep(method, url.removeprefix(README_HOST), headers, body)


def shown_json(text: str) -> tuple[dict[str, Any], bool]:
    """The answer the README shows, and whether it is abridged (ends in `,...}`: the fields shown must match)."""
    abridged = text.endswith(",...}")
    return orjson.loads(text[: -len(",...}")] + "}" if abridged else text), abridged


def test_the_readme_curl_session_answers_what_the_readme_shows(start_api, start_worker) -> None:
    """As under `make run`: development mode, no key."""
    steps = curl_session()
    assert len(steps) >= 3
    api = start_api(key=None, JOBENGINE_ENV="development", JOBENGINE_AUTH="auto")
    start_worker()
    ids: dict[str, str] = {}  # the README's job id -> the id this run got
    for step in steps:
        url = JOB_ID.sub(lambda m: ids.get(m.group(0), m.group(0)), step.url)
        resp = api.client.request(step.method, url, headers=step.headers, content=step.body)
        got = resp.json()
        shown_text = step.shown
        readme_ids = JOB_ID.findall(shown_text)
        if readme_ids and "id" in got:
            ids.setdefault(readme_ids[0], got["id"])
        shown_text = JOB_ID.sub(lambda m: ids.get(m.group(0), m.group(0)), shown_text)
        shown, abridged = shown_json(shown_text)
        expected_status = shown.get("status") if isinstance(shown.get("status"), int) else None
        assert resp.status_code in ((expected_status,) if expected_status else (200, 202)), (step, resp.text)
        if abridged:
            assert {k: got.get(k) for k in shown} == shown, (step, got)
        else:
            assert got == shown, (step, got)


METRICS_PORT_SETTING = "JOBENGINE_API_METRICS_PORT"


def table_endpoints() -> list[tuple[str, str, bool]]:
    """(method, path, on the metrics port) of every endpoint in the README's API table; a path without a
    method is a GET; a row that names the metrics port setting is served there, not on the API port."""
    rows = [line for line in section("API").splitlines() if line.startswith("| `")]
    assert rows, "the README's API table is gone"
    endpoints = []
    for row in rows:
        first_cell = row.split("|")[1]
        for spec in re.findall(r"`([^`]+)`", first_cell):
            if spec == METRICS_PORT_SETTING:
                continue
            method, _, path = spec.rpartition(" ")
            endpoints.append((method or "GET", path, METRICS_PORT_SETTING in first_cell))
    return endpoints


def template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_endpoint_of_the_readme_table_is_served(api) -> None:  # type: ignore[no-untyped-def]
    endpoints = table_endpoints()
    assert ("POST", "/v1/jobs", False) in endpoints and len(endpoints) >= 10
    assert ("GET", "/metrics", True) in endpoints, "the README no longer says where /metrics is served"
    openapi = api.client.get("/openapi.json").json()["paths"]
    served = {(method.upper(), template(path)) for path, ops in openapi.items() for method in ops}
    for method, path, on_metrics_port in endpoints:
        if path.startswith("/v1/"):
            assert (method, template(path)) in served, f"README names {method} {path}; OpenAPI has {sorted(served)}"
        elif on_metrics_port:  # served on its own port, and not on the API's
            resp = httpx.request(method, api.metrics_url.rsplit("/", 1)[0] + path, timeout=30)
            assert resp.status_code == 200, f"README names {method} {path} on the metrics port: {resp.status_code}"
            assert api.client.request(method, path).status_code == 404, f"{path} is still on the API port"
        else:  # probes stay out of the API's schema: they must answer
            resp = api.client.request(method, path)
            assert resp.status_code == 200, f"README names {method} {path}: {resp.status_code} {resp.text[:200]}"


@pytest.mark.parametrize("step", [0, 1, 2], ids=["submit", "wait", "invalid"])
def test_the_session_parser_reads_the_readme(step: int) -> None:
    """The parser itself: the README's three steps as the README writes them."""
    steps = curl_session()
    assert steps[step].method == ("GET" if step == 1 else "POST") and steps[step].url.startswith("/v1/jobs")
    assert steps[step].shown.startswith("{")


def test_parse_curl_refuses_flags_it_does_not_replay() -> None:
    with pytest.raises(AssertionError, match="-k"):
        parse_curl("curl -k localhost:8000/v1/jobs")
    assert parse_curl("curl -s 'localhost:8000/v1/jobs?x=1'") == CurlStep("GET", "/v1/jobs?x=1")


def test_an_abridged_answer_keeps_the_fields_shown() -> None:
    assert shown_json('{"a":1,"b":null,...}') == ({"a": 1, "b": None}, True)
    assert shown_json('{"a":1}') == ({"a": 1}, False)


def test_the_readme_schedules_session_answers_what_the_readme_shows(start_api, start_worker) -> None:
    """The Schedules section's curl commands, as under `make run`: each answer has the fields shown, except the
    ones that depend on the day (times) or on the run (job ids)."""
    block = re.search(r"```console\n(.*?)```", section("Schedules"), re.S)
    assert block, "the README's schedules session is gone"
    steps: list[CurlStep] = []
    lines = iter(block.group(1).splitlines())
    for line in lines:
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\"):
                command = command[:-1] + next(lines).strip()
            steps.append(parse_curl(command))
        elif line.strip():
            steps[-1].shown += line.strip()
    assert [s.method for s in steps] == ["POST", "POST", "GET"]
    api = start_api(key=None, JOBENGINE_ENV="development", JOBENGINE_AUTH="auto")
    start_worker()
    varying = {"next_run_at", "next_runs", "runs", "id", "location", "created_at", "updated_at", "last_job_id"}
    for step in steps:
        resp = api.client.request(step.method, step.url, headers=step.headers, content=step.body)
        assert resp.status_code in (200, 201, 202), (step, resp.text)
        got = resp.json()
        shown, _ = shown_json(re.sub(r",\.\.\.,", ",", step.shown))  # (a '...' inside the object: fields left out)
        assert set(shown) <= set(got), (step, got)
        assert {k: got[k] for k in shown if k not in varying} == {k: v for k, v in shown.items() if k not in varying}
        if step.method == "GET":  # the trigger's run, with its job's id and status
            run = got["runs"][0]
            assert run["outcome"] == "triggered" and run["job_id"] and "job_status" in run
            assert len(got["next_runs"]) == 3
