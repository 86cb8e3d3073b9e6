"""SIGTERM while a batch is half done: the claimed jobs that have not started go back to their queue at once
(docs/guarantees.md, "Shutdown gives jobs back"), not after the running job's drain."""

from __future__ import annotations

import signal
import time

from jobengine.producer import JobSpec
from tests.conftest import wait_for
from tests.integration.test_worker import producer, status  # noqa: F401 - the producer fixture


def test_sigterm_gives_back_the_unstarted_jobs_of_a_batch_at_once(r, producer, start_worker, redis_url):  # noqa: F811
    worker = start_worker(JOBENGINE_DRAIN_SECONDS="20")
    warm = producer.submit_many([JobSpec("counted", {"seconds": 0}) for _ in range(40)])  # fast jobs: batches grow to 16
    wait_for(lambda: all(status(r, j) == "finished" for j in warm), message="the warm-up jobs")
    long_job, *rest = producer.submit_many([JobSpec("counted", {"seconds": 5, "counter_url": redis_url}),
                                            *[JobSpec("counted", {"seconds": 0}) for _ in range(5)]])
    wait_for(lambda: status(r, long_job) == "started", message="the long job to start")
    claimed = [j for j in rest if status(r, j) == "started"]
    assert claimed, "the fast jobs were not claimed in the long job's batch"
    worker.signal(signal.SIGTERM)
    began = time.monotonic()
    wait_for(lambda: all(status(r, j) == "queued" for j in claimed), timeout=3,
             message="the claimed jobs to be given back")
    assert time.monotonic() - began < 3 and status(r, long_job) == "started"  # while the long job still runs
    assert set(r.lrange("rq:queue:default", 0, -1)) == {j.encode() for j in rest}
    assert [m.decode().split(":")[0] for m in r.zrange("rq:wip:default", 0, -1)] == [long_job]  # only its claim
    assert worker.wait(15) == 0
    assert status(r, long_job) == "finished"  # it drained within the deadline
    assert [int(r.hget(f"rq:job:{j}", "jobengine_attempts") or 0) for j in claimed] == [0] * len(claimed)
