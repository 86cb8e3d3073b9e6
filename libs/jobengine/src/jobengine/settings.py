"""Settings from environment variables, all prefixed JOBENGINE_ (REDIS_URL is also accepted).

Validated once at start; a bad value stops the process with a message naming the variable.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .redis_url import check

QUEUE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SECRET_VARIABLES = frozenset({"JOBENGINE_REDIS_URL", "REDIS_URL", "redis_url"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBENGINE_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = Field(
        "production", description="development relaxes nothing about jobs; it only allows the embedded Redis."
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("JOBENGINE_REDIS_URL", "REDIS_URL"),
        description="redis://, rediss:// or unix:// URL, or redis+sentinel://host:26379[,host:26379...]/<primary>[/db] "
        "(rediss+sentinel:// for TLS; see redis_url.py). Unset: an embedded Redis is started (make run only).",
    )
    redis_socket_timeout: float = Field(5.0, gt=0, description="Seconds before a Redis call counts as failed.")
    redis_max_connections: int = Field(
        256, ge=2, description="Redis connections of one API process's pool (the submit and read lanes keep 16 "
        "and 8 more of their own)."
    )
    redis_pool_timeout_seconds: float = Field(
        2.0, gt=0, description="How long an API request waits for a free Redis connection when all are busy; "
        "then 503 naming the pool (not Redis) as the cause."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    job_type_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated modules whose JOB_TYPES list is added to the catalog "
        "(besides packages exposing the 'jobengine.job_types' entry point).",
    )
    default_queue: str = Field("default", pattern=QUEUE_NAME_PATTERN)
    queues_declared: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated queues clients may name besides the job types' default queues and "
        "JOBENGINE_DEFAULT_QUEUE (the chart fills it with its worker pools' queues). Any other queue gets 422: "
        "a job on a queue no worker serves would wait forever, and every new name would grow what each "
        "/metrics scrape and worker tick walks.",
    )

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_metrics_port: int = Field(
        9101, ge=0, le=65535, description="Port of the API's /metrics, apart from the API port so that the "
        "ingress never exposes it (it names every tenant's queues and job types); 0 turns it off."
    )
    http_header_timeout_seconds: float = Field(
        10.0, gt=0, description="A connection that has not sent a request's whole head (request line and "
        "headers) this long after it started the request, or after it connected, is closed."
    )
    http_body_timeout_seconds: float = Field(
        30.0, gt=0, description="A request whose body has not arrived whole this long after its head gets 408 "
        "and its connection is closed."
    )
    http_keepalive_seconds: float = Field(5.0, gt=0, description="An idle keep-alive connection is closed after this.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Requests with a larger body get 413.")
    max_batch_size: int = Field(1000, ge=1, le=100_000)
    # Workflows (docs/guarantees.md, "Workflows"): POST /v1/flows and depends_on
    flow_max_nodes: int = Field(10_001, ge=1, le=1_000_000, description="Most jobs in one flow (POST /v1/flows): "
                                "more get 422. A flow is written by one script; the body limit still applies.")
    flow_max_edges: int = Field(50_000, ge=0, description="Most dependency edges in one flow.")
    flow_max_depth: int = Field(200, ge=1, description="Longest chain of dependencies in one flow (nodes).")
    max_depends_on: int = Field(100, ge=1, description="Most dependencies one job of POST /v1/jobs may name.")
    dependency_results_max_bytes: int = Field(
        8_388_608, ge=1024, description="Most bytes of dependency results a job reads through "
        "current_job().dependency_results() (fan-in); a job whose dependencies' results are larger fails.")
    flow_ttl_seconds: int = Field(604_800, ge=1, description="How long an ended flow stays readable.")
    idempotency_ttl_seconds: int = Field(86_400, ge=1, description="How long an Idempotency-Key is remembered.")
    index_max_age_seconds: int = Field(
        30 * 86_400, ge=0, description="Jobs submitted longer ago leave the listing index of GET /v1/jobs (trimmed "
        "as jobs are submitted); the jobs themselves keep their own TTLs. 0: never trimmed."
    )
    max_wait_seconds: float = Field(30.0, ge=0, description="Upper bound of the ?wait= long-poll on GET /v1/jobs/{id}.")
    # Events and webhooks (docs/guarantees.md, "Events" and "Webhooks")
    events_max_len: int = Field(
        10_000, ge=1, description="Entries kept (about: whole stream nodes are trimmed) in each tenant's event "
        "stream: how far back Last-Event-ID can resume and a stalled webhook delivery can catch up."
    )
    events_resume_seconds: int = Field(
        3600, ge=60, description="A tenant's events are written to its stream while it has a listener: webhooks "
        "or a callback secret, or an event stream open now or up to this long ago (so a client that reconnects "
        "within it resumes by Last-Event-ID). A tenant nobody listens to costs Redis no event writes."
    )
    events_heartbeat_seconds: float = Field(15.0, gt=0, description="An SSE comment line this often on an idle "
                                            "event stream (proxies keep the connection).")
    webhooks: bool = Field(True, description="Run the webhook delivery loop in this API process.")
    webhooks_allow_private: bool = Field(
        False, description="Let webhooks call private, loopback and link-local addresses (tests, make run); off: "
        "refused, so a tenant cannot make the platform call into its own network."
    )
    webhooks_timeout_seconds: float = Field(10.0, gt=0, description="One delivery attempt's timeout (connect and "
                                            "answer).")
    webhooks_max_attempts: int = Field(8, ge=1, description="Attempts of one delivery before it is given up "
                                       "(failed in the delivery log; redeliver to send it again).")
    webhooks_backoff_seconds: float = Field(1.0, gt=0, description="The first retry's delay; doubled each attempt "
                                            "(with jitter), at most 1 h.")
    webhooks_claim_idle_seconds: float = Field(30.0, gt=0, description="An event read by a delivery process that "
                                               "has not acknowledged it this long (the process died) is taken "
                                               "over by another (XAUTOCLAIM).")
    webhooks_secret_grace_seconds: int = Field(86_400, ge=0, description="After a secret rotation, deliveries are "
                                               "signed with the old secret too this long.")
    api_graceful_shutdown_seconds: float | None = Field(
        None, gt=0, description="After SIGTERM the API stops accepting connections and lets open requests finish "
        "this long (uvicorn's graceful timeout); at least JOBENGINE_MAX_WAIT_SECONDS, so a long-poll ends whole. "
        "Unset: JOBENGINE_MAX_WAIT_SECONDS + 5."
    )
    # Backpressure (docs/guarantees.md, section Backpressure): checked inside the enqueue script
    max_queue_backlog: int = Field(
        0, ge=0, description="Submissions to a queue holding this many waiting jobs get 429 + Retry-After; 0: no limit."
    )
    backlog_retry_after_seconds: int = Field(
        1, ge=1, description="The Retry-After of a 429 for a full queue."
    )
    rate_limit_per_second: float = Field(
        0.0, ge=0, description="Submissions per second per API key (token bucket in Redis); 0: no limit."
    )
    rate_limit_burst: int = Field(
        0, ge=0, description="Token bucket size per API key; 0: max(1, JOBENGINE_RATE_LIMIT_PER_SECOND)."
    )
    tenant_max_backlog: int = Field(
        0, ge=0, description="Jobs not yet ended (queued, scheduled, started) a tenant may hold; over it: 429 + "
        "Retry-After; 0: no quota."
    )
    tenant_backlog_quotas: dict[str, int] = Field(
        default_factory=dict, description='Per-tenant quotas overriding JOBENGINE_TENANT_MAX_BACKLOG, JSON: {"acme": '
        '50000}; 0 for a tenant: no quota for it.'
    )
    redis_memory_limit_ratio: float = Field(
        0.9, ge=0, le=1, description="Refuse submissions (503) once Redis uses this share of its maxmemory, keeping "
        "the rest for the jobs already accepted; 0: off (also off when Redis has no maxmemory)."
    )
    redis_memory_check_seconds: float = Field(
        0.5, gt=0, description="How often each API process samples INFO memory for that guard."
    )
    # API input limits, checked before model validation (a job type may declare a lower or higher
    # max_payload_bytes of its own)
    max_payload_bytes: int = Field(262_144, ge=16, description="Largest payload of one job, in bytes of its JSON.")
    max_json_depth: int = Field(32, ge=2, le=512, description="Deepest nesting of arrays and objects in a body.")
    max_string_length: int = Field(
        65_536, ge=16, description="Longest string (or object key) in a body, in characters."
    )

    # API authentication (docs/security.md)
    auth: Literal["auto", "on", "off"] = Field(
        "auto", description="API keys on every /v1 route; auto: on unless JOBENGINE_ENV=development."
    )
    auth_allow_off_in_production: bool = Field(
        False, description="Let JOBENGINE_AUTH=off start with JOBENGINE_ENV=production (refused otherwise)."
    )
    api_keys_file: str | None = Field(
        None, description="JSON (or YAML) file of API keys, hashed; needed when auth is on."
    )
    auth_refresh_seconds: float = Field(
        5.0, gt=0, description="How often the API re-reads the key file and the revocation set in Redis."
    )

    # Web console (docs/security.md, "Web console"): /console, off unless enabled
    console: bool = Field(
        False, description="Serve the web console at /console (sign-in with an API key; make run and the chart's "
        "console.enabled turn it on)."
    )
    console_session_seconds: int = Field(
        28_800, ge=60, le=7 * 86_400, description="How long a console sign-in lasts (the session cookie's life)."
    )
    console_secret: str | None = Field(
        None, min_length=32, description="Key that signs console session cookies and CSRF tokens; unset: a random "
        "one kept in Redis, shared by every API process (a new one signs everybody out)."
    )

    # Schedules (docs/guarantees.md, "Schedules"): the firing loop runs in every API process
    scheduler: bool = Field(
        True, description="Run the schedules' firing loop in this API process (every process may: each tick is "
        "fired once whatever the number); false: this process serves the API only."
    )
    schedules_file: str | None = Field(
        None, description="YAML or JSON file of declared schedules (a list of specs, each with an optional "
        "tenant), upserted by every API process at start; declared schedules no longer in it are deleted."
    )
    scheduler_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="Longest sleep of the firing loop between looks at the due schedules (it "
        "wakes earlier for the next due one): the worst lateness of a tick when nothing else wakes it."
    )
    scheduler_lease_seconds: float = Field(
        10.0, gt=0, description="A schedule a process took is left to it this long; when the process dies, another "
        "takes it over after this (the tick is then late by up to this much, not lost)."
    )
    scheduler_batch: int = Field(500, ge=1, le=5000, description="Schedules one take of the firing loop handles.")
    schedule_runs_kept: int = Field(20, ge=1, le=1000, description="Runs of each schedule kept for GET's history.")
    max_schedules_per_tenant: int = Field(
        1000, ge=0, description="Schedules a tenant may hold, created through the API (declared ones count, but "
        "the file is never refused); over it: 429; 0: no limit."
    )
    schedule_tick_key_ttl_seconds: int = Field(
        3600, ge=60, description="How long a fired tick's idempotency key is kept (beyond a schedule's misfire "
        "grace, which is added to it): a tick computed again within it is not fired twice."
    )
    schedule_broken_retry_seconds: float = Field(
        60.0, gt=0, description="How often a broken schedule (its job type gone from the catalog, or its payload no "
        "longer valid) is looked at again: a process whose catalog has the type fires it again."
    )

    # Worker
    queues: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["high", "default", "low"],
        description="Queues this worker serves, highest priority first, comma-separated.",
    )
    worker_name: str | None = Field(None, description="Unique worker name; default host name + pid.")
    worker_pool: str = Field(
        "", max_length=100, description="The pool this worker belongs to, shown by GET /v1/workers (the chart sets "
        "its pool's name); empty: none."
    )
    batch_size: int = Field(16, ge=1, le=1000, description="Jobs a worker claims per Redis round trip.")
    max_jobs: int = Field(
        0, ge=0, description="A worker exits (0, as a drained worker) once this many jobs have ended on it, their "
        "outcomes written; it never claims more than the jobs left. 0: no limit (the chart's ScaledJob pods take "
        "one job and exit)."
    )
    idle_exit_seconds: float = Field(
        0, ge=0, description="A worker exits (0, as a drained worker) after this long without a job to claim, "
        "counted from its start or its last job's end; 0: never."
    )
    drain_seconds: float = Field(
        25.0, ge=0, description="On SIGTERM, how long running jobs may finish before they go back to their queue."
    )
    heartbeat_seconds: float = Field(2.0, gt=0, description="How often a worker renews its claim on running jobs.")
    liveness_file: str | None = Field(
        None, description="A file the worker touches from its main loop (also while Redis is away, and while a "
        "job runs): `jobengine-worker-health --live` checks its age, so liveness never depends on Redis. "
        "Unset: no file."
    )
    liveness_max_age_seconds: float = Field(
        60.0, gt=0, description="`jobengine-worker-health --live` fails when JOBENGINE_LIVENESS_FILE is older: "
        "the worker's loop is stuck."
    )
    abandoned_after_seconds: float = Field(
        15.0, gt=0, description="A claim not renewed for this long means its worker died; its jobs are recovered."
    )
    hard_kill_grace_seconds: float = Field(
        5.0, ge=0, description="After a job's timeout, how long before its executor process is killed."
    )
    max_recoveries: int = Field(
        3, ge=0, description="Times a job whose worker died is requeued before it fails as abandoned."
    )
    max_crashes: int = Field(
        2, ge=0, description="Times a job that takes its executor process down (os._exit, a segfault, the OOM "
        "killer) is requeued once its retries are spent, before it fails."
    )
    metrics_port: int = Field(9100, ge=0, le=65535, description="Worker /metrics port; 0 turns it off.")

    # Operator actions (the API runs bulk operations in the background: operations.py)
    bulk_chunk_size: int = Field(
        100, ge=1, le=1000, description="Registry entries one step of a bulk operation examines (one script call: "
        "Redis is held for the step, so its time grows with this; make bench-bulk measures it)."
    )
    bulk_pause_seconds: float = Field(
        0.005, ge=0, le=10, description="Pause between two steps of a bulk operation: Redis serves other clients "
        "in between."
    )
    bulk_lease_seconds: float = Field(
        10.0, ge=1, le=3600, description="An API process runs a bulk operation under a lease it renews at each "
        "step; another API process resumes the operation once the lease lapsed (its process died)."
    )
    operations_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often an API process looks for bulk operations to run or resume (one "
        "with an expired lease: its process died)."
    )
    paused_refresh_seconds: float = Field(
        1.0, gt=0, le=60, description="How often an API process re-reads which queues are paused (submits to a "
        "queue paused with refuse_submits get 409 once it has)."
    )
    metrics_host: str = "127.0.0.1"

    @property
    def rate_limit_bucket(self) -> int:
        """Tokens a key's bucket holds when full."""
        return self.rate_limit_burst or max(1, int(self.rate_limit_per_second))

    def tenant_quota(self, tenant: str) -> int:
        """The backlog quota of a tenant (0: none)."""
        return self.tenant_backlog_quotas.get(tenant, self.tenant_max_backlog)

    @property
    def auth_enabled(self) -> bool:
        if self.auth == "auto":
            return self.env != "development"
        return self.auth == "on"

    @property
    def graceful_shutdown_seconds(self) -> float:
        """uvicorn's graceful timeout: the setting, else the longest long-poll plus 5 s."""
        if self.api_graceful_shutdown_seconds is not None:
            return self.api_graceful_shutdown_seconds
        return self.max_wait_seconds + 5.0

    @field_validator("redis_url")
    @classmethod
    def _known_redis_url(cls, value: str | None) -> str | None:
        if value:
            check(value)
        return value

    @field_validator("queues", "queues_declared", "job_type_modules", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("queues", "queues_declared")
    @classmethod
    def _check_queue_names(cls, value: list[str], info) -> list[str]:  # type: ignore[no-untyped-def]
        import re

        if not value and info.field_name == "queues":
            raise ValueError("at least one queue is needed")
        for name in value:
            if not re.match(QUEUE_NAME_PATTERN, name):
                raise ValueError(f"invalid queue name {name!r}: letters, digits, '_', '.', '-' only")
        return value

    @field_validator("api_metrics_port")
    @classmethod
    def _metrics_apart(cls, value: int, info) -> int:  # type: ignore[no-untyped-def]
        if value and value == info.data.get("api_port"):
            raise ValueError("must differ from JOBENGINE_API_PORT (/metrics is kept off the API port)")
        return value

    @field_validator("api_graceful_shutdown_seconds")
    @classmethod
    def _graceful_outlasts_long_poll(cls, value: float | None, info) -> float | None:  # type: ignore[no-untyped-def]
        longest = info.data.get("max_wait_seconds")
        if value is not None and longest is not None and value < longest:
            raise ValueError("must be at least JOBENGINE_MAX_WAIT_SECONDS (a rollout would cut long-polls)")
        return value

    @field_validator("abandoned_after_seconds")
    @classmethod
    def _abandon_after_heartbeat(cls, value: float, info) -> float:  # type: ignore[no-untyped-def]
        heartbeat = info.data.get("heartbeat_seconds")
        if heartbeat is not None and value < 2 * heartbeat:
            raise ValueError("must be at least twice JOBENGINE_HEARTBEAT_SECONDS")
        return value


def load_settings() -> Settings:
    """Read settings or exit with one line per bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            var = field if field.upper().startswith(("JOBENGINE_", "REDIS_URL")) else f"JOBENGINE_{field.upper()}"
            got = "<redacted>" if var in SECRET_VARIABLES else repr(err.get("input"))  # a URL may hold a password
            lines.append(f"invalid setting {var}: {err['msg']} (got {got})")
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(2) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
