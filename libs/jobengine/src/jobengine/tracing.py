"""OpenTelemetry tracing: set up from the standard OTEL_* variables, off (and free) when none are set.

One trace follows a job from the HTTP request to its run:

    POST /v1/jobs (API, SERVER)
      └─ enqueue <queue> (API, PRODUCER)       W3C context stored in the job's meta: traceparent, tracestate
           ├─ wait <queue> (worker, INTERNAL)  enqueued_at -> start, recorded with explicit times at start
           └─ run <job type> (worker, CONSUMER) one per attempt; job code's own spans are its children

The worker records the wait and run spans in its supervisor process, not in the executor: the
supervisor sees every end of a run, including the ones where the executor is killed (hard timeout,
crash, drain), and it lives on to export them. The run span's context is handed to the executor,
so spans and log lines of the job's own code join the trace.

Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
OTEL_TRACES_EXPORTER (otlp, console; `none` turns it off) is set, and OTEL_SDK_DISABLED is not
true. The exporter is OTLP over HTTP/protobuf (port 4318). Sampling, service name, resource
attributes, headers, timeouts and batching follow the other OTEL_* variables as the SDK reads them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

W3C = TraceContextTextMapPropagator()
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})  # probes and scrapes: no spans

_enabled = False
_provider: Any = None
_tracer: trace.Tracer = trace.NoOpTracer()


def tracing_configured(env: Mapping[str, str] | None = None) -> bool:
    """True when the OTEL_* variables ask for trace export."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters == "none":
        return False
    return bool(exporters or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def enabled() -> bool:
    return _enabled


def setup_tracing(service_name: str, *, exporter: Any = None) -> bool:
    """Install a TracerProvider when OTEL_* asks for it (or `exporter` is given: tests); else do nothing.

    Returns whether tracing is on. Safe to call more than once (a second exporter is added).
    """
    global _enabled, _provider, _tracer
    if exporter is None and not tracing_configured():
        return _enabled
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if _provider is None:
        attributes: dict[str, Any] = {}
        if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
                "OTEL_RESOURCE_ATTRIBUTES", ""):
            attributes["service.name"] = service_name
        _provider = TracerProvider(resource=Resource.create(attributes))  # sampler from OTEL_TRACES_SAMPLER
        trace.set_tracer_provider(_provider)
        _tracer = _provider.get_tracer("jobengine")
    if exporter is not None:
        _provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for exp in _exporters_from_env():
            _provider.add_span_processor(BatchSpanProcessor(exp))
    _enabled = True
    return True


def _exporters_from_env() -> list[Any]:
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",") if n.strip()]
    exporters: list[Any] = []
    for name in names or ["otlp"]:
        if name == "otlp":
            protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            if protocol != "http/protobuf":
                log.warning("only OTLP over http/protobuf is installed; using it", extra={"protocol": protocol})
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER entry ignored", extra={"exporter": name})
    return exporters


def shutdown() -> None:
    """Flush and stop the exporters (also done at interpreter exit)."""
    if _provider is not None:
        _provider.shutdown()


def force_flush(timeout_millis: int = 5000) -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis)


# ----- propagation -----

def inject(carrier: dict[str, str] | None = None, ctx: otel_context.Context | None = None) -> dict[str, str]:
    """traceparent (and tracestate) of the current span, or of `ctx`, into a dict."""
    carrier = {} if carrier is None else carrier
    W3C.inject(carrier, context=ctx)
    return carrier


def extract(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context | None:
    """The context a traceparent names, or None when there is none (or it is malformed)."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    ctx = W3C.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def traceparent_of(span: Span) -> str | None:
    return inject(ctx=trace.set_span_in_context(span)).get("traceparent")


def attach(traceparent: str | None) -> object | None:
    """Make a remote context current (works without the SDK too: log lines then carry its ids)."""
    ctx = extract(traceparent)
    return otel_context.attach(ctx) if ctx is not None else None


def detach(token: object | None) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]


def ids(traceparent: str | None) -> dict[str, str]:
    """{"trace_id", "span_id"} of a traceparent, for log lines; {} when there is none."""
    parts = traceparent.split("-") if traceparent else []
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return {}
    return {"trace_id": parts[1], "span_id": parts[2]}


# ----- API: server spans and the enqueue span -----

class TracingMiddleware:
    """A SERVER span per HTTP request, continuing an incoming traceparent; named by route template.

    A fallback: FastAPI >= 0.16x makes this span itself once a tracer provider is set (its native
    telemetry wraps the whole app); when a recording span is already current, this does nothing.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS or trace.get_current_span().is_recording():
            await self.app(scope, receive, send)
            return
        carrier = {}
        for name, value in scope["headers"]:
            if name in (b"traceparent", b"tracestate"):
                carrier[name.decode()] = value.decode("latin-1")
        parent = W3C.extract(carrier) if carrier else None
        method = scope["method"]
        with _tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"],
                        "url.scheme": scope.get("scheme", "http")},
        ) as span:
            status = 500

            async def send_with_status(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_with_status)
            finally:
                template = getattr(scope.get("route"), "path", None)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


