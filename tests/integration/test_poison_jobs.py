"""Jobs that end as job code must not (KeyboardInterrupt, sys.exit, os._exit, a result JSON cannot hold), and
job hashes the worker cannot decode, through the real worker process on a real Redis: each such job ends
failed with its cause once its retries (and, for a crash, JOBENGINE_MAX_CRASHES) are spent, and the other jobs
run on meanwhile, once each."""

from __future__ import annotations

import psutil
import pytest
import redis
from rq import Queue

from jobengine.catalog import RetryPolicy
from jobengine.producer import JobSpec, Producer
from tests.conftest import Proc, wait_for
from tests.integration.test_worker import latest_result, producer, status, wait_status  # noqa: F401


def executor_pids(worker: Proc) -> list[int]:
    """The worker's executor processes (its other child is multiprocessing's resource tracker)."""
    return [p.pid for p in psutil.Process(worker.pid).children() if "spawn_main" in " ".join(p.cmdline())]


def others(producer: Producer, redis_url: str, n: int = 30) -> list[str]:  # noqa: F811
    return producer.submit_many([JobSpec("counted", {"seconds": 0, "counter_url": redis_url}) for _ in range(n)])


def assert_ran_once_each(r: redis.Redis, ids: list[str]) -> None:
    for job_id in ids:
        wait_status(r, job_id, "finished")
    assert [int(r.get(f"test:runs:{j}") or 0) for j in ids] == [1] * len(ids)


@pytest.mark.parametrize(("how", "cause"), [("interrupt", "KeyboardInterrupt"), ("exit", "SystemExit: 3"),
                                            ("bigint", "ResultNotEncodable")])
def test_a_poison_job_fails_by_its_retry_policy_without_killing_the_executor(
        r, producer, worker, redis_url, how, cause):  # noqa: F811
    assert wait_status(r, producer.submit("echo", {"message": "warm"}), "finished")
    (pid,) = executor_pids(worker)
    ids = others(producer, redis_url)
    poison = producer.submit("poison", {"how": how})  # one retry: two runs, each an ordinary failure
    ids += others(producer, redis_url)
    wait_status(r, poison, "failed")
    assert cause in latest_result(r, poison)["exc_string"]
    assert int(r.hget(f"rq:job:{poison}", "jobengine_attempts")) == 2
    assert [e[1][b"type"] for e in r.xrange(f"rq:results:{poison}")] == [b"2", b"2"]
    assert_ran_once_each(r, ids)
    assert executor_pids(worker) == [pid], "the executor was replaced: the job killed it"
    assert worker.alive()


def test_a_job_that_kills_its_executor_fails_after_its_retries_and_the_crash_limit(
        r, producer, start_worker, redis_url):  # noqa: F811
    worker = start_worker(JOBENGINE_MAX_CRASHES="1")
    ids = others(producer, redis_url)
    poison = producer.submit("poison", {"how": "os_exit"})  # a retry, then one requeue (the crash limit)
    ids += others(producer, redis_url)
    wait_status(r, poison, "failed", timeout=30)
    text = latest_result(r, poison)["exc_string"]
    assert "WorkerCrash" in text and "exit code 7" in text and "JOBENGINE_MAX_CRASHES=1" in text, text
    assert int(r.hget(f"rq:job:{poison}", "jobengine_attempts")) == 3
    assert int(r.hget(f"rq:job:{poison}", "jobengine_crashes")) == 2
    assert poison.encode() in r.zrange("rq:failed:default", 0, -1)
    assert_ran_once_each(r, ids)
    after = producer.submit("echo", {"message": "after"})
    wait_status(r, after, "finished")
    assert worker.alive()
    assert r.zcard("rq:wip:default") == 0 and r.llen("rq:queue:default") == 0


def test_a_crash_without_retries_is_requeued_up_to_the_limit(r, producer, start_worker):  # noqa: F811
    start_worker(JOBENGINE_MAX_CRASHES="2")
    poison = producer.submit("poison", {"how": "os_exit"}, retry=RetryPolicy(max_retries=0))
    wait_status(r, poison, "failed", timeout=30)
    assert int(r.hget(f"rq:job:{poison}", "jobengine_attempts")) == 3  # the first run, then two requeues
    assert [e[1][b"type"] for e in r.xrange(f"rq:results:{poison}")] == [b"2"]  # one failure, at the end


def write_raw(r: redis.Redis, job_id: str, fields: dict[str, bytes | str]) -> None:
    r.hset(f"rq:job:{job_id}", mapping=fields)
    r.rpush("rq:queue:default", job_id)


def test_jobs_the_worker_cannot_decode_fail_alone(r, producer, worker, redis_url):  # noqa: F811
    pickled = Queue("default", connection=r).enqueue("tests.support.jobs.counted").id  # stock RQ: pickle
    write_raw(r, "garbage", {"status": "queued", "data": b"\xff\x00not zlib, not JSON", "origin": "default"})
    write_raw(r, "fieldless", {"status": "queued"})
    write_raw(r, "badnumbers", {"status": "queued", "data": b'["tests.support.jobs.counted", null, [{}], {}]',
                                "timeout": "soon", "failure_ttl": "never"})
    ids = others(producer, redis_url)
    for job_id in (pickled, "garbage", "fieldless", "badnumbers"):
        wait_status(r, job_id, "failed")
        assert "UndecodableJob" in latest_result(r, job_id)["exc_string"], job_id
    assert r.ttl("rq:job:garbage") > 0  # kept for a failure TTL, as any failed job
    assert_ran_once_each(r, ids)
    assert worker.alive()
    assert r.zcard("rq:wip:default") == 0


def test_an_error_reply_of_a_maintenance_script_does_not_end_the_worker(r, producer, worker):  # noqa: F811
    r.set("rq:scheduled:broken", "not a sorted set")  # the schedule script's ZRANGEBYSCORE: WRONGTYPE
    r.sadd("rq:queues", "rq:queue:broken")
    wait_for(lambda: "answered a script with an error" in worker.log(), message="the script's error")
    job_id = producer.submit("echo", {"message": "still here"})
    wait_status(r, job_id, "finished")
    assert worker.alive()
    r.delete("rq:scheduled:broken")  # repaired: delayed jobs move again (after the script's backoff)
    delayed = producer.submit("echo", {"message": "later"}, delay_seconds=0.2)
    wait_status(r, delayed, "finished", timeout=15)


def test_an_error_reply_to_the_heartbeat_does_not_end_the_worker(r, producer, worker):  # noqa: F811
    """The worker's own key turned into a string (WRONGTYPE for the heartbeat's HSET): logged and counted,
    the heartbeat tried again at its interval, and jobs keep running."""
    worker_key = wait_for(lambda: next(iter(r.smembers("rq:workers")), None), message="the worker's key")
    r.delete(worker_key)
    r.set(worker_key, "not a hash")
    wait_for(lambda: "answered a script with an error" in worker.log(), message="the heartbeat's error")
    job_id = producer.submit("echo", {"message": "still here"})
    wait_status(r, job_id, "finished")
    assert worker.alive()
