"""The telemetry contract: every Prometheus metric of jobengine, defined once.

Services, the Grafana dashboard, the alerts and the KEDA triggers all refer to these names;
tests check that every dashboard and alert expression names a series defined here.
Labels stay low-cardinality: queue, job_type, outcome, route, method, status. Never a job id.
Metrics live in the registry of the long-lived process (API or worker), never in multiprocess files.
Each process registers only its own side's metrics (init_api_series / init_worker_series), so an
API never exports a worker gauge at 0 (which `count()` would take for a worker), nor a worker a
`jobengine_redis_up` of 0. docs/metrics.md holds the table; a test keeps it, this module and
/metrics in agreement.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics

# No `_created` series: they double the series count and no dashboard or alert reads them.
disable_created_metrics()

# Buckets from 1 ms to 6 h: trivial jobs and hour-long batch jobs on one histogram.
DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
    1800, 3600, 7200, 21600,
)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Outcomes of one run of a job (jobengine_jobs_finished_total{outcome}): what became of the job after
# the run. Terminal ones end the job; the others mean it runs again.
TERMINAL_OUTCOMES = ("succeeded", "failed", "timed_out", "canceled")
OUTCOMES = (*TERMINAL_OUTCOMES, "retried", "requeued")
REJECT_REASONS = ("malformed_json", "unknown_type", "validation", "idempotency_conflict", "queue_full", "rate_limited",
                  "tenant_quota", "redis_memory", "redis_oom", "queue_paused")
RECOVERED_OUTCOMES = ("queued", "failed", "canceled")

# Metrics are created unregistered (registry=None); each process registers its side's ones.
_NOREG = {"registry": None}
_JOB = ["queue", "job_type"]

# --- jobs (API side) ---
JOBS_SUBMITTED = Counter("jobengine_jobs_submitted", "Jobs accepted by the API (202).", _JOB, **_NOREG)
JOBS_REJECTED = Counter("jobengine_jobs_rejected", "Job submissions refused, by reason.", ["reason"], **_NOREG)

# --- jobs (worker side) ---
JOBS_STARTED = Counter("jobengine_jobs_started", "Job runs started by workers.", _JOB, **_NOREG)
JOBS_FINISHED = Counter(
    "jobengine_jobs_finished",
    "Job runs ended, by outcome: succeeded, failed (final), timed_out (final), canceled, "
    "retried (failed or timed out, will run again), requeued (given back on shutdown).",
    [*_JOB, "outcome"], **_NOREG,
)
JOBS_RECOVERED = Counter(
    "jobengine_jobs_recovered", "Jobs of dead workers found and requeued or failed.", ["queue", "outcome"], **_NOREG
)
JOB_WAIT_SECONDS = Histogram(
    "jobengine_job_wait_seconds", "Time from enqueue (or due time) to start.", _JOB, buckets=DURATION_BUCKETS,
    **_NOREG,
)
JOB_RUN_SECONDS = Histogram(
    "jobengine_job_run_seconds", "Run time of one attempt.", _JOB, buckets=DURATION_BUCKETS, **_NOREG
)
JOB_E2E_SECONDS = Histogram(
    "jobengine_job_e2e_seconds", "Time from enqueue to the end of the last attempt (terminal jobs).", _JOB,
    buckets=DURATION_BUCKETS, **_NOREG,
)

# --- worker saturation ---
WORKER_BUSY = Gauge("jobengine_worker_busy", "1 while this worker runs a job, else 0.", ["queue"], **_NOREG)
WORKER_IDLE = Gauge(
    "jobengine_worker_idle", "1 while this worker waits for work, else 0 (busy or draining). One series per worker.",
    **_NOREG,
)
WORKER_JOBS_IN_PROGRESS = Gauge(
    "jobengine_worker_jobs_claimed", "Jobs this worker holds (running or claimed for the current batch).", **_NOREG
)
WORKER_REDIS_ERRORS = Counter(
    "jobengine_worker_redis_errors", "Redis errors seen by the worker (it retries with backoff).", **_NOREG
)

# --- queues (exported by the API on scrape, read from Redis) ---
QUEUE_DEPTH = Gauge("jobengine_queue_depth", "Jobs waiting in the queue (LLEN rq:queue:<name>).", ["queue"], **_NOREG)
QUEUE_IN_FLIGHT = Gauge("jobengine_queue_in_flight", "Jobs running (StartedJobRegistry size).", ["queue"], **_NOREG)
QUEUE_SCHEDULED = Gauge(
    "jobengine_queue_scheduled", "Jobs scheduled for later (delays, retries).", ["queue"], **_NOREG
)
QUEUE_FAILED = Gauge("jobengine_queue_failed", "Jobs in the failed registry.", ["queue"], **_NOREG)
QUEUE_WORKERS = Gauge("jobengine_queue_workers", "Live workers serving the queue.", ["queue"], **_NOREG)
QUEUE_PAUSED = Gauge(
    "jobengine_queue_paused", "1 while the queue is paused (its jobs are not claimed), else 0.", ["queue"], **_NOREG
)
QUEUE_DEFERRED = Gauge(
    "jobengine_jobs_deferred", "Jobs waiting for their dependencies (RQ's DeferredJobRegistry rq:deferred:<name>).",
    ["queue"], **_NOREG,
)
REDIS_UP = Gauge("jobengine_redis_up", "1 when the last Redis check succeeded.", **_NOREG)

# --- HTTP (API) ---
HTTP_REQUESTS = Counter(
    "jobengine_http_requests", "HTTP requests by route template, method and status.", ["route", "method", "status"],
    **_NOREG,
)
HTTP_DURATION = Histogram(
    "jobengine_http_request_duration_seconds", "HTTP request duration by route template.", ["route", "method"],
    buckets=HTTP_BUCKETS, **_NOREG,
)

# --- schedules (API side: the firing loop runs in the API processes) ---
SCHEDULE_STATES = ("active", "paused", "ended", "broken")
SCHEDULE_FIRE_OUTCOMES = ("enqueued", "skipped_overlap", "skipped_missed", "refused_backpressure", "broken")
SCHEDULES = Gauge("jobengine_schedules", "Schedules by state (all tenants), read from Redis at each scrape.",
                  ["state"], **_NOREG)
SCHEDULE_FIRES = Counter(
    "jobengine_schedule_fires",
    "Ticks of schedules handled by this process, by outcome: enqueued, skipped_overlap (the previous run had not "
    "ended), skipped_missed (later than the misfire grace, by the catch-up policy), refused_backpressure (queue "
    "full or tenant quota: tried again), broken (job type gone or payload invalid).",
    ["outcome"], **_NOREG,
)
SCHEDULE_LATENESS = Histogram(
    "jobengine_schedule_lateness_seconds", "Time from a tick (plus its jitter) to its job's enqueue.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600), **_NOREG,
)

# --- workflows ---
FLOW_OUTCOMES = ("succeeded", "failed", "canceled")


FLOWS_TOTAL = Counter(
    "jobengine_flows", "Flows ended, by outcome (succeeded, failed, canceled): counted in Redis by the script that "
    "ends a flow's last job and read at each scrape (the deployment's total, the same in every API process).",
    ["outcome"], **_NOREG,
)


def set_flows_total(counts: dict[str, float]) -> None:
    """Copy the Redis counts into jobengine_flows_total: a counter kept in Redis (it only grows), so its value is
    set, not incremented (prometheus_client's counters have no public setter)."""
    for outcome, value in counts.items():
        FLOWS_TOTAL.labels(outcome)._value.set(value)  # noqa: SLF001
JOB_DEFERRED_SECONDS = Histogram(
    "jobengine_job_deferred_seconds", "Time a job with dependencies waited for them (from submit to queued), "
    "observed when it starts.", _JOB, buckets=DURATION_BUCKETS, **_NOREG,
)

# --- events and webhooks (API side) ---
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed", "refused")
WEBHOOK_DELIVERIES = Counter(
    "jobengine_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (an error or non-2xx answer; tried again "
    "later), failed (the last attempt failed: given up), refused (the URL resolves to an address not allowed).",
    ["outcome"], **_NOREG,
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "jobengine_webhook_delivery_seconds", "Duration of one webhook delivery attempt (request to answer or error).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), **_NOREG,
)
EVENT_STREAMS = Gauge("jobengine_event_streams_open", "Server-sent event streams open in this API process.",
                      **_NOREG)

API_METRICS = (WEBHOOK_DELIVERIES, WEBHOOK_DELIVERY_SECONDS, EVENT_STREAMS,
               FLOWS_TOTAL, QUEUE_DEFERRED, SCHEDULES, SCHEDULE_FIRES, SCHEDULE_LATENESS,
               JOBS_SUBMITTED, JOBS_REJECTED, QUEUE_DEPTH, QUEUE_IN_FLIGHT, QUEUE_SCHEDULED, QUEUE_FAILED,
               QUEUE_WORKERS, QUEUE_PAUSED, REDIS_UP, HTTP_REQUESTS, HTTP_DURATION)
WORKER_METRICS = (JOB_DEFERRED_SECONDS, JOBS_STARTED, JOBS_FINISHED, JOBS_RECOVERED, JOB_WAIT_SECONDS, JOB_RUN_SECONDS, JOB_E2E_SECONDS,
                  WORKER_BUSY, WORKER_IDLE, WORKER_JOBS_IN_PROGRESS, WORKER_REDIS_ERRORS)
_registered: set[int] = set()


def _register(collectors: Iterable[object]) -> None:
    for collector in collectors:
        if id(collector) not in _registered:
            REGISTRY.register(collector)  # type: ignore[arg-type]
            _registered.add(id(collector))


def register_api_metrics() -> None:
    """Expose the API's metrics in prometheus_client's default registry (idempotent)."""
    _register(API_METRICS)


def register_worker_metrics() -> None:
    """Expose the worker's metrics in prometheus_client's default registry (idempotent)."""
    _register(WORKER_METRICS)


def init_worker_series(queues: Iterable[str], job_types: Iterable[tuple[str, str]]) -> None:
    """Register the worker's metrics and create its series at 0 before the first job.

    A counter that first appears at 1 loses that increment in rate()/increase(), and a panel
    or alert on a series that does not exist yet shows "no data" instead of 0. Counters are
    created for every queue served x every job type (name, default queue) of the catalog; the
    histograms (25 series each) only for a job type on its default queue, when served here.
    """
    register_worker_metrics()
    queues = list(queues)
    job_types = list(job_types)
    for queue in queues:
        for outcome in RECOVERED_OUTCOMES:
            JOBS_RECOVERED.labels(queue, outcome)
        WORKER_BUSY.labels(queue).set(0)
        for job_type, default_queue in job_types:
            JOBS_STARTED.labels(queue, job_type)
            for outcome in OUTCOMES:
                JOBS_FINISHED.labels(queue, job_type, outcome)
            if queue == default_queue:
                for histogram in (JOB_WAIT_SECONDS, JOB_RUN_SECONDS, JOB_E2E_SECONDS, JOB_DEFERRED_SECONDS):
                    histogram.labels(queue, job_type)


def init_api_series(queue_job_types: Iterable[tuple[str, str]]) -> None:
    """Register the API's metrics; its counters at 0 (see init_worker_series): each job type on its default queue."""
    register_api_metrics()
    for queue, job_type in queue_job_types:
        JOBS_SUBMITTED.labels(queue, job_type)
    for reason in REJECT_REASONS:
        JOBS_REJECTED.labels(reason)
    for outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_DELIVERIES.labels(outcome)
    for state in SCHEDULE_STATES:
        SCHEDULES.labels(state)
    for outcome in SCHEDULE_FIRE_OUTCOMES:
        SCHEDULE_FIRES.labels(outcome)
    for outcome in FLOW_OUTCOMES:
        FLOWS_TOTAL.labels(outcome)