class EnqueueSpan:
    """`with enqueue_span() as t:` a PRODUCER span around an enqueue; t.meta goes into the job's meta."""

    meta: dict[str, str] | None = None

    def __init__(self, count: int) -> None:
        self._count = count
        self._cm: Any = None
        self.span: Span | None = None

    def __enter__(self) -> EnqueueSpan:
        attributes: dict[str, Any] = {"messaging.system": "jobengine", "messaging.operation.type": "send"}
        if self._count != 1:
            attributes["messaging.batch.message_count"] = self._count
        self._cm = _tracer.start_as_current_span("enqueue", kind=SpanKind.PRODUCER, attributes=attributes)
        self.span = self._cm.__enter__()
        self.meta = inject()
        return self

    def job(self, job_id: str, job_type: str, queue: str) -> None:
        """Name the job (single submissions; a batch span only counts its jobs)."""
        if self.span is not None and self._count == 1:
            self.span.update_name(f"enqueue {queue}")
            self.span.set_attributes({"jobengine.job.id": job_id, "messaging.message.id": job_id,
                                      "jobengine.job.type": job_type, "messaging.destination.name": queue})

    def __exit__(self, *exc: Any) -> bool:
        return bool(self._cm.__exit__(*exc))


class _NoEnqueueSpan:
    meta = None

    def __enter__(self) -> _NoEnqueueSpan:
        return self

    def job(self, job_id: str, job_type: str, queue: str) -> None:
        pass

    def __exit__(self, *exc: Any) -> bool:
        return False


_NO_ENQUEUE_SPAN = _NoEnqueueSpan()


def enqueue_span(count: int = 1) -> EnqueueSpan | _NoEnqueueSpan:
    return EnqueueSpan(count) if _enabled else _NO_ENQUEUE_SPAN


def start_fire(tenant: str, name: str, tick: float) -> tuple[Span | None, dict[str, str] | None]:
    """A schedule's tick: the root span of a new trace ("schedule.fire") and the W3C context for the job's meta,
    so the job's wait and run continue it; (None, None) when tracing is off. The caller ends the span."""
    if not _enabled:
        return None, None
    span = _tracer.start_span("schedule.fire", context=otel_context.Context(), kind=SpanKind.PRODUCER, attributes={
        "jobengine.schedule.name": name, "jobengine.schedule.tenant": tenant, "jobengine.schedule.tick": tick,
        "messaging.system": "jobengine", "messaging.operation.type": "send"})
    return span, inject(ctx=trace.set_span_in_context(span))


# ----- worker: wait and run spans -----

def start_run(*, job_id: str, job_type: str, queue: str, attempt: int, traceparent: str | None,
              tracestate: str | None = None, enqueued_at: float | None = None, worker: str = "") -> Span | None:
    """Record the queue-wait span (enqueued_at -> now) and start the run span; None when tracing is off."""
    if not _enabled:
        return None
    parent = extract(traceparent, tracestate)
    attributes = {
        "jobengine.job.id": job_id, "jobengine.job.type": job_type, "jobengine.job.attempt": attempt,
        "jobengine.worker": worker, "messaging.system": "jobengine", "messaging.message.id": job_id,
        "messaging.destination.name": queue,
    }
    now_ns = time.time_ns()
    if enqueued_at:
        start_ns = min(now_ns, int(enqueued_at * 1e9))  # clocks of API and worker hosts may disagree
        wait = _tracer.start_span(f"wait {queue}", context=parent, kind=SpanKind.INTERNAL, start_time=start_ns,
                                  attributes={**attributes, "jobengine.wait_seconds": (now_ns - start_ns) / 1e9})
        wait.end(end_time=now_ns)
    return _tracer.start_span(f"run {job_type}", context=parent, kind=SpanKind.CONSUMER, start_time=now_ns,
                              attributes={**attributes, "messaging.operation.type": "process"})


def end_run(span: Span | None, outcome: str, error: str = "") -> None:
    """End a run span with its outcome (succeeded, failed, retried, timed_out, canceled, requeued)."""
    if span is None:
        return
    span.set_attribute("jobengine.outcome", outcome)
    if outcome in ("failed", "retried", "timed_out"):
        first_line = error.strip().splitlines()[-1] if error.strip() else outcome
        span.set_status(Status(StatusCode.ERROR, first_line[:200]))
        span.set_attribute("error.type", first_line.split(":", 1)[0][:100] or outcome)
    span.end()


__all__ = [
    "TracingMiddleware", "attach", "detach", "enabled", "end_run", "enqueue_span", "extract",
    "force_flush", "ids", "inject", "setup_tracing", "shutdown", "start_fire", "start_run", "traceparent_of",
    "tracing_configured",
]
