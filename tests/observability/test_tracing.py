"""One trace from the HTTP request to the job's run: in-process with an in-memory exporter, and across
real processes exporting OTLP to a real receiver (rotel). Tracing off: nothing set up, nothing stored."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from jobengine import tracing
from jobengine.jobdata import TERMINAL
from jobengine.redis_conn import EmbeddedRedis, free_port
from tests.conftest import ROOT, Proc, service_env

from .conftest import JOB_TYPE_MODULES, Stack, Workload

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


def test_tracing_is_off_without_otel_variables() -> None:
    assert not tracing.tracing_configured({})
    assert not tracing.tracing_configured({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not tracing.tracing_configured({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert tracing.tracing_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.tracing_configured({"OTEL_TRACES_EXPORTER": "console"})
    # in a fresh process without OTEL_*: no SDK provider, the API's no-op stays
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = ("from jobengine import tracing; from opentelemetry import trace; import sys\n"
            "assert not tracing.setup_tracing('x') and not tracing.enabled()\n"
            "assert type(trace.get_tracer_provider()).__name__ == 'ProxyTracerProvider'\n"
            "assert 'opentelemetry.sdk.trace' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_no_trace_context_stored_when_tracing_is_off(obs_stack: Stack, workload: Workload) -> None:
    client = redis.Redis.from_url(obs_stack.redis_url)
    meta = orjson.loads(client.hget(f"rq:job:{workload.ids['obs_ok'][0]}", "meta"))
    client.close()
    assert "traceparent" not in meta and "tracestate" not in meta


def test_ids_of_a_traceparent() -> None:
    assert tracing.ids(TRACEPARENT) == {"trace_id": TRACE_ID, "span_id": CLIENT_SPAN}
    assert tracing.ids("garbage") == {} and tracing.ids(None) == {}
    assert tracing.extract("00-zz-yy-01") is None


# ----- in-process: API (uvicorn in a thread) and worker (its loop driven here), spans in memory -----

@pytest.fixture(scope="module")
def memory_exporter() -> Any:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.setup_tracing("jobengine-test", exporter=exporter)
    return exporter


@pytest.fixture
def inprocess(memory_exporter: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    import uvicorn

    from jobengine.catalog import discover
    from jobengine.settings import Settings
    from jobengine_api.main import create_app
    from jobengine_worker.worker import Worker

    server_redis = EmbeddedRedis(directory=str(tmp_path)).start()
    port = free_port()
    env = {"JOBENGINE_REDIS_URL": server_redis.url, "JOBENGINE_JOB_TYPE_MODULES": JOB_TYPE_MODULES,
           "JOBENGINE_API_PORT": str(port), "JOBENGINE_QUEUES": "default", "JOBENGINE_METRICS_PORT": "0",
           "JOBENGINE_WORKER_NAME": "trace-worker", "JOBENGINE_ENV": "development"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the executor (a spawned process) reads them too
    for key in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(key)
    settings = Settings()
    catalog = discover(settings.job_type_modules)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, catalog), host="127.0.0.1", port=port,
                                           log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "in-process API did not start"
        time.sleep(0.05)
    worker = Worker(settings, catalog)
    worker.register()
    worker.executor = worker.spawn_executor()
    memory_exporter.clear()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield {"http": http, "worker": worker, "exporter": memory_exporter}
    finally:
        worker.shutdown()
        server.should_exit = True
        thread.join(10)
        server_redis.stop()


def run_until_done(worker: Any, http: httpx.Client, job_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        worker.maintenance()
        batch = worker.claim()
        if batch:
            worker.execute(batch)
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def ancestors(spans: list[Any], span: Any) -> list[int]:
    ids = {s.context.span_id: s for s in spans}
    chain = []
    while span.parent is not None and span.parent.span_id in ids:
        chain.append(span.parent.span_id)
        span = ids[span.parent.span_id]
    return chain


def by_name(spans: list[Any], name: str) -> list[Any]:
    return [s for s in spans if s.name == name]


def test_one_trace_from_http_request_to_job_run(inprocess: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    http, worker, exporter = inprocess["http"], inprocess["worker"], inprocess["exporter"]
    resp = http.post("/v1/jobs", json={"type": "obs_flaky", "payload": {}}, headers={"traceparent": TRACEPARENT})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    with caplog.at_level(logging.DEBUG, logger="jobengine.worker"):  # (a finished job logs at DEBUG)
        job = run_until_done(worker, http, job_id)
    assert job["status"] == "finished"
    spans = [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID]

    (server,) = by_name(spans, "POST /v1/jobs")  # one server span (FastAPI's own, or the middleware's)
    (enqueue,) = by_name(spans, "enqueue default")
    assert server.kind.name == "SERVER" and enqueue.kind.name == "PRODUCER"
    waits = by_name(spans, "wait default")
    runs = sorted(by_name(spans, "run obs_flaky"), key=lambda s: s.attributes["jobengine.job.attempt"])
    assert server.parent.span_id == int(CLIENT_SPAN, 16) and server.parent.is_remote
    assert server.attributes["http.route"] == "/v1/jobs" and server.attributes["http.response.status_code"] == 202
    assert server.context.span_id in ancestors(spans, enqueue)  # FastAPI may put its endpoint span between
    assert enqueue.attributes["jobengine.job.id"] == job_id and enqueue.attributes["jobengine.job.type"] == "obs_flaky"
    # two attempts (the first fails, the retry succeeds): a wait and a run span each, children of the enqueue
    assert len(waits) == 2 and len(runs) == 2
    for span in waits + runs:
        assert span.parent.span_id == enqueue.context.span_id
        assert span.attributes["jobengine.job.id"] == job_id
        assert span.attributes["jobengine.job.type"] == "obs_flaky"
        assert span.attributes["messaging.destination.name"] == "default"
    assert [r.attributes["jobengine.job.attempt"] for r in runs] == [1, 2]
    assert [r.attributes["jobengine.outcome"] for r in runs] == ["retried", "succeeded"]
    assert runs[0].status.status_code.name == "ERROR" and "first attempt fails" in runs[0].status.description
    assert runs[1].status.status_code.name == "UNSET"
    first_wait = min(waits, key=lambda s: s.start_time)
    assert first_wait.start_time >= enqueue.start_time - 10_000_000  # enqueued_at has ms precision
    assert first_wait.end_time <= runs[0].start_time
    # the worker's log lines of the job carry the trace id and the run span's id
    lines = [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    assert lines and all(getattr(r, "trace_id", None) == TRACE_ID for r in lines)
    assert {getattr(r, "span_id", None) for r in lines} == {f"{r.context.span_id:016x}" for r in runs}



def test_a_schedules_fire_starts_a_trace_that_its_job_continues(inprocess: dict[str, Any]) -> None:
    http, worker, exporter = inprocess["http"], inprocess["worker"], inprocess["exporter"]
    resp = http.post("/v1/schedules", json={"name": "traced", "type": "obs_ok", "payload": {}, "interval_seconds": 1})
    assert resp.status_code == 201, resp.text
    deadline = time.monotonic() + 15
    while not (runs := http.get("/v1/schedules/traced").json()["runs"]):  # the in-process API's loop fires it
        assert time.monotonic() < deadline, "the schedule did not fire"
        time.sleep(0.05)
    assert http.post("/v1/schedules/traced:pause").status_code == 200
    job_id = runs[-1]["job_id"]
    assert run_until_done(worker, http, job_id)["status"] == "finished"
    spans = exporter.get_finished_spans()
    (fire,) = [s for s in by_name(spans, "schedule.fire") if s.attributes.get("jobengine.job.id") == job_id]
    assert fire.parent is None and fire.kind.name == "PRODUCER"  # the root of a trace of its own
    assert fire.attributes["jobengine.schedule.name"] == "traced"
    assert fire.attributes["jobengine.schedule.tenant"] == "default"
    (run,) = [s for s in by_name(spans, "run obs_ok") if s.attributes["jobengine.job.id"] == job_id]
    assert run.context.trace_id == fire.context.trace_id and run.parent.span_id == fire.context.span_id

def test_json_log_lines_carry_the_current_trace() -> None:
    from opentelemetry import trace

    from jobengine.logs import JsonFormatter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    token = tracing.attach(TRACEPARENT)  # works without an SDK span: a remote context
    try:
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        tracing.detach(token)
    assert line["trace_id"] == TRACE_ID and line["span_id"] == CLIENT_SPAN
    assert not trace.get_current_span().get_span_context().is_valid
    assert "trace_id" not in orjson.loads(JsonFormatter().format(record))


# ----- across processes: API and worker export OTLP/HTTP to a real receiver -----

def rotel_agent() -> str:
    try:
        import rotel
    except ImportError:
        pytest.skip("the OTLP receiver `rotel` is not installed (pip install -r requirements-dev.txt)")
    path = Path(rotel.__file__).parent / "rotel-agent"
    if not path.exists():
        pytest.skip(f"rotel has no agent binary for this platform ({path})")
    return str(path)


def parse_rotel(text: str) -> list[dict[str, str]]:
    """Spans of rotel's `--debug-log traces --debug-log-verbosity detailed` output, with their service."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    spans: list[dict[str, str]] = []
    service = ""
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if m := re.search(r"-> service\.name: Str\((.*)\)", line):
            service = m.group(1)
        elif line.startswith("Span #"):
            current = {"service": service}
            spans.append(current)
        elif current is not None and (m := re.match(r"\s+(Trace ID|Parent ID|ID|Name|Kind)\s*:\s*(.*)$", line)):
            current[m.group(1)] = m.group(2).strip()
    return spans


