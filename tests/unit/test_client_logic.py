"""The pure parts of jobengine-client: retry delays, problem documents, payload and profile parsing, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobengine.builtin_types import PrimesInput
from jobengine_client import (ApiError, Client, Conflict, InvalidRequest, NewJob, NotFound, RetryPolicy,
                              TooManyRequests, TransportError, Unauthorized, Unavailable, WaitTimeout)
from jobengine_client.cli import exitcodes
from jobengine_client.cli.payload import PayloadError, build
from jobengine_client.cli.profiles import ProfileError, resolve
from jobengine_client.errors import OperationTimeout, from_response
from jobengine_client.models import Job, Operation


def test_backoff_grows_is_jittered_and_bounded() -> None:
    policy = RetryPolicy(attempts=10, backoff=0.5, max_backoff=4.0, deadline=1000)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)):
        for _ in range(20):
            assert ceiling / 2 <= policy.delay(attempt) <= ceiling


def test_retry_after_is_waited_out_unless_too_long() -> None:
    policy = RetryPolicy(max_retry_after=10)
    assert policy.next_delay(1, 0.0, retry_after=3) == 3
    assert policy.next_delay(1, 0.0, retry_after=10) == 10
    assert policy.next_delay(1, 0.0, retry_after=11) is None  # never sooner than the server asked: give up


def test_retries_end_at_the_attempts_or_the_deadline() -> None:
    policy = RetryPolicy(attempts=3, backoff=0.1, deadline=5)
    assert policy.next_delay(1, 0.0) is not None and policy.next_delay(2, 0.0) is not None
    assert policy.next_delay(3, 0.0) is None
    assert policy.next_delay(1, 4.9, retry_after=1) is None  # would start after the deadline
    assert RetryPolicy(attempts=1).next_delay(1, 0.0) is None


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "application/problem+json", **(headers or {})})


def test_problem_documents_become_exceptions_with_their_fields() -> None:
    error = from_response(_response(422, b'{"type": "urn:jobengine:problem:validation", "title": "Validation failed",'
                                         b' "status": 422, "detail": "bad", "instance": "/v1/jobs", "errors": ['
                                         b'{"field": "payload.lowest", "message": "m1"},'
                                         b'{"field": "payload.lowest", "message": "m2"}]}'))
    assert isinstance(error, InvalidRequest) and error.status == 422 and error.slug == "validation"
    assert error.field_errors == {"payload.lowest": ["m1", "m2"]} and error.instance == "/v1/jobs"
    assert error.to_dict()["errors"][0]["field"] == "payload.lowest"
    full = from_response(_response(429, b'{"title": "Too Many Requests", "detail": "d", "queue": "q"}',
                                   {"Retry-After": "7"}))
    assert isinstance(full, TooManyRequests) and full.retry_after == 7 and full.extra == {"queue": "q"}
    assert isinstance(from_response(_response(409, b'{"job_status": "finished"}')), Conflict)
    assert isinstance(from_response(_response(404, b"{}")), NotFound)
    not_json = from_response(httpx.Response(502, content=b"<html>bad gateway</html>"))
    assert isinstance(not_json, Unavailable) and "bad gateway" in not_json.detail
    assert type(from_response(_response(418, b"{}"))) is ApiError


def test_exit_codes() -> None:
    job = Job(id="j", type="t", queue="q", status="started")
    assert exitcodes.for_error(Unauthorized(401)) == exitcodes.AUTH == 4
    assert exitcodes.for_error(NotFound(404)) == exitcodes.NOT_FOUND == 3
    assert exitcodes.for_error(InvalidRequest(422)) == exitcodes.USAGE == 2
    assert exitcodes.for_error(Conflict(409)) == exitcodes.CONFLICT == 7
    assert exitcodes.for_error(TransportError("down")) == exitcodes.UNAVAILABLE == 5
    assert exitcodes.for_error(TooManyRequests(429)) == exitcodes.UNAVAILABLE
    assert exitcodes.for_error(WaitTimeout(job, 1)) == exitcodes.TIMEOUT == 6
    running = Operation(id="o", action="retry", state="running")
    assert exitcodes.for_error(OperationTimeout(running, 1)) == exitcodes.TIMEOUT


def test_payload_from_json_file_and_sets(tmp_path: Path) -> None:
    assert build('{"a": 1}', ["b=2", "c=true", "d=hello world", 'e="7"', "f.g=[1, 2]", "a=null"]) == {
        "a": None, "b": 2, "c": True, "d": "hello world", "e": "7", "f": {"g": [1, 2]}}
    (tmp_path / "p.json").write_text('{"x": {"y": 1}}')
    assert build(f"@{tmp_path / 'p.json'}", ["x.z=2"]) == {"x": {"y": 1, "z": 2}}
    cases = (("[1]", [], "JSON object"), ("{", [], "not valid JSON"), (None, ["novalue"], "key=value"),
             ('{"a": 1}', ["a.b=1"], "not an object"), ("@/nonexistent/x", [], "cannot read"))
    for source, sets, message in cases:
        with pytest.raises(PayloadError, match=message):
            build(source, sets)


def test_typed_batch_item() -> None:
    spec = type("Spec", (), {"name": "primes", "input_model": PrimesInput, "result_model": PrimesInput})
    item = NewJob(spec, {"lowest": 1, "highest": 2}, queue="high", idempotency_key="k")  # type: ignore[arg-type]
    assert item.to_json() == {"type": "primes", "payload": {"lowest": 1, "highest": 2}, "queue": "high",
                              "idempotency_key": "k"}


def test_profile_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('default_profile = "a"\n[profiles.a]\nurl = "http://a"\napi_key = "ka"\n'
                      '[profiles.b]\nurl = "http://b"\napi_key_env = "B_KEY"\n')
    for name in ("JOBENGINE_URL", "JOBENGINE_API_KEY", "JOBENGINE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOBENGINE_CONFIG", str(config))
    monkeypatch.setenv("B_KEY", "kb")
    assert (resolve(None, None, None).url, resolve(None, None, None).api_key) == ("http://a", "ka")
    assert (resolve(None, None, "b").url, resolve(None, None, "b").api_key) == ("http://b", "kb")
    assert resolve("http://flag", None, "b").url == "http://flag"
    monkeypatch.setenv("JOBENGINE_URL", "http://env")
    assert resolve(None, None, None).url == "http://env"  # the environment beats the default profile
    assert resolve(None, None, "b").url == "http://b"  # a profile named on the command line beats it
    monkeypatch.setenv("JOBENGINE_PROFILE", "b")
    assert resolve(None, None, None).api_key == "kb"
    with pytest.raises(ProfileError, match="no profile 'c'"):
        resolve(None, None, "c")
    monkeypatch.setenv("JOBENGINE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ProfileError, match="does not exist"):
        resolve(None, None, None)


def test_the_client_imports_none_of_the_servers_packages() -> None:
    """jobengine-client installs with httpx and pydantic (typer and rich for the CLI) only."""
    code = ("import sys, jobengine_client, jobengine_client.cli.app; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'jobengine', 'jobengine_api', 'jobengine_worker', 'redis', 'rq', 'fastapi', 'starlette', 'orjson'}))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_url_and_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBENGINE_URL", "http://jobs.example:8080/")
    monkeypatch.setenv("JOBENGINE_API_KEY", "k.secret")
    with Client() as client:
        assert client.url == "http://jobs.example:8080"
        assert client.settings.headers["Authorization"] == "Bearer k.secret"
    with Client("http://other", api_key="a.b") as client:
        assert (client.url, client.settings.headers["Authorization"]) == ("http://other", "Bearer a.b")


def _counting(answer: httpx.Response | Exception) -> tuple[list[str], httpx.MockTransport]:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        if isinstance(answer, Exception):
            raise answer
        return answer

    return sent, httpx.MockTransport(handler)


@pytest.mark.parametrize("answer", [httpx.ReadTimeout("lost"), httpx.RemoteProtocolError("reset"),
                                    httpx.Response(502), httpx.Response(504)])
def test_not_idempotent_calls_are_sent_once_when_they_may_have_arrived(answer: Any) -> None:
    sent, transport = _counting(answer)
    with Client("http://api.test", transport=transport, retries=RetryPolicy(attempts=5, backoff=0)) as client:
        with pytest.raises((TransportError, ApiError)):
            client.trigger_schedule("nightly")
        with pytest.raises((TransportError, ApiError)):
            client.start_operation("retry", queue="default")
    assert sent == ["POST /v1/schedules/nightly:trigger", "POST /v1/operations"]


def test_not_idempotent_calls_are_retried_when_nothing_was_sent_or_refused() -> None:
    sent, transport = _counting(httpx.ConnectError("refused"))
    with Client("http://api.test", transport=transport, retries=RetryPolicy(attempts=3, backoff=0)) as client:
        with pytest.raises(TransportError):
            client.trigger_schedule("nightly")
    assert len(sent) == 3
    sent, transport = _counting(httpx.Response(503, headers={"retry-after": "0"}))
    with Client("http://api.test", transport=transport, retries=RetryPolicy(attempts=3, backoff=0)) as client:
        with pytest.raises(ApiError):
            client.start_operation("cancel")
    assert len(sent) == 3


def test_operation_filter_and_schedule_spec_bodies() -> None:
    from datetime import datetime, timezone

    from jobengine_client._base import operation_filter, schedule_spec
    when = datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert operation_filter(queue="q", status="failed", created_before=when) == {
        "queue": "q", "status": ["failed"], "created_before": "2026-01-02T00:00:00+00:00"}
    assert schedule_spec("n", "primes", PrimesInput(lowest=1, highest=2), {"cron": "* * * * *", "queue": None}) == {
        "name": "n", "type": "primes", "payload": {"lowest": 1, "highest": 2}, "cron": "* * * * *"}
