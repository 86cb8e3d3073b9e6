"""The worker's hardening (issue 14): a cancel that meets a drain, SIGTERM to the whole process group,
script calls repeated after a lost reply, the per-job log line at default settings, RQ's worker fields."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import httpx
import pytest
import redis
from rq.worker import Worker as RQWorker

from jobengine import scripts
from jobengine.catalog import RetryPolicy, discover
from jobengine.jobdata import encode_return_value, utcnow_str
from jobengine.producer import JobSpec
from jobengine.redis_conn import free_port
from jobengine.settings import Settings
from tests.conftest import wait_for
from tests.integration.test_worker import cancel, producer, status, wait_status  # noqa: F401


def test_a_canceled_job_drained_stays_canceled_for_its_failure_ttl(r, producer, start_worker, redis_url):  # noqa: F811
    worker = start_worker(JOBENGINE_DRAIN_SECONDS="0.5", JOBENGINE_HARD_KILL_GRACE_SECONDS="60")
    job_id = producer.submit("hang", {"seconds": 60, "counter_url": redis_url}, timeout=60)  # ignores cancels
    wait_for(lambda: r.get(f"test:runs:{job_id}"), message="the job to be running")
    assert cancel(r, job_id) == "stopping"
    worker.signal(signal.SIGTERM)  # the drain deadline interrupts it: a requeue, turned into canceled
    assert worker.wait(15) == 0
    assert status(r, job_id) == "canceled"
    ttl = producer.catalog["hang"].failure_ttl
    assert ttl - 5 <= r.ttl(f"rq:job:{job_id}") <= ttl
    assert r.zscore("rq:canceled:default", job_id) == pytest.approx(time.time() + ttl, abs=5)
    assert r.llen("rq:queue:default") == 0


def test_sigterm_to_the_process_group_lets_the_running_job_finish(r, producer, worker, redis_url):  # noqa: F811
    """systemd's KillMode, supervisord's stopasgroup and `kill -TERM -PGID` signal the executor too."""
    job_id = producer.submit("counted", {"seconds": 1.5, "counter_url": redis_url})
    wait_for(lambda: r.get(f"test:runs:{job_id}"), message="the job to be running")
    os.killpg(worker.pid, signal.SIGTERM)  # (the worker leads its own process group)
    assert worker.wait(15) == 0
    assert status(r, job_id) == "finished"
    assert int(r.get(f"test:runs:{job_id}")) == 1


# ----- script calls run twice (a call re-sent after its reply timed out) -----

def claim(s: scripts.Scripts, execution: str, limit: int, again: bool = False) -> list[str]:
    rows = scripts.parse_claim(s.claim(args=scripts.claim_args(
        expiry=int(time.time()) + 60, stamp=utcnow_str(), worker="w1", execution=execution, limit=limit,
        queues=["default"], again=again)))
    return sorted(row.id.decode() for row in rows)


def finished(job_ids: list[str], execution: str) -> list[scripts.OutcomeArgs]:
    return [scripts.OutcomeArgs(j, "default", execution, "finished", encode_return_value({"ok": 1}), 3600)
            for j in job_ids]


def test_claim_and_complete_run_twice_claim_and_count_once(r, producer):  # noqa: F811
    s = scripts.Scripts.register(r)
    ids = producer.submit_many([JobSpec("echo", {"message": str(i)}) for i in range(5)])
    first = claim(s, "exec-1", 2)
    assert claim(s, "exec-1", 2, again=True) == first == sorted(ids[:2])  # the same jobs, not a second batch
    assert r.llen("rq:queue:default") == 3 and r.zcard("rq:wip:default") == 2
    assert [int(r.hget(f"rq:job:{j}", "jobengine_attempts")) for j in first] == [1, 1]

    replies = [scripts.parse_complete_claim(s.complete_claim(args=scripts.complete_claim_args(
        now=time.time(), stamp=utcnow_str(), worker="w1", expiry=int(time.time()) + 60, execution="exec-2",
        limit=2, queues=["default"], outcomes=finished(first, "exec-1"), again=again))) for again in (False, True)]
    assert replies[0][0] == replies[1][0] == ["finished", "finished"]  # the real status, both times
    second = sorted(row.id.decode() for row in replies[0][1])
    assert sorted(row.id.decode() for row in replies[1][1]) == second == sorted(ids[2:4])
    assert r.llen("rq:queue:default") == 1 and r.zcard("rq:wip:default") == 2
    for job_id in first:
        assert r.xlen(f"rq:results:{job_id}") == 1
    assert r.zcard("rq:finished:default") == 2

    complete = scripts.complete_args(now=time.time(), stamp=utcnow_str(), worker="w1",
                                     outcomes=finished(second, "exec-2"))
    assert scripts.parse_statuses(s.complete(args=complete)) == ["finished", "finished"]
    assert scripts.parse_statuses(s.complete(args=complete)) == ["finished", "finished"]
    assert r.zcard("rq:finished:default") == 4 and r.zcard("rq:wip:default") == 0
    assert [r.xlen(f"rq:results:{j}") for j in second] == [1, 1]


def test_a_retry_recorded_twice_spends_one_retry(r, producer):  # noqa: F811
    s = scripts.Scripts.register(r)
    job_id = producer.submit("echo", {"message": "x"}, retry=RetryPolicy(max_retries=2, base_delay=0, jitter=0))
    assert claim(s, "exec-1", 1) == [job_id]
    outcome = scripts.OutcomeArgs(job_id, "default", "exec-1", "retry", "", time.time() - 1)
    args = scripts.complete_args(now=time.time(), stamp=utcnow_str(), worker="w1", outcomes=[outcome])
    assert scripts.parse_statuses(s.complete(args=args)) == ["queued"]
    assert scripts.parse_statuses(s.complete(args=args)) == ["queued"]
    assert int(r.hget(f"rq:job:{job_id}", "retries_left")) == 1
    assert r.lrange("rq:queue:default", 0, -1) == [job_id.encode()]


class LoseFirstReply:
    """A script whose first call runs in Redis but whose reply is lost (a socket timeout)."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.lost = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        reply = self.script(*args, **kwargs)
        if not self.lost:
            self.lost = True
            raise redis.TimeoutError("reply lost")
        return reply


