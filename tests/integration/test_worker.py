"""The worker as a real process against a real redis-server: runs, retries, timeouts, delays,
cancels, crashes, SIGTERM drain, SIGKILL recovery and Redis restarts. Jobs are submitted with the
Python producer (the API has its own tests); state is read back through RQ's own classes."""

from __future__ import annotations

import signal
import time

import pytest
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from jobengine.catalog import RetryPolicy, discover
from jobengine.jobdata import decode_result_entry
from jobengine.producer import JobSpec, Producer
from jobengine.scripts import Scripts, cancel_args
from tests.conftest import wait_for


@pytest.fixture
def producer(r: redis.Redis) -> Producer:
    return Producer(r, catalog=discover(["tests.support.jobs"]))


def status(r: redis.Redis, job_id: str) -> str:
    value = r.hget(f"rq:job:{job_id}", "status")
    return value.decode() if value else ""


def wait_status(r: redis.Redis, job_id: str, *wanted: str, timeout: float = 15) -> str:
    return wait_for(lambda: status(r, job_id) if status(r, job_id) in wanted else "", timeout,
                    message=f"job {job_id} to reach {wanted} (now {status(r, job_id)!r})")


def latest_result(r: redis.Redis, job_id: str) -> dict:
    entries = r.xrevrange(f"rq:results:{job_id}", count=1)
    return decode_result_entry(entries[0][1]) if entries else {}


def test_seed_example_runs_and_rq_reads_the_outcome(r, producer, worker):
    job_id = producer.submit("primes", {"lowest": 10, "highest": 17})
    wait_status(r, job_id, "finished")
    job = Job.fetch(job_id, connection=r, serializer=JSONSerializer)
    assert job.return_value() == {"primes": [11, 13, 17], "count": 3}
    assert job.worker_name.startswith("test-worker")
    assert job_id in FinishedJobRegistry("default", connection=r).get_job_ids()
    assert StartedJobRegistry("default", connection=r).get_job_ids() == []


def test_priority_order_and_many_jobs(r, producer, start_worker):
    ids_low = producer.submit_many([JobSpec("echo", {"message": f"l{i}"}, queue="low") for i in range(50)])
    ids_high = producer.submit_many([JobSpec("echo", {"message": f"h{i}"}, queue="high") for i in range(50)])
    start_worker()
    for job_id in ids_low + ids_high:
        wait_status(r, job_id, "finished")
    ended = {j: Job.fetch(j, connection=r, serializer=JSONSerializer).ended_at for j in ids_low + ids_high}
    assert max(ended[j] for j in ids_high) <= min(ended[j] for j in ids_low)


def test_a_busy_worker_makes_one_script_call_a_batch(r, producer, start_worker):
    """A batch's outcomes are written by the same script call that claims the next batch."""
    ids = producer.submit_many([JobSpec("echo", {"message": str(i)}) for i in range(960)])
    r.config_resetstat()
    t0 = time.monotonic()
    start_worker(JOBENGINE_BATCH_SIZE="16", JOBENGINE_HEARTBEAT_SECONDS="30",
                 JOBENGINE_ABANDONED_AFTER_SECONDS="60")
    for job_id in ids:
        wait_status(r, job_id, "finished")
    elapsed = time.monotonic() - t0
    stats = r.info("commandstats")
    calls = stats["cmdstat_evalsha"]["calls"]
    # the claims that returned jobs: each job's execution id is its claim's ('done:<claim>' once ended)
    batches = len({r.hget(f"rq:job:{job_id}", "jobengine_claim") for job_id in ids})
    # one call a batch, plus the timers' (a schedule and an idle claim a second, a recover a heartbeat); two
    # calls a batch (claim, then complete) would be about twice as many
    assert calls <= batches + 3 * (int(elapsed) + 3), (calls, batches, elapsed)
    # the registries are written once a batch, not once a job: a ZADD to the StartedJobRegistry at the claim,
    # a ZREM from it and a ZADD to the FinishedJobRegistry at the completion
    assert stats["cmdstat_zrem"]["calls"] <= batches + 1, (stats["cmdstat_zrem"], batches)
    assert stats["cmdstat_zadd"]["calls"] <= 2 * batches + 2, (stats["cmdstat_zadd"], batches)