def test_otlp_export_to_a_real_receiver(tmp_path: Path) -> None:
    agent = rotel_agent()
    http_port, grpc_port = free_port(), free_port()
    out = tmp_path / "rotel.log"
    with open(out, "wb") as log:
        receiver = subprocess.Popen([agent, "start", "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
                                     "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}", "--exporter", "blackhole",
                                     "--debug-log", "traces", "--debug-log-verbosity", "detailed"],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server_redis = EmbeddedRedis(directory=str(tmp_path)).start()
    procs: list[Proc] = []
    try:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_port}", "OTEL_BSP_SCHEDULE_DELAY": "100",
                "JOBENGINE_JOB_TYPE_MODULES": JOB_TYPE_MODULES, "JOBENGINE_QUEUES": "default",
                "JOBENGINE_ENV": "development"}
        api_port = free_port()
        api = Proc([sys.executable, "-m", "jobengine_api"],
                   service_env(server_redis.url, JOBENGINE_API_PORT=str(api_port), **otel), tmp_path / "api.log")
        procs.append(api)
        procs.append(Proc([sys.executable, "-m", "jobengine_worker"],
                          service_env(server_redis.url, JOBENGINE_WORKER_NAME="otlp-worker",
                                      JOBENGINE_LOG_LEVEL="DEBUG", **otel),  # (a finished job logs at DEBUG)
                          tmp_path / "worker.log"))
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert api.alive() and time.monotonic() < deadline, api.log()
                time.sleep(0.05)
            resp = http.post("/v1/jobs", json={"type": "obs_ok", "payload": {}}, headers={"traceparent": TRACEPARENT})
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]
            job = http.get(f"/v1/jobs/{job_id}", params={"wait": 20}).json()
            assert job["status"] == "finished", job
        wanted = {("jobengine-api", "POST /v1/jobs"), ("jobengine-api", "enqueue default"),
                  ("jobengine-worker", "wait default"), ("jobengine-worker", "run obs_ok")}
        deadline = time.monotonic() + 15
        while True:
            spans = [s for s in parse_rotel(out.read_text(errors="replace")) if s.get("Trace ID") == TRACE_ID]
            if wanted <= {(s["service"], s.get("Name", "")) for s in spans}:
                break
            assert time.monotonic() < deadline, f"receiver got {spans}\n{out.read_text()[-3000:]}"
            time.sleep(0.2)
        named = {s["Name"]: s for s in spans}
        assert named["POST /v1/jobs"]["Parent ID"] == CLIENT_SPAN
        by_id = {s["ID"]: s for s in spans}
        parent, chain = named["enqueue default"]["Parent ID"], []
        while parent in by_id:
            chain.append(by_id[parent]["Name"])
            parent = by_id[parent]["Parent ID"]
        assert chain[-1] == "POST /v1/jobs", chain
        assert named["run obs_ok"]["Parent ID"] == named["enqueue default"]["ID"]
        assert named["wait default"]["Parent ID"] == named["enqueue default"]["ID"]
        # the worker's JSON log line of the job carries the trace id
        worker_lines = [orjson.loads(line) for line in procs[1].log().splitlines() if line.startswith("{")]
        done = [line for line in worker_lines if line.get("job_id") == job_id and line.get("message") == "job finished"]
        assert done and done[0]["trace_id"] == TRACE_ID
    finally:
        for proc in procs:
            proc.stop()
        server_redis.stop()
        receiver.terminate()
        receiver.wait(10)
