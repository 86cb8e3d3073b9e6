"""Per-job callback_url: checked on submit, kept beside the job (keys.callback) before the job is written, so the
delivery loop finds it when the job's end event comes (however soon). Signed with the tenant's callback secret,
which must exist first (POST /v1/webhooks/callback-secret:rotate): a submit without it gets 422."""

from __future__ import annotations

from typing import Any

from jobengine import keys

from ..problems import Problem, invalid
from . import guard

CALLBACK_TTL = 8 * 86_400  # seconds beyond the job's start delay: longer than a job's default failure TTL (7 days)


def url_problem(url: str, allow_private: bool) -> Problem | None:
    why = guard.check_url(url) or guard.literal_refusal(url, allow_private)
    return invalid([{"field": "callback_url", "message": why}]) if why else None


async def register(redis: Any, tenant: str, callbacks: list[tuple[str, str, float]]) -> None:
    """(job id, url, seconds until the job may run) for each job with a callback_url; before the jobs are written."""
    if not await redis.exists(keys.callback_secret(tenant)):
        raise invalid([{"field": "callback_url", "message": "the tenant has no callback secret yet: POST "
                                                            "/v1/webhooks/callback-secret:rotate first"}])
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, url, delay in callbacks:
            pipe.set(keys.callback(job_id), url, ex=CALLBACK_TTL + int(delay))
        await pipe.execute()