def test_ended_jobs_and_their_results_expire_after_their_ttl(r, producer, worker):
    """An ended job, its result stream and its registry entry last the job type's result_ttl (finished) or
    failure_ttl (failed), counted from the end of the run."""
    ok = producer.submit("echo", {"message": "ok"})
    bad = producer.submit("echo", {"message": "x", "fail": True}, retry=RetryPolicy(max_retries=0))
    wait_status(r, ok, "finished")
    wait_status(r, bad, "failed")
    echo = producer.catalog["echo"]
    for job_id, ttl, registry in ((ok, echo.result_ttl, "rq:finished:default"),
                                  (bad, echo.failure_ttl, "rq:failed:default")):
        ended_at = Job.fetch(job_id, connection=r, serializer=JSONSerializer).ended_at.timestamp()
        since_end = time.time() - ended_at + 2  # seconds of the TTLs already spent, whole-second rounding included
        assert r.zscore(registry, job_id) == pytest.approx(ended_at + ttl, abs=2)
        for key in (f"rq:job:{job_id}", f"rq:results:{job_id}"):
            assert ttl - since_end <= r.ttl(key) <= ttl, key
    assert r.zcard("rq:wip:default") == 0


def test_retry_with_backoff_then_success(r, producer, worker):
    policy = RetryPolicy(max_retries=3, base_delay=0.4, factor=2.0, jitter=0.0)
    job_id = producer.submit("echo", {"message": "hi", "fail_attempts": 2}, retry=policy)
    wait_status(r, job_id, "finished")
    job = Job.fetch(job_id, connection=r, serializer=JSONSerializer)
    assert job.return_value() == {"message": "hi", "attempt": 3}
    assert job.number_of_retries == 2
    # two failed attempts then one success, all kept in RQ's result stream, spaced by the backoff
    entries = r.xrange(f"rq:results:{job_id}")
    assert [decode_result_entry(f)["type"] for _, f in entries] == [2, 2, 1]
    stamps = [int(eid.split(b"-")[0]) / 1000 for eid, _ in entries]
    assert stamps[1] - stamps[0] >= 0.4 - 0.05  # first delay: base_delay
    assert stamps[2] - stamps[1] >= 0.8 - 0.05  # second delay: 0.4 * 2
    assert stamps[2] - stamps[0] < 0.4 + 0.8 + 10  # and not stuck: due jobs are moved (a bound only a hang reaches)


def test_failure_after_retries_is_in_the_failed_registry(r, producer, worker):
    policy = RetryPolicy(max_retries=1, base_delay=0.0, jitter=0.0)
    job_id = producer.submit("echo", {"fail": True}, retry=policy)
    wait_status(r, job_id, "failed")
    assert job_id in FailedJobRegistry("default", connection=r).get_job_ids()
    assert "echo failed on purpose (attempt 2)" in latest_result(r, job_id)["exc_string"]
    assert int(r.hget(f"rq:job:{job_id}", "jobengine_attempts")) == 2


def test_soft_timeout_fails_the_job_and_the_worker_goes_on(r, producer, worker):
    job_id = producer.submit("sleep", {"seconds": 30}, timeout=1)
    wait_status(r, job_id, "failed", timeout=10)
    assert "JobTimeout" in latest_result(r, job_id)["exc_string"]
    after = producer.submit("echo", {"message": "next"})
    wait_status(r, after, "finished")


def test_hung_job_is_killed_after_timeout_and_grace(r, producer, start_worker):
    start_worker(JOBENGINE_HARD_KILL_GRACE_SECONDS="1")
    job_id = producer.submit("hang", {"seconds": 60})
    wait_status(r, job_id, "failed", timeout=15)
    assert "killed after 1s" in latest_result(r, job_id)["exc_string"]
    after = producer.submit("echo", {"message": "next"})
    wait_status(r, after, "finished")


def test_crashing_job_does_not_take_the_worker_down(r, producer, worker, redis_url):
    job_id = producer.submit("crash", {"counter_url": redis_url})
    wait_status(r, job_id, "finished")  # first attempt kills its process; the retry succeeds
    assert int(r.get(f"test:runs:{job_id}")) == 2
    assert worker.alive()


