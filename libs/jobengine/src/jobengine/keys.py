"""Every Redis key and channel name, in one place: these functions for Python, and LUA_PREFIXES for the Lua
scripts (which write `K.<name> .. id`; scripts.py puts the string in as it loads them).

The rq:* names are RQ's own data model (rq 3.x), so `rq info` and RQ's registries see the same
jobs; jobengine:* names are this project's additions.
"""

from __future__ import annotations

# Prefixes of per-job, per-queue and per-worker keys.
PREFIXES: dict[str, str] = {
    "job": "rq:job:",
    "results": "rq:results:",
    "queue": "rq:queue:",
    "wip": "rq:wip:",  # RQ's StartedJobRegistry
    "scheduled": "rq:scheduled:",
    "finished": "rq:finished:",
    "failed": "rq:failed:",
    "canceled": "rq:canceled:",
    "worker": "rq:worker:",
    "pubsub": "rq:pubsub:",
    "notify": "jobengine:notify:",
    "done": "jobengine:done:",
    # schedules ('<tenant>:<name>' follows)
    "schedule": "jobengine:schedule:",  # hash of one schedule
    "schedule_runs": "jobengine:schedule:runs:",  # list of its last runs (JSON)
    "schedule_state": "jobengine:schedules:state:",  # + state: set of the members in that state (the gauge)
    "schedule_tick": "jobengine:schedule:tick:",  # + '<member>:<incarnation>:<tick>': a tick's idempotency key
    "paused": "jobengine:paused:",  # a queue's pause marker (see paused())
    "op": "jobengine:op:",  # a bulk operation's hash (operations.py, bulk.lua)
    # workflows (docs/guarantees.md, "Workflows")
    "deferred": "rq:deferred:",  # RQ's DeferredJobRegistry: jobs waiting for their dependencies
    "pending": "jobengine:pending:",  # + job id: hash {dependency id: success | any} of dependencies not yet met
    "flow": "jobengine:flow:",  # + flow id: hash of one flow (tenant, counts, node:<name> -> job id)
    "events": "jobengine:events:",  # + tenant: the tenant's job event stream (lua/_events.lua)
    "listened": "jobengine:listened:",  # + tenant: present while its events are written (events_listened())
}

QUEUES_SET = "rq:queues"  # set of queue keys, as RQ keeps it
WORKERS_SET = "rq:workers"
JOB_INDEX = "jobengine:index"  # stream of {id: job_id} in submit order, for listing with a cursor
DONE_CHANNEL_PREFIX = PREFIXES["done"]  # publish when a job reaches a terminal state
APIKEY_REVOKED = "jobengine:apikey:revoked"  # set of API key ids refused by every API process
CONSOLE_SECRET = "jobengine:console:secret"  # the console's signing key when JOBENGINE_CONSOLE_SECRET is unset
TENANT_FIELD = "jobengine_tenant"  # job hash field: the tenant that submitted the job (absent: none)


def queue(name: str) -> str:
    """The waiting list of a queue: the key KEDA's redis trigger reads with LLEN."""
    return PREFIXES["queue"] + name


def job(job_id: str) -> str:
    return PREFIXES["job"] + job_id


def results(job_id: str) -> str:
    return PREFIXES["results"] + job_id


def started_registry(queue_name: str) -> str:
    """RQ's StartedJobRegistry: zset of '<job_id>:<execution_id>' scored by claim expiry."""
    return PREFIXES["wip"] + queue_name


def scheduled_registry(queue_name: str) -> str:
    return PREFIXES["scheduled"] + queue_name


def deferred_registry(queue_name: str) -> str:
    """RQ's DeferredJobRegistry: zset of jobs of the queue waiting for their dependencies."""
    return PREFIXES["deferred"] + queue_name


def dependents(job_id: str) -> str:
    """RQ's set of the jobs that depend on this one (and, for a flow's node, its flow's key: see flow.lua)."""
    return f"{PREFIXES['job']}{job_id}:dependents"


def dependencies(job_id: str) -> str:
    """RQ's set of the ids this job depends on (all of them, met or not)."""
    return f"{PREFIXES['job']}{job_id}:dependencies"


def pending(job_id: str) -> str:
    """Hash {dependency id: 'success' | 'any'} of the dependencies of a deferred job not yet met."""
    return PREFIXES["pending"] + job_id


def flow(flow_id: str) -> str:
    return PREFIXES["flow"] + flow_id


FLOW_OUTCOMES = "jobengine:flows:outcomes"  # hash {outcome: flows ended so}: jobengine_flows_total at a scrape


def worker(name: str) -> str:
    return PREFIXES["worker"] + name


def workers_of_queue(queue_name: str) -> str:
    return f"rq:workers:{queue_name}"


def worker_pubsub(name: str) -> str:
    """RQ's command channel of a worker (send_stop_job_command publishes here)."""
    return PREFIXES["pubsub"] + name


def paused(queue_name: str) -> str:
    """A paused queue's marker: a list holding one JSON element (since, refuse_submits), absent when the
    queue runs. A list, not a string or hash, so KEDA's redis trigger can read it with LLEN (1 = paused) and
    the autoscaling formula count the queue's waiting jobs as zero (docs/kubernetes.md)."""
    return PREFIXES["paused"] + queue_name


def operation(op_id: str) -> str:
    return PREFIXES["op"] + op_id