def worker_whose_claim_reply_was_lost(producer, redis_url: str, monkeypatch, jobs: int):  # type: ignore[no-untyped-def]  # noqa: F811
    """(ids of `jobs` waiting jobs, an in-process Worker whose first claim of 2 ran in Redis but lost its reply)."""
    from jobengine_worker.worker import Worker

    monkeypatch.setenv("JOBENGINE_REDIS_URL", redis_url)
    monkeypatch.setenv("JOBENGINE_METRICS_PORT", "0")
    ids = producer.submit_many([JobSpec("echo", {"message": str(i)}) for i in range(jobs)])
    worker = Worker(Settings(queues=["default"]), discover(["tests.support.jobs"]))
    worker.scripts = dataclasses.replace(worker.scripts, claim=LoseFirstReply(worker.scripts.claim))
    worker.claim_size = 2
    assert worker.claim() is None  # claimed in Redis, the reply lost
    worker.redis_backoff = 0.0
    return ids, worker


def test_the_worker_retries_a_claim_whose_reply_was_lost_without_claiming_twice(r, producer, redis_url,  # noqa: F811
                                                                                  monkeypatch):
    ids, worker = worker_whose_claim_reply_was_lost(producer, redis_url, monkeypatch, 4)
    batch = worker.claim()  # sent again, saying so
    assert batch is not None and sorted(job.id for job in batch) == sorted(ids[:2])
    assert r.llen("rq:queue:default") == 2 and r.zcard("rq:wip:default") == 2
    assert set(worker.claimed) == set(ids[:2])
    assert [int(r.hget(f"rq:job:{j}", "jobengine_attempts")) for j in ids[:2]] == [1, 1]


def test_a_worker_stopping_gives_back_the_jobs_of_a_claim_whose_reply_was_lost(r, producer, redis_url,  # noqa: F811
                                                                              monkeypatch):
    ids, worker = worker_whose_claim_reply_was_lost(producer, redis_url, monkeypatch, 3)
    worker.shutdown()  # as after a stop signal
    assert sorted(r.lrange("rq:queue:default", 0, -1)) == sorted(j.encode() for j in ids)
    assert r.zcard("rq:wip:default") == 0
    assert all(status(r, j) == "queued" for j in ids)


def closes_its_pipe_then_exits(conn: Any) -> None:
    """An executor whose pipe closes a moment before it exits (as a dying process's does)."""
    conn.close()
    time.sleep(0.5)
    os._exit(7)


