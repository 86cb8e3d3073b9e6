"""The worker supervisor: claims jobs in batches, hands each batch to the executor process in one
message, records a batch's outcomes in the round trip that claims the next batch (complete_claim.lua),
renews its claims, moves due jobs, recovers the jobs of dead workers, and drains on SIGTERM.

Everything it writes is RQ's data model (job hash, StartedJobRegistry, results stream, finished
and failed registries, worker keys), so `rq info` and RQ's registries see the same state.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

import orjson
import redis

from jobengine import keys, metrics, tracing
from jobengine.catalog import Catalog
from jobengine.jobdata import decode_data, encode_exc_string, encode_return_value, parse_ts, utcnow_str
from jobengine.redis_conn import TRANSIENT_ERRORS, sync_client
from jobengine.scripts import Scripts
from jobengine.settings import Settings

from . import executor

log = logging.getLogger("jobengine.worker")

FAST_JOB_SECONDS = 0.02  # batches grow only while jobs are this quick, so long jobs are not hoarded


@dataclass(frozen=True)
class Series:
    """The labelled metric children of one (queue, job type): looked up once, not per job."""

    started: Any
    wait: Any
    run: Any
    e2e: Any
    busy: Any
    finished: dict[str, Any]


@lru_cache(maxsize=1024)
def series(queue: str, job_type: str) -> Series:
    return Series(
        started=metrics.JOBS_STARTED.labels(queue, job_type),
        wait=metrics.JOB_WAIT_SECONDS.labels(queue, job_type),
        run=metrics.JOB_RUN_SECONDS.labels(queue, job_type),
        e2e=metrics.JOB_E2E_SECONDS.labels(queue, job_type),
        busy=metrics.WORKER_BUSY.labels(queue),
        finished={outcome: metrics.JOBS_FINISHED.labels(queue, job_type, outcome) for outcome in metrics.OUTCOMES},
    )


@dataclass
class Claimed:
    id: str
    queue: str
    execution: str
    attempt: int
    type: str
    function: str
    payload: Any
    timeout: int
    retries_left: int
    retry_intervals: list[float]
    number_of_retries: int
    enqueued_at: float | None
    created_at: float | None
    result_ttl: int
    failure_ttl: int
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def member(self) -> str:
        return f"{self.id}:{self.execution}"

    @classmethod
    def from_reply(cls, row: list[Any]) -> Claimed:
        (job_id, queue, execution, attempt, data, timeout, meta, retries_left, intervals, retries, enqueued_at,
         created_at, result_ttl, failure_ttl) = row
        function, args, kwargs = decode_data(data)
        meta_obj = orjson.loads(meta) if meta else {}
        enq, created = parse_ts(enqueued_at), parse_ts(created_at)
        return cls(
            id=job_id.decode(), queue=queue.decode(), execution=execution.decode(), attempt=int(attempt),
            type=str(meta_obj.get("type", "")), function=function, payload=args[0] if args else kwargs,
            timeout=int(timeout or 180), retries_left=int(retries_left or 0),
            retry_intervals=orjson.loads(intervals) if intervals else [],
            number_of_retries=int(retries or 0),
            enqueued_at=enq.timestamp() if enq else None, created_at=created.timestamp() if created else None,
            result_ttl=int(result_ttl or 86_400), failure_ttl=int(failure_ttl or 604_800),
            traceparent=meta_obj.get("traceparent"),
            tracestate=meta_obj.get("tracestate"),
        )


@dataclass
class Outcome:
    job: Claimed
    outcome: str  # argument of complete.lua: finished | failed | retry | canceled | requeue | release
    value: str = ""  # base64 return value or exception text
    arg: float = 0  # TTL of an ended job and its result, or run_at for a retry
    metric: str = ""  # jobengine_jobs_finished_total outcome label, "" for none
    run_seconds: float | None = None
    error: str = ""  # exception text of a failed run (for its span)
    trace: dict[str, str] = field(default_factory=dict)  # trace_id, span_id of the run, for the log line


def expires(seconds: float) -> int:
    """`seconds` from now, rounded up to a whole epoch second (a claim's expiry in the StartedJobRegistry):
    Redis keeps a whole number as an integer, so a small registry compares its scores without parsing
    them, and Lua passes it on as it came, where a number it computed would be formatted by sprintf."""
    return math.ceil(time.time() + seconds)


def outcome_args(batch: list[Outcome]) -> list[Any]:
    """complete.lua's 6 arguments a job."""
    args: list[Any] = []
    for o in batch:
        args += (o.job.id, o.job.queue, o.job.execution, o.outcome, o.value, o.arg)
    return args


@dataclass
class Sent:
    """A job handed to the executor, not yet answered."""

    job: Claimed
    span: Any
    traceparent: str | None


@dataclass
class Executor:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    control: executor.Control
    pid: int = 0
    seq: int = 0  # number of the last job sent (see executor.py)
    inflight: dict[int, Sent] = field(default_factory=dict)  # seq -> job sent and not answered, in order
    cancel_seq: int = 0  # the job a cancel was signalled for, and when
    cancel_sent: float = 0.0
    journal_read: int = 0  # the running job during which its batch's held outcomes were last read

    def may_hold_outcomes(self) -> bool:
        """A job runs whose batch's held outcomes (see held_outcomes) have not been read yet."""
        running = self.control.running()
        return running is not None and running[0] != self.journal_read

    def held_outcomes(self) -> list[list[Any]]:
        """The outcomes the executor holds back (journaled, not yet reported) while it runs a later job
        of the batch, so a fast job's result does not wait for a slow job after it. Read once a running
        job: the executor writes its journal only between jobs, so the same job before and after the
        read means an intact read."""
        running = self.control.running()
        if running is None or running[0] == self.journal_read:
            return []
        held = self.control.journaled()
        if self.control.running() != running:
            return []  # it moved on meanwhile: the next report has them
        self.journal_read = running[0]
        return held

    def current(self) -> tuple[int, Claimed, float] | None:
        """(seq, job, monotonic start) of the job the executor runs now."""
        running = self.control.running()
        if running is None or running[0] not in self.inflight:
            return None
        return running[0], self.inflight[running[0]].job, running[1]


@dataclass
class State:
    stopping: bool = False  # SIGTERM seen: take no more jobs, drain
    force: bool = False  # deadline passed or second signal: stop running jobs now
    drain_deadline: float = 0.0
    cancel_requests: set[str] = field(default_factory=set)
    released: bool = False  # the claimed jobs not yet started were given back at the stop signal


class Worker:
    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.name = settings.worker_name or f"{socket.gethostname()}.{os.getpid()}"
        self.queues = list(settings.queues)
        self.redis = sync_client(settings)
        self.blocking = sync_client(settings, blocking_timeout=settings.redis_socket_timeout + 2)
        self.scripts = Scripts.register(self.redis)
        self.state = State()
        self.session = uuid.uuid4().hex[:12]
        self.exec_seq = 0
        self.claim_size = 1
        self.claimed: dict[str, Claimed] = {}  # held by this worker: renewed on heartbeat
        self.pending: list[Outcome] = []  # outcomes not yet written to Redis
        self.executor: Executor | None = None
        self.next_heartbeat = 0.0
        self.next_schedule = 0.0
        self.next_recover = 0.0
        self.redis_backoff = 0.0
        self._last_delay = 0.05
        self._lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")
        metrics.init_worker_series(self.queues, [(name, catalog[name].queue) for name in catalog.names()])

    # ----- lifecycle -----
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.state.stopping:
            log.warning("second stop signal: stopping running jobs now", extra={"signal": signum})
            self.state.force = True
            return
        self.state.stopping = True
        metrics.WORKER_IDLE.set(0)
        self.state.drain_deadline = time.monotonic() + self.settings.drain_seconds
        log.info("stop signal: draining", extra={"signal": signum, "drain_seconds": self.settings.drain_seconds})

    def run(self) -> None:
        self.install_signal_handlers()
        self._retrying(self.register)
        self.executor = self.spawn_executor()
        threading.Thread(target=self.listen_for_commands, name="commands", daemon=True).start()
        metrics.WORKER_IDLE.set(1)
        log.info("worker started", extra={"worker": self.name, "queues": self.queues})
        try:
            while not self.state.stopping:
                self.maintenance()
                batch = self.claim()
                if batch:
                    self.execute(batch)
                elif batch is not None and not self.state.stopping:
                    self.wait_for_work()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        metrics.WORKER_IDLE.set(0)
        # Give back whatever was claimed and not run, then record every outcome we hold.
        for job in list(self.claimed.values()):
            if not any(o.job.id == job.id for o in self.pending):
                self.pending.append(Outcome(job, "release"))
        self.flush(final=True)
        if self.executor is not None:
            self.executor.conn.close()
            self.executor.process.terminate()
            self.executor.process.join(5)
            if self.executor.process.is_alive():
                self.executor.process.kill()
        try:
            self.unregister()
        except TRANSIENT_ERRORS:
            log.warning("could not unregister the worker: Redis unreachable (its key expires by itself)")
        log.info("worker stopped", extra={"worker": self.name})

    # ----- registration and heartbeat -----
    def worker_fields(self) -> dict[str, Any]:
        now = utcnow_str()
        return {
            "birth": now, "last_heartbeat": now, "queues": ",".join(self.queues), "pid": os.getpid(),
            "hostname": socket.gethostname(), "state": "idle", "version": "jobengine", "python_version": "3",
            "ip_address": "", "successful_job_count": 0, "failed_job_count": 0, "total_working_time": 0,
        }

    def register(self) -> None:
        key = keys.worker(self.name)
        with self.redis.pipeline() as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=self.worker_fields())
            pipe.expire(key, int(self.settings.abandoned_after_seconds) + 5)
            pipe.sadd(keys.WORKERS_SET, key)
            for q in self.queues:
                pipe.sadd(keys.workers_of_queue(q), key)
                pipe.sadd(keys.QUEUES_SET, keys.queue(q))
            pipe.execute()

    def unregister(self) -> None:
        key = keys.worker(self.name)
        with self.redis.pipeline() as pipe:
            pipe.delete(key)
            pipe.srem(keys.WORKERS_SET, key)
            for q in self.queues:
                pipe.srem(keys.workers_of_queue(q), key)
            pipe.execute()

    def heartbeat(self) -> None:
        """Renew the worker key and the claims on every job held, so nobody recovers them."""
        expiry = expires(self.settings.abandoned_after_seconds)
        key = keys.worker(self.name)
        with self._lock:  # cancels of jobs no longer held (ended before the cancel came): nothing to stop
            self.state.cancel_requests.intersection_update(self.claimed)
        running = self.executor.current() if self.executor else None
        current = running[1] if running else None
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"last_heartbeat": utcnow_str(), "state": "busy" if current else "idle",
                                    "current_job": current.id if current else ""})
            pipe.expire(key, int(self.settings.abandoned_after_seconds) + 5)
            pipe.sadd(keys.WORKERS_SET, key)
            for job in self.claimed.values():
                pipe.zadd(keys.started_registry(job.queue), {job.member: expiry}, xx=True)
            if current is not None:  # a cancel whose pub/sub message we missed (e.g. during a reconnect)
                pipe.hget(keys.job(current.id), "jobengine_cancel")
            replies = pipe.execute()
        if current is not None and replies[-1]:
            self.request_cancel(current.id)

    def maintenance(self) -> None:
        """Heartbeat, due scheduled jobs and recovery of dead workers' jobs, each when due."""
        now = time.monotonic()
        if now < self.redis_backoff:
            return
        try:
            if now >= self.next_heartbeat:
                self.heartbeat()
                self.next_heartbeat = now + self.settings.heartbeat_seconds
            if now >= self.next_schedule:
                moved, earliest = self.scripts.schedule(args=[time.time(), utcnow_str(), 1000])
                wait = 1.0
                if float(earliest) > 0:
                    wait = min(wait, max(0.005, float(earliest) - time.time()))
                self.next_schedule = now + wait
            if now >= self.next_recover:
                self.recover()
                self.next_recover = now + self.settings.heartbeat_seconds
            self.redis_backoff = 0.0
        except TRANSIENT_ERRORS as exc:
            self.redis_error(exc)

    def recover(self) -> None:
        failed_msg = encode_exc_string("AbandonedJobError: the worker running it died too many times")
        canceled_msg = encode_exc_string("canceled; its worker was lost")
        reply = self.scripts.recover(args=[time.time(), utcnow_str(), self.settings.max_recoveries, 500,
                                           failed_msg, canceled_msg])
        for i in range(0, len(reply), 3):
            job_id, queue, status = (v.decode() for v in reply[i : i + 3])
            metrics.JOBS_RECOVERED.labels(queue, status).inc()
            log.warning("recovered a job of a dead worker", extra={"job_id": job_id, "queue": queue,
                                                                   "status": status})

    def redis_error(self, exc: BaseException) -> None:
        metrics.WORKER_REDIS_ERRORS.inc()
        delay = min(5.0, max(0.1, self._last_delay * 2))
        self._last_delay = delay
        self.redis_backoff = time.monotonic() + delay
        log.warning("Redis unavailable, retrying", extra={"error": repr(exc), "retry_in": delay})

    def _retrying(self, fn: Any) -> Any:
        """Call fn until Redis answers (start-up), backing off; a stop signal ends the wait."""
        while True:
            try:
                result = fn()
                self._last_delay = 0.05
                return result
            except TRANSIENT_ERRORS as exc:
                if self.state.stopping:
                    raise SystemExit(0) from exc
                self.redis_error(exc)
                time.sleep(max(0.0, self.redis_backoff - time.monotonic()))

    # ----- claiming -----
    def claim(self) -> list[Claimed] | None:
        """Record the outcomes held and claim up to claim_size jobs, in one round trip; [] when none wait,
        None on a Redis error (the outcomes are kept and written at the next try)."""
        if time.monotonic() < self.redis_backoff:
            time.sleep(max(0.0, min(0.5, self.redis_backoff - time.monotonic())))
            return None
        self.exec_seq += 1
        execution = f"{self.session}{self.exec_seq:x}"  # one a claim (see _claim.lua)
        expiry = expires(self.settings.abandoned_after_seconds)
        done = list(self.pending)
        try:
            if done:
                statuses, rows = self.scripts.complete_claim(args=[
                    time.time(), utcnow_str(), self.name, expiry, execution, self.claim_size, len(self.queues),
                    *self.queues, *outcome_args(done)])
            else:
                rows = self.scripts.claim(args=[expiry, utcnow_str(), self.name, execution, self.claim_size,
                                                *self.queues])
            self._last_delay = 0.05
        except TRANSIENT_ERRORS as exc:
            self.redis_error(exc)
            return None
        if done:  # before the new batch is held: a requeued job may be claimed again at once
            del self.pending[: len(done)]
            self.recorded(done, statuses)
        batch = [Claimed.from_reply(row) for row in rows]
        for job in batch:
            self.claimed[job.id] = job
        metrics.WORKER_JOBS_IN_PROGRESS.set(len(self.claimed))
        return batch

    def wait_for_work(self) -> None:
        """Block on the queues' wake-up lists, at most until the next maintenance is due."""
        timeout = max(0.01, min(self.next_schedule, self.next_heartbeat, self.next_recover) - time.monotonic())
        timeout = min(timeout, 1.0)
        try:
            if self.blocking.blpop([keys.notify(q) for q in self.queues], timeout=timeout):
                self.next_schedule = 0.0  # a delayed job may be due sooner than planned
        except TRANSIENT_ERRORS as exc:
            self.redis_error(exc)
            time.sleep(min(0.5, max(0.0, self.redis_backoff - time.monotonic())))

    # ----- running -----
    def spawn_executor(self) -> Executor:
        parent, child = self._ctx.Pipe()
        control = executor.Control(self._ctx)
        process = self._ctx.Process(target=executor.main, args=(child, control), name="jobengine-executor",
                                    daemon=True)
        process.start()
        child.close()
        ready = orjson.loads(parent.recv_bytes())  # ["ready", pid]: imports done, catalog loaded
        return Executor(process=process, conn=parent, control=control, pid=int(ready[1]))

    def request_cancel(self, job_id: str) -> None:
        """Called from the command thread or the heartbeat: stop the job if it is running (or sent to the
        executor: it is then canceled as it starts); a job not sent yet is canceled before it is sent."""
        with self._lock:
            self.state.cancel_requests.add(job_id)
            if self.executor is not None:
                self.signal_cancel(self.executor)

    def signal_cancel(self, ex: Executor) -> None:
        """Point the executor's one cancel cell at the first job sent with a cancel asked for (a batch runs
        in order, so that job runs before the others), and signal it. Called under the lock, on each
        request and as each answer arrives, so the next one is signalled once the earlier one is done."""
        seq = min((n for n, sent in ex.inflight.items() if sent.job.id in self.state.cancel_requests), default=0)
        if not seq or seq == ex.cancel_seq:
            return  # nothing to cancel, or signalled already
        ex.cancel_seq, ex.cancel_sent = seq, time.monotonic()
        ex.control.cancel(seq)
        try:
            os.kill(ex.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass

    def execute(self, batch: list[Claimed]) -> None:
        todo: list[Claimed] = []
        for job in batch:
            if job.id in self.state.cancel_requests:
                self.state.cancel_requests.discard(job.id)
                self.pending.append(Outcome(job, "canceled", encode_exc_string("canceled before it started"),
                                            job.failure_ttl, "canceled"))
            else:
                todo.append(job)
        # A traced run span should time the job alone, not the batch's earlier jobs: one job a message then.
        step = 1 if tracing.enabled() else max(1, len(todo))
        slowest = 0.0
        for first in range(0, len(todo), step):
            if self.state.stopping:  # (some may have been given back already, while the last job ran)
                self.pending.extend(Outcome(j, "release") for j in todo[first:] if j.id in self.claimed)
                break
            slowest = max(slowest, self.run_batch(todo[first : first + step]))
        # (the outcomes held are written with the next claim, in one round trip)
        self.claim_size = min(self.settings.batch_size, self.claim_size * 2) if slowest < FAST_JOB_SECONDS else 1

    def run_batch(self, jobs: list[Claimed]) -> float:
        """Hand the jobs to the executor in one message and collect their outcomes; returns the slowest run."""
        assert self.executor is not None
        ex = self.executor
        now_wall = time.time()
        messages: list[list[Any]] = []
        sent: dict[int, Sent] = {}
        busy = {series(job.queue, job.type).busy for job in jobs}  # one gauge a queue
        for gauge in busy:
            gauge.set(1)
        for job in jobs:
            s = series(job.queue, job.type)
            s.started.inc()
            if job.enqueued_at:
                s.wait.observe(max(0.0, now_wall - job.enqueued_at))
            span = tracing.start_run(job_id=job.id, job_type=job.type, queue=job.queue, attempt=job.attempt,
                                     traceparent=job.traceparent, tracestate=job.tracestate,
                                     enqueued_at=job.enqueued_at, worker=self.name)
            # the executor continues the run span (or, tracing off here, the submit's context: log lines keep
            # its ids)
            traceparent = tracing.traceparent_of(span) if span is not None else job.traceparent
            ex.seq += 1
            sent[ex.seq] = Sent(job, span, traceparent)
            messages.append([job.id, job.type, job.function, job.payload, job.timeout, job.attempt, job.queue,
                             traceparent, ex.seq])
        metrics.WORKER_IDLE.set(0)
        with self._lock:
            ex.inflight, ex.cancel_seq, ex.cancel_sent, ex.journal_read = sent, 0, 0.0, 0
        ex.control.allow(ex.seq)
        slowest = 0.0
        begun = time.monotonic()
        try:
            answered: list[tuple[Sent, Outcome]] = []
            try:
                ex.conn.send_bytes(orjson.dumps(messages))
            except OSError:  # it died while idle (killed from outside): a new one, and the jobs go back
                answered = self.executor_lost(ex, "error", "")
            if self.state.cancel_requests:  # asked for while the batch was prepared
                with self._lock:
                    self.signal_cancel(ex)
            while True:
                for done, outcome in answered:
                    outcome.trace = tracing.ids(done.traceparent)
                    label = {"requeue": "requeued", "release": "released"}.get(outcome.outcome, "failed")
                    tracing.end_run(done.span, outcome.metric or label, outcome.error)
                    self.pending.append(outcome)
                    slowest = max(slowest, outcome.run_seconds or 0.0)
                if not ex.inflight:  # (emptied too when the executor is lost: its replacement is idle)
                    break
                if answered and time.monotonic() - begun > FAST_JOB_SECONDS:
                    self.flush()  # a batch that runs long: outcomes are recorded as they come, not at its end
                answered = self.await_answers(ex)
        finally:
            for gauge in busy:
                gauge.set(0)
            if not self.state.stopping:
                metrics.WORKER_IDLE.set(1)
        return slowest

    def await_answers(self, ex: Executor) -> list[tuple[Sent, Outcome]]:
        """Wait for the executor's next report while keeping claims alive; enforce the hard timeout, the
        cancel grace and the drain deadline on the job it runs, killing it when one passes."""
        while True:
            if self.state.stopping and not self.state.released:
                self.release_unstarted(ex)
            now = time.monotonic()
            current = ex.current()
            wake = min(self.next_heartbeat, now + 0.5)
            if current is not None:
                wake = min(wake, current[2] + current[1].timeout + self.settings.hard_kill_grace_seconds)
            if self.state.stopping and not self.state.force:
                wake = min(wake, self.state.drain_deadline)
            if current is not None and ex.cancel_sent and current[0] == ex.cancel_seq:
                wake = min(wake, max(ex.cancel_sent, current[2]) + self.settings.hard_kill_grace_seconds)
            try:
                if ex.may_hold_outcomes():  # read them if no report comes within REPORT_SECONDS
                    wake = min(wake, now + executor.REPORT_SECONDS)
                ready = ex.conn.poll(max(0.0, wake - now))
            except (EOFError, OSError):
                ready = True
            if ready:
                try:
                    results = orjson.loads(ex.conn.recv_bytes())
                except (EOFError, OSError):
                    return self.executor_lost(ex, "error", "WorkerCrash: the job's process died (exit code {code})")
                return self.answers(ex, results)
            if held := self.answers(ex, ex.held_outcomes()):
                return held
            now = time.monotonic()
            current = ex.current()
            if self.state.stopping and (self.state.force or now >= self.state.drain_deadline):
                log.warning("drain deadline passed: job goes back to its queue",
                            extra={"job_id": current[1].id if current else None})
                return self.executor_lost(ex, "requeue", "")
            if current is None:
                pass
            elif ex.cancel_sent and current[0] == ex.cancel_seq and \
                    now >= max(ex.cancel_sent, current[2]) + self.settings.hard_kill_grace_seconds:
                log.warning("job ignored its cancel: executor killed", extra={"job_id": current[1].id})
                return self.executor_lost(ex, "canceled", "canceled; killed after ignoring the cancel")
            elif now >= current[2] + current[1].timeout + self.settings.hard_kill_grace_seconds:
                job = current[1]
                log.error("job hung past its timeout: executor killed", extra={"job_id": job.id,
                                                                               "timeout": job.timeout})
                return self.executor_lost(ex, "timeout", f"JobTimeout: killed after {job.timeout}s "
                                          f"(+{self.settings.hard_kill_grace_seconds}s grace): it ignored the "
                                          "soft timeout")
            if not ex.process.is_alive():
                return self.executor_lost(ex, "error", "WorkerCrash: the job's process died (exit code {code})")
            self.maintenance()

    def answers(self, ex: Executor, results: list[list[Any]]) -> list[tuple[Sent, Outcome]]:
        out: list[tuple[Sent, Outcome]] = []
        with self._lock:
            done = [(ex.inflight.pop(int(r[0]), None), r) for r in results]
            if done and self.state.cancel_requests:
                self.signal_cancel(ex)  # the next job of the batch with a cancel asked for, if any
        for sent, (_, _, kind, value, seconds) in done:
            if sent is None:
                continue
            if kind == "skipped":  # not started: given back when the batch was stopped
                tracing.end_run(sent.span, "released", "")
            else:
                out.append((sent, self.to_outcome(sent.job, kind, value, seconds)))
        return out

    def executor_lost(self, ex: Executor, kind: str, text: str) -> list[tuple[Sent, Outcome]]:
        """The executor died, or is killed now. The outcomes it had written (reports still in the pipe, then
        its journal) are kept; the job it ran gets `kind` (requeue, or a to_outcome kind with `text`); the
        jobs it had not started go back to their queue."""
        current, started, running = ex.current(), ex.control.started(), ex.control.running()
        elapsed = time.monotonic() - running[1] if running else 0.0
        code: Any = "killed"
        if ex.process.is_alive():
            ex.process.kill()
            ex.process.join(5)
        else:
            ex.process.join(1)
            code = ex.process.exitcode
            log.error("executor died", extra={"exitcode": code, "job_id": current[1].id if current else None})
        results: list[list[Any]] = []
        try:
            while ex.conn.poll(0):
                results += orjson.loads(ex.conn.recv_bytes())
        except (EOFError, OSError, orjson.JSONDecodeError):
            pass  # a report cut short by the kill: its outcomes are in the journal too
        out = self.answers(ex, results + ex.control.journaled())
        ex.conn.close()
        self.executor = self.spawn_executor()
        with self._lock:
            left, ex.inflight = ex.inflight, {}
        for seq, sent in left.items():
            job = sent.job
            was_running = running is not None and seq == running[0]
            if was_running and kind != "requeue":
                out.append((sent, self.to_outcome(job, kind, text.format(code=code), elapsed)))
            elif was_running or seq <= started:  # drained, or ended before its outcome was journaled: again
                series(job.queue, job.type).finished["requeued"].inc()
                out.append((sent, Outcome(job, "requeue")))
            elif job.id in self.claimed:  # never started (and not given back already by a stop)
                out.append((sent, Outcome(job, "release")))
        return out

    def release_unstarted(self, ex: Executor) -> None:
        """At a stop signal, give the claimed jobs that have not started back to their queue at once, so
        other workers run them while this one drains its running job. One try: on a Redis error they are
        given back after the running job, as at any shutdown."""
        self.state.released = True
        started = ex.control.freeze()  # from here on the executor skips the batch's remaining jobs
        keep = {o.job.id for o in self.pending} | {s.job.id for n, s in ex.inflight.items() if n <= started}
        batch = [Outcome(j, "release") for j in self.claimed.values() if j.id not in keep]
        if not batch:
            return
        try:
            replies = self.write_outcomes(batch)
        except TRANSIENT_ERRORS as exc:
            self.redis_error(exc)
            return
        self.recorded(batch, replies)
        log.info("stop signal: claimed jobs not started given back", extra={"jobs": len(batch)})

    def to_outcome(self, job: Claimed, kind: str, value: Any, seconds: float) -> Outcome:
        series(job.queue, job.type).run.observe(seconds)
        self.state.cancel_requests.discard(job.id)
        if kind == "ok":
            return Outcome(job, "finished", encode_return_value(value), job.result_ttl, "succeeded", seconds)
        if kind == "canceled":
            return Outcome(job, "canceled", encode_exc_string(str(value)), job.failure_ttl, "canceled", seconds)
        text = str(value)
        if kind != "invalid" and job.retries_left > 0:  # a failed or timed-out run that will run again
            intervals = job.retry_intervals or [0.0]
            delay = float(intervals[min(job.number_of_retries, len(intervals) - 1)])
            return Outcome(job, "retry", encode_exc_string(text), time.time() + delay, "retried", seconds, text)
        label = "timed_out" if kind == "timeout" else "failed"
        return Outcome(job, "failed", encode_exc_string(text), job.failure_ttl, label, seconds, text)

    # ----- recording outcomes -----
    def flush(self, final: bool = False) -> None:
        """Write pending outcomes in one round trip; on a Redis error keep them and retry."""
        while self.pending:
            batch = list(self.pending)
            try:
                replies = self.write_outcomes(batch)
            except TRANSIENT_ERRORS as exc:
                self.redis_error(exc)
                if final and (self.state.force or time.monotonic() >= self.state.drain_deadline + 5):
                    log.error("Redis unreachable at shutdown: jobs left to recovery",
                              extra={"jobs": [o.job.id for o in batch]})
                    return
                time.sleep(max(0.0, self.redis_backoff - time.monotonic()))
                continue
            del self.pending[: len(batch)]
            self._last_delay = 0.05
            self.recorded(batch, replies)

    def write_outcomes(self, batch: list[Outcome]) -> list[Any]:
        """One complete.lua call for the whole batch: one round trip."""
        return self.scripts.complete(args=[time.time(), utcnow_str(), self.name,  # type: ignore[no-any-return]
                                           *outcome_args(batch)])

    def recorded(self, batch: list[Outcome], replies: list[Any]) -> None:
        for o, status in zip(batch, replies):
            self.claimed.pop(o.job.id, None)
            self.record(o, status.decode() if isinstance(status, bytes) else str(status))
        metrics.WORKER_JOBS_IN_PROGRESS.set(len(self.claimed))

    def record(self, o: Outcome, status: str) -> None:
        job = o.job
        if o.metric and status not in ("lost", "gone", "dup"):
            series(job.queue, job.type).finished[o.metric].inc()
            if status in ("finished", "failed", "canceled") and job.created_at:
                series(job.queue, job.type).e2e.observe(max(0.0, time.time() - job.created_at))
        level = logging.INFO if o.outcome in ("finished", "release") else logging.WARNING
        log.log(level, "job %s", o.outcome, extra={"job_id": job.id, "job_type": job.type, "queue": job.queue,
                                                   "attempt": job.attempt, "status": status,
                                                   "run_seconds": o.run_seconds, **o.trace})

    # ----- commands (RQ's pub/sub channel) -----
    def listen_for_commands(self) -> None:
        """RQ's worker commands: stop-job (cancel), shutdown, kill-horse. Reconnects on its own."""
        client = sync_client(self.settings, blocking_timeout=None)
        backoff = 0.1
        while True:
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(keys.worker_pubsub(self.name))
                backoff = 0.1
                for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        payload = orjson.loads(message["data"])
                    except orjson.JSONDecodeError:
                        continue
                    command = payload.get("command")
                    if command == "stop-job" and payload.get("job_id"):
                        self.request_cancel(str(payload["job_id"]))
                    elif command == "shutdown":
                        os.kill(os.getpid(), signal.SIGTERM)
                    elif command == "kill-horse" and self.executor is not None:
                        os.kill(self.executor.pid, signal.SIGKILL)
            except TRANSIENT_ERRORS:
                time.sleep(backoff)
                backoff = min(5.0, backoff * 2)
            except Exception:  # noqa: BLE001 - the command thread must outlive any surprise
                log.exception("command listener error")
                time.sleep(1)