def test_crash_in_the_middle_of_a_batch(r, producer, worker, redis_url):
    """Fast jobs go to the executor in batches (claims of 1, 2, 4, 8, 16: job 20 sits in the middle of
    the fifth). Its crash costs the batch's other jobs nothing: those it ran before keep their outcomes
    (journaled in shared memory as each ended), those after it run once, in the new executor."""
    specs = [JobSpec("counted", {"seconds": 0, "counter_url": redis_url}) for _ in range(40)]
    specs[20] = JobSpec("crash", {"counter_url": redis_url})
    ids = producer.submit_many(specs)
    for job_id in ids:
        wait_status(r, job_id, "finished", timeout=30)
    runs = [int(r.get(f"test:runs:{job_id}") or 0) for job_id in ids]
    assert runs[20] == 2  # killed its process, then its retry finished
    assert runs[:20] + runs[21:] == [1] * 39, runs
    assert worker.alive()
    assert r.llen("rq:queue:default") == 0 and r.zcard("rq:wip:default") == 0


def test_a_finished_job_holds_under_4_kb_of_redis(r, producer, worker):
    """A finished job keeps its hash, its result stream, a registry and an index entry for its result
    TTL. Redis preallocates each new stream's node (4 KB by default): the embedded Redis, like the chart's,
    sets stream-node-max-bytes 512, so a finished echo job costs about 3.4 KB, not 7."""
    assert r.config_get("stream-node-max-bytes")["stream-node-max-bytes"] == "512"
    before = r.info("memory")["used_memory"]
    ids = producer.submit_many([JobSpec("echo", {"message": f"m{i}"}) for i in range(2000)])
    wait_for(lambda: r.zcard("rq:finished:default") >= len(ids), timeout=60, message="every job to finish")
    per_job = (r.info("memory")["used_memory"] - before) / len(ids)
    assert 500 < per_job < 4000, per_job


def test_executor_killed_while_idle_is_replaced_at_the_next_job(r, producer, worker):
    """An idle worker's executor killed from outside (the OOM killer, RQ's kill-horse): the next batch
    finds its pipe broken, goes back to the queue, and runs in a new executor."""
    import psutil

    def executors() -> list[psutil.Process]:  # (the other child is multiprocessing's resource tracker)
        return [p for p in psutil.Process(worker.pid).children() if "spawn_main" in " ".join(p.cmdline())]

    assert wait_status(r, producer.submit("echo", {"message": "first"}), "finished")
    (executor,) = executors()
    executor.kill()
    wait_for(lambda: executor.status() == psutil.STATUS_ZOMBIE, message="the executor to die")  # (not reaped)
    job_id = producer.submit("echo", {"message": "second"})
    wait_status(r, job_id, "finished")
    assert worker.alive()
    assert len(executors()) == 1 and executors()[0].pid != executor.pid


def test_delayed_job_runs_at_its_time(r, producer, worker):
    start = time.time()
    job_id = producer.submit("echo", {"message": "later"}, delay_seconds=1.5)
    assert status(r, job_id) == "scheduled"
    wait_status(r, job_id, "finished")
    started = Job.fetch(job_id, connection=r, serializer=JSONSerializer).started_at
    assert started.timestamp() >= start + 1.5 - 0.05  # never early
    assert started.timestamp() <= start + 1.5 + 10  # and not stuck (a bound only a hang reaches)


def cancel(r: redis.Redis, job_id: str) -> str:
    reply = Scripts.register(r).cancel(args=cancel_args(job_id=job_id, now=time.time(),
                                                        stamp="2026-01-01T00:00:00.000000Z", message="", owner="",
                                                        token=""))
    return reply[0].decode()


def test_cancel_running_job(r, producer, worker):
    job_id = producer.submit("sleep", {"seconds": 30})
    wait_status(r, job_id, "started")
    assert cancel(r, job_id) == "stopping"
    wait_status(r, job_id, "canceled", timeout=20)  # (well before the job's own end)
    assert worker.alive()
    after = producer.submit("echo", {"message": "next"})
    wait_status(r, after, "finished")