def test_a_crash_reports_the_executors_real_exit_code(redis_url, monkeypatch):  # type: ignore[no-untyped-def]
    from jobengine_worker import executor
    from jobengine_worker.claimed import CRASH, Claimed
    from jobengine_worker.supervision import Executor, Sent
    from jobengine_worker.worker import Worker

    monkeypatch.setenv("JOBENGINE_REDIS_URL", redis_url)
    monkeypatch.setenv("JOBENGINE_METRICS_PORT", "0")
    worker = Worker(Settings(queues=["default"]), discover(["tests.support.jobs"]))
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    control = executor.Control(ctx)
    process = ctx.Process(target=closes_its_pipe_then_exits, args=(child,), daemon=True)
    process.start()
    child.close()
    job = Claimed(id="j1", queue="default", execution="e1", attempt=1, type="counted", function="f", payload={},
                  timeout=60, retries_left=1, retry_intervals=[], number_of_retries=0, enqueued_at=None,
                  created_at=None, result_ttl=60, failure_ttl=60)
    ex = Executor(process=process, conn=parent, control=control, pid=process.pid, seq=1,
                  inflight={1: Sent(job, None, None)})
    control.allow(1)
    assert control.begin(1)  # job 1 runs
    with pytest.raises(EOFError):
        parent.recv_bytes()  # its pipe is closed; the process has not exited yet
    try:
        ((_, outcome),) = worker.executor_lost(ex, CRASH, "WorkerCrash: the job's process died ({code})")
    finally:
        assert worker.executor is not None
        worker.executor.stop()
    assert outcome.outcome == "retry" and "(exit code 7)" in outcome.error, outcome.error


# ----- defaults -----

def test_a_finished_job_logs_nothing_at_the_default_level_and_a_failure_does(r, producer, start_worker):  # noqa: F811
    worker = start_worker(JOBENGINE_LOG_LEVEL=Settings.model_fields["log_level"].default)
    ok = producer.submit("echo", {"message": "fine"})
    bad = producer.submit("echo", {"fail": True}, retry=RetryPolicy(max_retries=0))
    wait_status(r, ok, "finished")
    wait_status(r, bad, "failed")
    wait_for(lambda: bad in worker.log(), message="the failure's log line")
    assert ok not in worker.log()


def test_the_worker_key_holds_what_rq_reads(r, worker) -> None:  # type: ignore[no-untyped-def]
    fields = r.hgetall(f"rq:worker:{worker.name}")
    assert fields[b"python_version"].decode() == sys.version  # the worker runs this interpreter
    assert b"version" not in fields  # RQ fills in its own
    (found,) = [w for w in RQWorker.all(connection=r) if w.name == worker.name]
    assert found.pid == worker.pid and found.queues


# ----- a reply delayed past the socket timeout: the script call is sent again -----

class DelayingProxy:
    """A TCP proxy in front of Redis that holds back the reply to the next call of each script it is armed with
    (by sha), longer than the client's socket timeout: the call has run in Redis, its client times out,
    closes the connection and sends the call again on a new one."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.armed: set[bytes] = set()  # the shas of the scripts whose next reply is held back
        self.delayed: list[bytes] = []  # the shas whose reply was held back
        self.closing = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            hold = threading.Event()  # set: the next reply on this connection is held back
            threading.Thread(target=self.requests, args=(client, upstream, hold), daemon=True).start()
            threading.Thread(target=self.replies, args=(upstream, client, hold), daemon=True).start()

    def requests(self, src: socket.socket, dst: socket.socket, hold: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                for sha in [sha for sha in self.armed if sha in data]:
                    self.armed.discard(sha)
                    self.delayed.append(sha)
                    hold.set()
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def replies(self, src: socket.socket, dst: socket.socket, hold: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if hold.is_set():
                    hold.clear()
                    time.sleep(2.0)  # past the worker's socket timeout (0.5 s): it has given up on this reply
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closing = True
        self.server.close()


def finished_total(metrics_url: str) -> float:
    text = httpx.get(metrics_url).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("jobengine_jobs_finished_total{") and 'outcome="succeeded"' in line)


def test_a_script_call_sent_again_after_a_timed_out_reply_claims_and_counts_once(r, producer, start_worker,  # noqa: F811
                                                                                redis_server):
    proxy = DelayingProxy(redis_server.port)
    port = free_port()
    sha = {name: r.script_load(scripts.source(name)).encode() for name in ("claim", "complete_claim")}
    try:
        ids = producer.submit_many([JobSpec("echo", {"message": str(i)}) for i in range(200)])
        proxy.armed = {sha["claim"], sha["complete_claim"]}  # the replies of its first claim and complete_claim
        start_worker(JOBENGINE_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0", JOBENGINE_REDIS_SOCKET_TIMEOUT="0.5",
                     JOBENGINE_METRICS_PORT=str(port))
        for job_id in ids:
            wait_status(r, job_id, "finished", timeout=30)
        assert proxy.delayed == [sha["claim"], sha["complete_claim"]]  # (each call was sent again)
        assert [int(r.hget(f"rq:job:{j}", "jobengine_attempts")) for j in ids] == [1] * len(ids)  # claimed once
        assert all(r.xlen(f"rq:results:{j}") == 1 for j in ids)
        assert r.zcard("rq:wip:default") == 0 and r.llen("rq:queue:default") == 0
        wait_for(lambda: finished_total(f"http://127.0.0.1:{port}/metrics") == len(ids),  # counted once each
                 message=f"the worker to count {len(ids)} finished jobs")
    finally:
        proxy.close()
