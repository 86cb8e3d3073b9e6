"""Executor supervision: hand a batch to the executor process in one message, collect its outcomes, enforce
the hard timeout, the cancel grace and the drain deadline, and count every executor death against the job
it ran (or had just ended)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import orjson

from jobengine import metrics, tracing
from jobengine.redis_conn import TRANSIENT_ERRORS
from jobengine.settings import Settings

from . import executor
from .claimed import CRASH, STOPPED_TEXT, Claimed, Outcome, exit_text, to_outcome
from .recording import series

if TYPE_CHECKING:
    from .worker import State

log = logging.getLogger("jobengine.worker")

FAST_JOB_SECONDS = 0.02  # batches grow only while jobs are this quick, so long jobs are not hoarded
EXIT_WAIT_SECONDS = 2.0  # how long an executor that closed its pipe gets to exit before it is killed


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

    def stop(self) -> None:
        """End an idle executor: it leaves when its pipe closes (it ignores SIGTERM); killed if it does not."""
        self.conn.close()
        self.process.join(EXIT_WAIT_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def given_back(job: Claimed, outcome: str) -> Outcome:
    """A job going back to the front of its queue: requeue (interrupted) or release (never started)."""
    return Outcome(job, outcome, STOPPED_TEXT)


class Supervision:
    """The executor side of Worker (a mixin: it shares the worker's state)."""

    settings: Settings
    name: str
    state: State
    claimed: dict[str, Claimed]
    pending: list[Outcome]
    executor: Executor | None
    next_heartbeat: float
    _lock: threading.Lock
    _ctx: Any

    def maintenance(self) -> None: ...  # (Worker's)
    def flush(self, final: bool = False) -> None: ...
    def write_outcomes(self, batch: list[Outcome]) -> list[str]: ...
    def recorded(self, batch: list[Outcome], statuses: list[str]) -> None: ...
    def redis_error(self, exc: BaseException) -> None: ...

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

    def to_outcome(self, job: Claimed, kind: str, value: Any, seconds: float) -> Outcome:
        series(job.queue, job.type).run.observe(seconds)
        self.state.cancel_requests.discard(job.id)
        return to_outcome(job, kind, value, seconds, max_crashes=self.settings.max_crashes)

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
                             traceparent, ex.seq, job.dependency_results])
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
                answered = self.executor_lost(ex, CRASH, "WorkerCrash: the job's process died ({code})")
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
        crashed = "WorkerCrash: the job's process died ({code})"
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
                    return self.executor_lost(ex, CRASH, crashed)
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
                return self.executor_lost(ex, CRASH, crashed)
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

    def end_executor(self, ex: Executor, died: bool) -> int | None:
        """Make sure the executor is gone; its exit code (negative: the signal). One that died on its own
        may still be exiting (its pipe closes first): it gets EXIT_WAIT_SECONDS, so its real code is known."""
        if died:
            ex.process.join(EXIT_WAIT_SECONDS)
        if ex.process.is_alive():
            ex.process.kill()
        ex.process.join(5)
        return ex.process.exitcode

    def executor_lost(self, ex: Executor, kind: str, text: str) -> list[tuple[Sent, Outcome]]:
        """The executor died (kind CRASH), or is killed now (requeue: the drain; canceled, timeout). The
        outcomes it had written (reports still in the pipe, then its journal) are kept; the job it ran, or
        else the job it had just ended without an outcome, gets `kind` with `text` (a crash counts against
        it, see to_outcome; requeue goes back to the front); the jobs it had not started go back to their
        queue."""
        current, started, running = ex.current(), ex.control.started(), ex.control.running()
        elapsed = time.monotonic() - running[1] if running else 0.0
        code = self.end_executor(ex, died=kind == CRASH)
        if kind == CRASH:
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
        # the job to blame: the one running, else (a death between jobs) the last one started, if unanswered
        blamed = running[0] if running is not None else started
        for seq, sent in left.items():
            job = sent.job
            if seq == blamed and kind != "requeue":
                out.append((sent, self.to_outcome(job, kind, text.format(code=exit_text(code)), elapsed)))
            elif seq <= started:  # drained: again, at the front
                series(job.queue, job.type).finished["requeued"].inc()
                out.append((sent, given_back(job, "requeue")))
            elif job.id in self.claimed:  # never started (and not given back already by a stop)
                out.append((sent, given_back(job, "release")))
        return out

    def release_unstarted(self, ex: Executor) -> None:
        """At a stop signal, give the claimed jobs that have not started back to their queue at once, so
        other workers run them while this one drains its running job. One try: on a Redis error they are
        given back after the running job, as at any shutdown."""
        self.state.released = True
        started = ex.control.freeze()  # from here on the executor skips the batch's remaining jobs
        keep = {o.job.id for o in self.pending} | {s.job.id for n, s in ex.inflight.items() if n <= started}
        batch = [given_back(j, "release") for j in self.claimed.values() if j.id not in keep]
        if not batch:
            return
        try:
            statuses = self.write_outcomes(batch)
        except TRANSIENT_ERRORS as exc:
            self.redis_error(exc)
            return
        self.recorded(batch, statuses)
        log.info("stop signal: claimed jobs not started given back", extra={"jobs": len(batch)})
