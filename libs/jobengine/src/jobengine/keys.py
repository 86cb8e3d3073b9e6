"""Every Redis key and channel name, in one place.

The rq:* names are RQ's own data model (rq 3.x), so `rq info` and RQ's registries see the same
jobs; jobengine:* names are this project's additions.
"""

RQ = "rq"

QUEUES_SET = "rq:queues"  # set of queue keys, as RQ keeps it
WORKERS_SET = "rq:workers"


def queue(name: str) -> str:
    """The waiting list of a queue: the key KEDA's redis trigger reads with LLEN."""
    return f"rq:queue:{name}"


def job(job_id: str) -> str:
    return f"rq:job:{job_id}"


def results(job_id: str) -> str:
    return f"rq:results:{job_id}"


def started_registry(queue_name: str) -> str:
    """RQ's StartedJobRegistry: zset of '<job_id>:<execution_id>' scored by claim expiry."""
    return f"rq:wip:{queue_name}"


def finished_registry(queue_name: str) -> str:
    return f"rq:finished:{queue_name}"


def failed_registry(queue_name: str) -> str:
    return f"rq:failed:{queue_name}"


def scheduled_registry(queue_name: str) -> str:
    return f"rq:scheduled:{queue_name}"


def canceled_registry(queue_name: str) -> str:
    return f"rq:canceled:{queue_name}"


def worker(name: str) -> str:
    return f"rq:worker:{name}"


def workers_of_queue(queue_name: str) -> str:
    return f"rq:workers:{queue_name}"


def worker_pubsub(name: str) -> str:
    """RQ's command channel of a worker (send_stop_job_command publishes here)."""
    return f"rq:pubsub:{name}"


# jobengine additions
def idempotency(key: str, tenant: str = "default") -> str:
    """A tenant's Idempotency-Key (tenant names hold no ':'): tenants never see each other's jobs through it."""
    return f"jobengine:idempotency:{tenant}:{key}"


def rate_limit(key_id: str) -> str:
    """Token bucket of one API key (hash: tokens, at)."""
    return f"jobengine:ratelimit:{key_id}"


def tenant_backlog(tenant: str) -> str:
    """Jobs of a tenant not yet ended, counted while its backlog quota is on (enqueue.lua, complete.lua)."""
    return f"jobengine:backlog:{tenant}"


def notify(queue_name: str) -> str:
    """Wake-up hint for idle workers: a list of at most one element, never the job itself."""
    return f"jobengine:notify:{queue_name}"


JOB_INDEX = "jobengine:index"  # stream of {id: job_id} in submit order, for listing with a cursor
DONE_CHANNEL_PREFIX = "jobengine:done:"  # publish when a job reaches a terminal state
MAINTENANCE_LOCK = "jobengine:lock:maintenance"
APIKEY_REVOKED = "jobengine:apikey:revoked"  # set of API key ids refused by every API process
TENANT_FIELD = "jobengine_tenant"  # job hash field: the tenant that submitted the job (absent: "default")


def done_channel(job_id: str) -> str:
    return f"{DONE_CHANNEL_PREFIX}{job_id}"