def grown_batch(producer: Producer, last: list[JobSpec]) -> list[str]:
    """Submit fast jobs, then `last`: the worker's claims grow (1, 2, 4, 8, 16) on the fast jobs, so
    `last` is claimed in one batch with the fast jobs before it. Returns the ids of `last`."""
    specs = [JobSpec("echo", {"message": str(i)}) for i in range(40)]
    return producer.submit_many(specs + last)[-len(last):]


def same_batch(r: redis.Redis, *job_ids: str) -> bool:
    """Claimed by one claim: they have its execution id ('done:<id>' once ended)."""
    claims = [r.hget(f"rq:job:{j}", "jobengine_claim").removeprefix(b"done:") for j in job_ids]
    return len(set(claims)) == 1


def test_a_quick_jobs_result_does_not_wait_for_a_slow_job_after_it(r, producer, start_worker):
    quick, slow = grown_batch(producer, [JobSpec("echo", {"message": "q"}), JobSpec("sleep", {"seconds": 30})])
    start_worker()
    wait_status(r, slow, "started")
    assert same_batch(r, quick, slow), "precondition: both claimed in one batch"
    wait_status(r, quick, "finished", timeout=20)
    assert status(r, slow) == "started"


def test_cancels_of_two_jobs_of_one_batch_both_take_effect(r, producer, start_worker):
    """The cancel of a job later in the executor's batch must not hold back the cancel of the job
    running before it (jobs of one batch run in order; the executor has one cancel cell)."""
    first, second = grown_batch(producer, [JobSpec("sleep", {"seconds": 30}), JobSpec("sleep", {"seconds": 30})])
    start_worker()
    wait_status(r, first, "started")
    assert same_batch(r, first, second), "precondition: both sleep jobs claimed in one batch"
    assert cancel(r, second) == "stopping"  # the later one first
    assert cancel(r, first) == "stopping"
    wait_status(r, first, "canceled", timeout=20)  # (well before the job's own end)
    wait_status(r, second, "canceled", timeout=20)  # (well before the job's own end)


def test_cancel_of_a_job_ignoring_it_kills_its_process(r, producer, start_worker):
    start_worker(JOBENGINE_HARD_KILL_GRACE_SECONDS="1")
    job_id = producer.submit("hang", {"seconds": 60}, timeout=60)
    wait_status(r, job_id, "started")
    cancel(r, job_id)
    wait_status(r, job_id, "canceled", timeout=20)  # (well before the job's own end)


def test_sigterm_lets_the_running_job_finish(r, producer, worker, redis_url):
    job_id = producer.submit("counted", {"seconds": 1.5, "counter_url": redis_url})
    wait_for(lambda: r.get(f"test:runs:{job_id}"), message="the job to be running")  # not only claimed
    waiting = producer.submit("echo", {"message": "stays queued"})
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert status(r, job_id) == "finished"
    assert status(r, waiting) == "queued"  # not taken during the drain
    assert r.lrange("rq:queue:default", 0, -1) == [waiting.encode()]
    assert not r.exists(f"rq:worker:{worker.name}")


def test_sigterm_past_the_drain_deadline_returns_the_job_to_its_queue(r, producer, start_worker, redis_url):
    first = start_worker(JOBENGINE_DRAIN_SECONDS="0.5")
    job_id = producer.submit("counted", {"seconds": 4, "counter_url": redis_url})
    wait_for(lambda: r.get(f"test:runs:{job_id}"), message="the job to be running")  # not only claimed
    first.signal(signal.SIGTERM)
    assert first.wait(10) == 0
    assert status(r, job_id) == "queued"
    assert job_id not in FailedJobRegistry("default", connection=r).get_job_ids()
    assert r.lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    start_worker()
    wait_status(r, job_id, "finished", timeout=15)
    assert int(r.get(f"test:runs:{job_id}")) == 2


