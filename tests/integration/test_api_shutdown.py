"""A rollout ends the API's long-polls whole: after SIGTERM uvicorn lets open requests finish for
JOBENGINE_API_GRACEFUL_SHUTDOWN_SECONDS (default JOBENGINE_MAX_WAIT_SECONDS + 5), not a fixed 10 s."""

from __future__ import annotations

import signal

import redis

from tests.support.wait import wait_until

from .test_api_jobs import Waiter, submit


def test_a_long_poll_longer_than_ten_seconds_survives_sigterm(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_MAX_WAIT_SECONDS="15")
    job_id = submit(api)  # no worker: the job stays queued and the long-poll runs its whole wait
    waiter = Waiter(api, job_id, wait=12)
    waiter.start()
    # the API subscribes its pattern on the first long-poll: the request is being served
    wait_until(lambda: r.execute_command("PUBSUB", "NUMPAT") >= 1, message="the long-poll to reach the API")
    api.proc.signal(signal.SIGTERM)
    waiter.join(timeout=60)
    assert waiter.answer is not None and waiter.answer["status"] == "queued", api.proc.log()[-2000:]
    assert api.proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down