OPERATIONS = "jobengine:ops"  # zset of operation ids by creation time (listing)
OPERATIONS_ACTIVE = "jobengine:ops:active"  # set of operation ids not yet ended: what the API processes run


def notify(queue_name: str) -> str:
    """Wake-up hint for idle workers: a list of at most one element, never the job itself."""
    return PREFIXES["notify"] + queue_name


# jobengine additions
def idempotency(key: str, tenant: str = "default") -> str:
    """A tenant's Idempotency-Key (tenant names hold no ':'): tenants never see each other's jobs through it."""
    return f"jobengine:idempotency:{tenant}:{key}"


def rate_limit(key_id: str) -> str:
    """Token bucket of one API key (hash: tokens, at)."""
    return f"jobengine:ratelimit:{key_id}"


def tenant_index(tenant: str) -> str:
    """A tenant's own listing index: a stream of {id: job_id} in submit order (enqueue.lua writes it beside
    JOB_INDEX), so listing a tenant's jobs never scans other tenants' entries."""
    return f"{JOB_INDEX}:{tenant}"


def tenant_backlog(tenant: str) -> str:
    """Jobs of a tenant not yet ended, counted while its backlog quota is on (enqueue.lua, complete.lua)."""
    return f"jobengine:backlog:{tenant}"


# Schedules (docs/guarantees.md, "Schedules"): tenant names hold no ':', schedule names neither.
# zset of '<tenant>:<name>' scored by when to look at it next (its tick + jitter, or a lease's end)
SCHEDULES_DUE = "jobengine:schedules:due"
SCHEDULE_STATES = ("active", "paused", "ended", "broken")


def schedule_member(tenant: str, name: str) -> str:
    return f"{tenant}:{name}"


def schedule(member: str) -> str:
    """Hash of one schedule; `member` is schedule_member(tenant, name)."""
    return PREFIXES["schedule"] + member


def schedule_runs(member: str) -> str:
    return PREFIXES["schedule_runs"] + member


def schedule_state(state: str) -> str:
    """Set of the schedules in a state: SCARD per state feeds jobengine_schedules{state} without a scan."""
    return PREFIXES["schedule_state"] + state


def schedule_tick(member: str, incarnation: str, tick: int) -> str:
    """The idempotency key of one tick of one schedule: apart from the users' Idempotency-Key namespace. The
    incarnation (creation time) keeps a schedule deleted and created again under its name from matching it."""
    return f"{PREFIXES['schedule_tick']}{member}:{incarnation}:{tick}"


def tenant_schedules(tenant: str) -> str:
    """zset (all scores 0) of a tenant's schedule names: listed with a cursor by ZRANGEBYLEX."""
    return f"jobengine:schedules:{tenant}"


LUA_PREFIXES = {**PREFIXES, "queues": QUEUES_SET, "index": JOB_INDEX, "due": SCHEDULES_DUE,
                "ops_active": OPERATIONS_ACTIVE,
                "flow_outcomes": FLOW_OUTCOMES}  # K.<name> in the scripts


def events(tenant: str) -> str:
    """A tenant's job events: a stream bounded by JOBENGINE_EVENTS_MAX_LEN (lua/_events.lua writes it)."""
    return PREFIXES["events"] + tenant


def events_listened(tenant: str) -> str:
    """Present while the tenant's events are written (lua/_events.lua checks it once a script call): kept with
    no expiry once it has webhooks or a callback secret, and for JOBENGINE_EVENTS_RESUME_SECONDS after an event
    stream of it was last open; without it, its jobs cost Redis no event writes."""
    return PREFIXES["listened"] + tenant


WEBHOOK_GROUP = "jobengine-webhooks"  # the consumer group of the webhook delivery loops on every events stream
EVENT_TENANTS = "jobengine:webhook-tenants"  # set of tenants with webhooks (the delivery loop reads it; not under
# jobengine:events:, where a tenant named "tenants" would have its stream)


# Webhooks (jobengine_api/webhooks): subscriptions, their delivery log, and the deliveries due
def webhook(webhook_id: str) -> str:
    """Hash of one subscription (tenant, url, events, secret, previous secret and until when it signs)."""
    return f"jobengine:webhook:{webhook_id}"


def tenant_webhooks(tenant: str) -> str:
    """Set of a tenant's subscription ids."""
    return f"jobengine:webhooks:{tenant}"


def tenant_webhooks_version(tenant: str) -> str:
    """Counter bumped at each change of a tenant's subscriptions: the delivery loops' caches follow it."""
    return f"jobengine:webhooks:version:{tenant}"


def webhook_deliveries(webhook_id: str) -> str:
    """zset of a subscription's delivery ids by creation time (ms): its delivery log, newest kept."""
    return f"jobengine:webhook:deliveries:{webhook_id}"


def delivery(delivery_id: str) -> str:
    """Hash of one delivery (event body, target, status, attempts, last answer)."""
    return f"jobengine:delivery:{delivery_id}"


DELIVERIES_DUE = "jobengine:deliveries:due"  # zset of delivery ids by when to attempt (or a lease's end)


def callback(job_id: str) -> str:
    """A job's callback_url (submitted with it), kept as long as the job may live."""
    return f"jobengine:callback:{job_id}"


def callback_secret(tenant: str) -> str:
    """Hash of the secret that signs a tenant's per-job callbacks (like a subscription's)."""
    return f"jobengine:callback-secret:{tenant}"