def test_sigkill_mid_job_is_recovered_by_another_worker(r, producer, start_worker, redis_url):
    doomed = start_worker(JOBENGINE_QUEUES="default")
    job_id = producer.submit("counted", {"seconds": 2, "counter_url": redis_url})
    # running, not only claimed ("started" is set at the claim, a moment before the executor runs it)
    wait_for(lambda: r.get(f"test:runs:{job_id}"), message="the job to be running")
    import os

    os.killpg(doomed.pid, signal.SIGKILL)  # the whole pod: supervisor and executor
    killed_at = time.time()
    start_worker()
    wait_status(r, job_id, "finished", timeout=20)
    assert int(r.get(f"test:runs:{job_id}")) == 2
    assert int(r.hget(f"rq:job:{job_id}", "jobengine_recoveries")) == 1
    ended = Job.fetch(job_id, connection=r, serializer=JSONSerializer).ended_at.timestamp()
    # abandon window (3 s) + a heartbeat + the job's 2 s + a new worker's start, with room for a loaded CI machine
    assert ended - killed_at < 15


def test_sigkill_mid_batch_loses_no_job(r, producer, start_worker, redis_url):
    """The fast path holds a claimed batch and unflushed outcomes in memory: a SIGKILL in the middle of
    a batch must still end with every job finished once its result is stored (at least once)."""
    ids = producer.submit_many([JobSpec("sleep", {"seconds": 0.01}) for _ in range(400)])
    doomed = start_worker(JOBENGINE_QUEUES="default")
    wait_for(lambda: r.zcard("rq:finished:default") >= 40, message="some jobs to finish")
    import os

    os.killpg(doomed.pid, signal.SIGKILL)  # claimed jobs, a running one and outcomes not yet written
    assert r.zcard("rq:finished:default") < len(ids), "the kill came too late to test anything"
    start_worker()
    wait_for(lambda: r.zcard("rq:finished:default") == len(ids), timeout=60, message="every job to finish")
    for job_id in ids:
        assert status(r, job_id) == "finished"
        assert latest_result(r, job_id)["return_value"]["slept"] >= 0.01
    assert r.llen("rq:queue:default") == 0 and r.zcard("rq:wip:default") == 0


def test_redis_restart_under_an_idle_and_a_busy_worker(r, producer, worker, redis_server, tmp_path):
    gate, done = tmp_path / "gate", tmp_path / "done"
    job_id = producer.submit("file_gated", {"gate_path": str(gate), "done_path": str(done)})
    wait_status(r, job_id, "started")
    redis_server.stop()  # graceful: AOF flushed
    gate.touch()  # the job finishes while Redis is down; its outcome waits in the worker
    wait_for(done.exists, message="the job to end while Redis is down")
    redis_server.start()
    r2 = redis.Redis.from_url(redis_server.url)
    wait_status(r2, job_id, "finished", timeout=20)
    assert worker.alive()
    after = Producer(r2, catalog=producer.catalog).submit("echo", {"message": "after restart"})
    wait_status(r2, after, "finished", timeout=15)
    assert done.read_text().splitlines() == [job_id]  # it ran once: its outcome waited for Redis
    r2.close()


def test_hard_redis_restart_loses_no_accepted_job(r, producer, worker, redis_server, redis_url):
    ids = producer.submit_many([JobSpec("counted", {"seconds": 0.03, "counter_url": redis_url})
                                for _ in range(100)])
    # everysec may postpone the AOF write while an fsync runs: wait until every accepted write is in the file
    # (the page cache survives a process kill)
    wait_for(lambda: (p := r.info("persistence"))["aof_buffer_length"] == 0 and not p["aof_pending_bio_fsync"],
             message="the AOF to be written")
    redis_server.stop(hard=True)
    redis_server.start()
    r2 = redis.Redis.from_url(redis_url)
    for job_id in ids:
        wait_status(r2, job_id, "finished", timeout=30)
    assert worker.alive()
    r2.close()


def test_cancels_of_jobs_the_worker_no_longer_holds_are_forgotten(redis_url, monkeypatch):
    """A cancel that reaches the worker after its job ended is dropped at the next heartbeat, so a
    long-lived worker does not accumulate them."""
    from jobengine.settings import Settings
    from jobengine_worker.worker import Worker

    monkeypatch.setenv("JOBENGINE_REDIS_URL", redis_url)
    monkeypatch.setenv("JOBENGINE_METRICS_PORT", "0")
    settings = Settings()
    worker = Worker(settings, discover(["tests.support.jobs"]))
    worker.request_cancel("ended-before-the-cancel")
    worker.heartbeat()
    assert worker.state.cancel_requests == set()
