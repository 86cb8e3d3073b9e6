"""The telemetry contract: every Prometheus metric of jobengine, defined once.

Services, the Grafana dashboard, the alerts and the KEDA triggers all refer to these names;
tests check that every dashboard and alert expression names a series defined here.
Labels stay low-cardinality: queue, job_type, outcome, route, method, status. Never a job id.
Metrics live in the registry of the long-lived process (API or worker), never in multiprocess files.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

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
REJECT_REASONS = ("malformed_json", "unknown_type", "validation", "idempotency_conflict")
RECOVERED_OUTCOMES = ("queued", "failed", "canceled")

# --- jobs (API side) ---
JOBS_SUBMITTED = Counter(
    "jobengine_jobs_submitted", "Jobs accepted by the API (202).", ["queue", "job_type"]
)
JOBS_REJECTED = Counter(
    "jobengine_jobs_rejected", "Job submissions refused, by reason.", ["reason"]
)

# --- jobs (worker side) ---
JOBS_STARTED = Counter("jobengine_jobs_started", "Job runs started by workers.", ["queue", "job_type"])
JOBS_FINISHED = Counter(
    "jobengine_jobs_finished",
    "Job runs ended, by outcome: succeeded, failed (final), timed_out (final), canceled, "
    "retried (failed or timed out, will run again), requeued (given back on shutdown).",
    ["queue", "job_type", "outcome"],
)
JOBS_RECOVERED = Counter(
    "jobengine_jobs_recovered", "Jobs of dead workers found and requeued or failed.", ["queue", "outcome"]
)
JOB_WAIT_SECONDS = Histogram(
    "jobengine_job_wait_seconds", "Time from enqueue (or due time) to start.", ["queue", "job_type"],
    buckets=DURATION_BUCKETS,
)
JOB_RUN_SECONDS = Histogram(
    "jobengine_job_run_seconds", "Run time of one attempt.", ["queue", "job_type"], buckets=DURATION_BUCKETS
)
JOB_E2E_SECONDS = Histogram(
    "jobengine_job_e2e_seconds", "Time from enqueue to the end of the last attempt (terminal jobs).",
    ["queue", "job_type"], buckets=DURATION_BUCKETS,
)

# --- worker saturation ---
WORKER_BUSY = Gauge("jobengine_worker_busy", "1 while this worker runs a job, else 0.", ["queue"])
WORKER_IDLE = Gauge(
    "jobengine_worker_idle", "1 while this worker waits for work, else 0 (busy or draining). One series per worker."
)
WORKER_JOBS_IN_PROGRESS = Gauge(
    "jobengine_worker_jobs_claimed", "Jobs this worker holds (running or claimed for the current batch)."
)
WORKER_REDIS_ERRORS = Counter(
    "jobengine_worker_redis_errors", "Redis errors seen by the worker (it retries with backoff)."
)

# --- queues (exported by the API on scrape, read from Redis) ---
QUEUE_DEPTH = Gauge("jobengine_queue_depth", "Jobs waiting in the queue (LLEN rq:queue:<name>).", ["queue"])
QUEUE_IN_FLIGHT = Gauge("jobengine_queue_in_flight", "Jobs running (StartedJobRegistry size).", ["queue"])
QUEUE_SCHEDULED = Gauge("jobengine_queue_scheduled", "Jobs scheduled for later (delays, retries).", ["queue"])
QUEUE_FAILED = Gauge("jobengine_queue_failed", "Jobs in the failed registry.", ["queue"])
QUEUE_WORKERS = Gauge("jobengine_queue_workers", "Live workers serving the queue.", ["queue"])
REDIS_UP = Gauge("jobengine_redis_up", "1 when the last Redis check succeeded.")

# --- HTTP (API) ---
HTTP_REQUESTS = Counter(
    "jobengine_http_requests", "HTTP requests by route template, method and status.", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "jobengine_http_request_duration_seconds", "HTTP request duration by route template.", ["route", "method"],
    buckets=HTTP_BUCKETS,
)


def init_worker_series(queues: Iterable[str], job_types: Iterable[str]) -> None:
    """Create the worker's counters at 0 for every queue and job type it may see.

    A counter that first appears at 1 loses that increment in rate()/increase(), and a panel
    or alert on a series that does not exist yet shows "no data" instead of 0.
    """
    job_types = list(job_types)
    for queue in queues:
        for outcome in RECOVERED_OUTCOMES:
            JOBS_RECOVERED.labels(queue, outcome)
        WORKER_BUSY.labels(queue).set(0)
        for job_type in job_types:
            JOBS_STARTED.labels(queue, job_type)
            for outcome in OUTCOMES:
                JOBS_FINISHED.labels(queue, job_type, outcome)


def init_api_series(queue_job_types: Iterable[tuple[str, str]]) -> None:
    """The API's counters at 0 (see init_worker_series): each job type on its default queue."""
    for queue, job_type in queue_job_types:
        JOBS_SUBMITTED.labels(queue, job_type)
    for reason in REJECT_REASONS:
        JOBS_REJECTED.labels(reason)
