"""SIGTERM while a batch is half done: the claimed jobs that have not started go back to their queue at once
(docs/guarantees.md, "Shutdown gives jobs back"), not after the running job's drain."""

from __future__ import annotations

import signal

from jobengine.producer import JobSpec
from tests.integration.test_worker import producer, status  # noqa: F401 - the producer fixture
from tests.support.gated import open_gate
from tests.support.wait import wait_until


def test_sigterm_gives_back_the_unstarted_jobs_of_a_batch_at_once(r, producer, start_worker, redis_url):  # noqa: F811
    worker = start_worker(JOBENGINE_DRAIN_SECONDS="60")
    warm = producer.submit_many([JobSpec("counted", {"seconds": 0}) for _ in range(40)])  # fast jobs: batches grow to 16
    wait_until(lambda: all(status(r, j) == "finished" for j in warm), message="the warm-up jobs")
    # the long job ends only when the test opens its gate: "at once" means while it still runs
    long_job, *rest = producer.submit_many([JobSpec("gated", {"redis_url": redis_url}),
                                            *[JobSpec("counted", {"seconds": 0}) for _ in range(5)]])
    wait_until(lambda: status(r, long_job) == "started", message="the long job to start")
    claimed = [j for j in rest if status(r, j) == "started"]
    assert claimed, "the fast jobs were not claimed in the long job's batch"
    worker.signal(signal.SIGTERM)
    wait_until(lambda: all(status(r, j) == "queued" for j in claimed), message="the claimed jobs to be given back")
    assert status(r, long_job) == "started" and worker.alive()  # given back while the long job still runs
    assert set(r.lrange("rq:queue:default", 0, -1)) == {j.encode() for j in rest}
    assert [m.decode().split(":")[0] for m in r.zrange("rq:wip:default", 0, -1)] == [long_job]  # only its claim
    open_gate(r, long_job)
    assert worker.wait(30) == 0
    assert status(r, long_job) == "finished"  # it drained within the deadline
    assert [int(r.hget(f"rq:job:{j}", "jobengine_attempts") or 0) for j in claimed] == [0] * len(claimed)
