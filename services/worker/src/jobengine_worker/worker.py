"""The worker supervisor's main loop: claims jobs in batches, hands each batch to the executor process in one
message (supervision.py), records a batch's outcomes in the round trip that claims the next batch
(complete_claim.lua), renews its claims (registration.py), moves due jobs, recovers the jobs of dead
workers, and drains on SIGTERM. RQ's worker commands are heard by commands.py. It exits as drained after
JOBENGINE_MAX_JOBS jobs or JOBENGINE_IDLE_EXIT_SECONDS without one (the chart's ScaledJob pods), and marks its
pod busy or idle for Kubernetes' scale-downs (deletion_cost.py).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import FrameType
from typing import TypeVar

import redis

from jobengine import keys, metrics, scripts, tracing
from jobengine.catalog import Catalog
from jobengine.jobdata import encode_exc_string, utcformat, utcnow_str
from jobengine.redis_conn import TRANSIENT_ERRORS, sync_client
from jobengine.settings import Settings

from . import registration
from .claimed import Claimed, Outcome, expires
from .dependencies import read_results
from .commands import listen_for_commands
from .deletion_cost import DeletionCostConfig, PodDeletionCost
from .recording import record
from .supervision import FAST_JOB_SECONDS, Executor, Supervision, given_back

log = logging.getLogger("jobengine.worker")

T = TypeVar("T")
SCRIPT_ERROR_BACKOFF = 5.0  # seconds before a maintenance script that got an error reply runs again
GIVEN_BACK = frozenset({"requeue", "release"})  # outcomes of jobs that did not end here (max_jobs ignores them)


@dataclass
class State:
    stopping: bool = False  # SIGTERM seen: take no more jobs, drain
    force: bool = False  # deadline passed or second signal: stop running jobs now
    drain_deadline: float = 0.0
    cancel_requests: set[str] = field(default_factory=set)
    released: bool = False  # the claimed jobs not yet started were given back at the stop signal


class Worker(Supervision):
    def __init__(self, settings: Settings, catalog: Catalog, deletion_cost: PodDeletionCost | None = None) -> None:
        self.settings = settings
        # built by the entry point from the environment (a bad one stops it there); off when not given
        self.deletion_cost = deletion_cost if deletion_cost is not None else PodDeletionCost(DeletionCostConfig(False))
        self.catalog = catalog
        self.name = settings.worker_name or f"{socket.gethostname()}.{os.getpid()}"
        self.queues = list(settings.queues)
        self.redis = sync_client(settings)
        self.blocking = sync_client(settings, blocking_timeout=settings.redis_socket_timeout + 2)
        # The scripts go through a client that never re-sends a call on its own: the worker sends a claim
        # whose reply was lost again itself, saying so (see _claim.lua), and every script is safe to repeat.
        self.scripts = scripts.Scripts.register(sync_client(settings, retries=0))
        self.state = State()
        self.session = uuid.uuid4().hex[:12]
        self.exec_seq = 0
        self.unanswered_claim = ""  # execution id of a claim whose reply never came: sent again as it was
        self.claim_size = 1
        self.max_jobs = settings.max_jobs  # (read on every claim)
        self.taken = 0  # jobs claimed minus those given back: the jobs that ended (or will) here, for max_jobs
        self.idle_deadline = math.inf  # idle_exit_seconds: exit once idle past this (monotonic)
        self.claimed: dict[str, Claimed] = {}  # held by this worker: renewed on heartbeat
        self.ended = {"finished": 0, "failed": 0}  # jobs ended here, shown by GET /v1/workers (heartbeat)
        self.paused: frozenset[str] = frozenset()  # served queues paused, as the last heartbeat read them
        self.pending: list[Outcome] = []  # outcomes not yet written to Redis
        self.executor: Executor | None = None
        self.next_heartbeat = 0.0
        self.next_schedule = 0.0
        self.next_recover = 0.0
        self.redis_backoff = 0.0
        self._last_delay = 0.05
        self._alive_touched = -math.inf  # monotonic time the liveness file was last touched
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
        self.touch_alive()
        self._retrying(self.register)
        self.executor = self.spawn_executor()
        threading.Thread(target=listen_for_commands, name="commands", daemon=True,
                         args=(self.settings, self.name, self.request_cancel,
                               lambda: self.executor.pid if self.executor else None)).start()
        self.deletion_cost.start()
        metrics.WORKER_IDLE.set(1)
        log.info("worker started", extra={"worker": self.name, "queues": self.queues})
        try:
            self.loop()
        finally:
            self.shutdown()

    def loop(self) -> None:
        """Claim and run until stopped. The busy flag is local so that the idle/busy hooks (the deletion cost,
        the idle clock) run on transitions only, never once a batch."""
        busy = False
        max_jobs = self.max_jobs
        if self.settings.idle_exit_seconds:
            self.idle_deadline = time.monotonic() + self.settings.idle_exit_seconds
        while not self.state.stopping:
            self.maintenance()
            batch = self.claim()
            if batch:
                if not busy:
                    busy = True
                    self.deletion_cost.set_busy(True)
                self.execute(batch)
                if max_jobs and self.jobs_left() <= 0:
                    self.exit_as_drained("JOBENGINE_MAX_JOBS jobs ended", max_jobs=max_jobs)
            elif batch is not None and not self.state.stopping:
                if busy:
                    busy = False
                    self.deletion_cost.set_busy(False)
                    if self.settings.idle_exit_seconds:
                        self.idle_deadline = time.monotonic() + self.settings.idle_exit_seconds
                if time.monotonic() >= self.idle_deadline:
                    self.exit_as_drained("no job for JOBENGINE_IDLE_EXIT_SECONDS",
                                         idle_exit_seconds=self.settings.idle_exit_seconds)
                else:
                    self.wait_for_work()

    def exit_as_drained(self, reason: str, **extra: object) -> None:
        """Leave as a SIGTERMed worker does (shutdown: outcomes written, nothing held, unregistered, exit 0);
        called between batches, so no job runs."""
        self.state.stopping = True
        self.state.drain_deadline = time.monotonic() + self.settings.drain_seconds  # for the final flush
        metrics.WORKER_IDLE.set(0)
        log.info(f"exiting: {reason}", extra={"worker": self.name, **extra})

    def jobs_left(self) -> int:
        """Jobs this worker may still take under max_jobs: the given back ones not yet written (pending) did
        not end here."""
        return self.max_jobs - self.taken + sum(1 for o in self.pending if o.outcome in GIVEN_BACK)

    def shutdown(self) -> None:
        metrics.WORKER_IDLE.set(0)
        if self.unanswered_claim:  # the jobs a claim whose reply was lost took: held now, to be given back
            self.claim()
        # Give back whatever was claimed and not run, then record every outcome we hold.
        for job in list(self.claimed.values()):
            if not any(o.job.id == job.id for o in self.pending):
                self.pending.append(given_back(job, "release"))
        self.flush(final=True)
        if self.executor is not None:
            self.executor.stop()
        try:
            registration.unregister(self.redis, self.name, self.queues)
        except TRANSIENT_ERRORS:
            log.warning("could not unregister the worker: Redis unreachable (its key expires by itself)")
        self.deletion_cost.stop()
        log.info("worker stopped", extra={"worker": self.name})

    # ----- registration, heartbeat and maintenance -----
    def register(self) -> None:
        registration.register(self.redis, self.name, self.queues, self.key_ttl, self.settings.worker_pool)

    @property
    def key_ttl(self) -> int:
        return int(self.settings.abandoned_after_seconds) + 5

    def heartbeat(self) -> None:
        """Renew the worker key and the claims on every job held, so nobody recovers them."""
        with self._lock:  # cancels of jobs no longer held (ended before the cancel came): nothing to stop
            self.state.cancel_requests.intersection_update(self.claimed)
        running = self.executor.current() if self.executor else None
        current = running[1] if running else None
        since = (utcformat(datetime.fromtimestamp(time.time() - (time.monotonic() - running[2]), timezone.utc))
                 if running else "")
        stats = registration.Stats(self.ended["finished"], self.ended["failed"], since,
                                   registration.rss_bytes(os.getpid(), self.executor.pid if self.executor else None))
        beat = registration.heartbeat(self.redis, self.name, self.key_ttl,
                                      expires(self.settings.abandoned_after_seconds), self.claimed.values(), current,
                                      stats, self.queues)
        self.paused = beat.paused
        if beat.cancel_current:
            assert current is not None
            self.request_cancel(current.id)

    def touch_alive(self) -> None:
        """Touch the liveness file (at most once a second): proof that the loop runs, Redis or not."""
        path = self.settings.liveness_file
        now = time.monotonic()
        if not path or now - self._alive_touched < 1.0:
            return
        self._alive_touched = now
        try:
            with open(path, "a"):
                os.utime(path)
        except OSError as exc:  # a path that is not writable: the probe fails and says why
            log.warning("cannot touch the liveness file", extra={"path": path, "error": repr(exc)})

    def maintenance(self) -> None:
        """Heartbeat, due scheduled jobs and recovery of dead workers' jobs, each when due. A Redis error
        backs all off; an error reply of a script (a key of the wrong type, say) backs off that script alone,
        never ends the worker. Called from the loop and while a job runs: it touches the liveness file."""
        self.touch_alive()
        now = time.monotonic()
        if now < self.redis_backoff:
            return
        try:
            if now >= self.next_heartbeat:
                try:
                    self.heartbeat()
                except redis.ResponseError as exc:  # (a wrong-type worker key): the next one at its time
                    self.script_error(exc)
                self.next_heartbeat = now + self.settings.heartbeat_seconds
            if now >= self.next_schedule:
                self.next_schedule = now + SCRIPT_ERROR_BACKOFF  # (kept if the script fails)
                self.next_schedule = now + self.schedule()
            if now >= self.next_recover:
                self.next_recover = now + max(SCRIPT_ERROR_BACKOFF, self.settings.heartbeat_seconds)
                self.recover()
                self.next_recover = now + self.settings.heartbeat_seconds
            self.redis_backoff = 0.0
        except TRANSIENT_ERRORS as exc:
            self.redis_error(exc)
        except redis.ResponseError as exc:
            self.script_error(exc)

    def schedule(self) -> float:
        """Move due jobs to their queues; returns the seconds until the next is due (at most 1)."""
        _, earliest = scripts.parse_schedule(self.scripts.schedule(
            args=scripts.schedule_args(now=time.time(), stamp=utcnow_str(), limit=1000)))
        if earliest > 0:
            return min(1.0, max(0.005, earliest - time.time()))
        return 1.0

    def recover(self) -> None:
        reply = self.scripts.recover(args=scripts.recover_args(
            now=time.time(), stamp=utcnow_str(), max_recoveries=self.settings.max_recoveries, limit=500,
            failed_text=encode_exc_string("AbandonedJobError: the worker running it died too many times"),
            canceled_text=encode_exc_string("canceled; its worker was lost")))
        for job in scripts.parse_recover(reply):
            metrics.JOBS_RECOVERED.labels(job.queue, job.status).inc()
            log.warning("recovered a job of a dead worker", extra={"job_id": job.job_id, "queue": job.queue,
                                                                   "status": job.status})

    def redis_error(self, exc: BaseException) -> None:
        metrics.WORKER_REDIS_ERRORS.inc()
        delay = min(5.0, max(0.1, self._last_delay * 2))
        self._last_delay = delay
        self.redis_backoff = time.monotonic() + delay
        log.warning("Redis unavailable, retrying", extra={"error": repr(exc), "retry_in": delay})

    def script_error(self, exc: redis.ResponseError) -> None:
        """An error reply (not a transient one): counted as a Redis error and logged; the caller backs off."""
        metrics.WORKER_REDIS_ERRORS.inc()
        log.error("Redis answered a script with an error", extra={"error": repr(exc)})

    def _retrying(self, fn: Callable[[], T]) -> T:
        """Call fn until Redis answers (start-up), backing off; a stop signal ends the wait."""
        while True:
            try:
                result = fn()
                self._last_delay = 0.05
                return result
            except TRANSIENT_ERRORS as exc:
                if self.state.stopping:
                    raise SystemExit(0) from exc
                self.touch_alive()  # waiting for Redis at start-up is alive, not stuck
                self.redis_error(exc)
                time.sleep(max(0.0, self.redis_backoff - time.monotonic()))

    # ----- claiming -----
    def claim(self) -> list[Claimed] | None:
        """Record the outcomes held and claim up to claim_size jobs, in one round trip; [] when none wait,
        None on a Redis error (the outcomes are kept and written at the next try, which sends the claim's
        execution id again: the script answers a claim it made already with the same jobs)."""
        if time.monotonic() < self.redis_backoff:
            time.sleep(max(0.0, min(0.5, self.redis_backoff - time.monotonic())))
            return None
        again = bool(self.unanswered_claim)
        if not again:
            self.exec_seq += 1
        execution = self.unanswered_claim or f"{self.session}{self.exec_seq:x}"  # one a claim (see _claim.lua)
        expiry = expires(self.settings.abandoned_after_seconds)
        done = list(self.pending)
        limit = min(self.claim_size, self.jobs_left()) if self.max_jobs else self.claim_size
        try:
            self.unanswered_claim = execution
            if done:
                statuses, rows = scripts.parse_complete_claim(self.scripts.complete_claim(
                    args=scripts.complete_claim_args(now=time.time(), stamp=utcnow_str(), worker=self.name,
                                                     expiry=expiry, execution=execution, limit=limit,
                                                     queues=self.queues, outcomes=[o.args() for o in done],
                                                     again=again)))
            else:
                rows = scripts.parse_claim(self.scripts.claim(args=scripts.claim_args(
                    expiry=expiry, stamp=utcnow_str(), worker=self.name, execution=execution,
                    limit=limit, queues=self.queues, again=again)))
            self.unanswered_claim = ""
            self._last_delay = 0.05
        except TRANSIENT_ERRORS as exc:
            self.redis_error(exc)
            return None
        except redis.ResponseError as exc:  # a queue key of the wrong type, say: retried after a backoff
            self.script_error(exc)
            self.redis_backoff = time.monotonic() + SCRIPT_ERROR_BACKOFF
            return None
        if done:  # before the new batch is held: a requeued job may be claimed again at once
            del self.pending[: len(done)]
            self.recorded(done, statuses)
        self.taken += len(rows)
        batch = [job for job in map(self.decode, rows) if job is not None]
        metrics.WORKER_JOBS_IN_PROGRESS.set(len(self.claimed))
        return batch

    def decode(self, row: scripts.ClaimRow) -> Claimed | None:
        """Hold one claimed job; a job this worker cannot decode (stock RQ's pickled data, garbage, missing
        fields) fails alone, now, and is not run (None)."""
        try:
            job = Claimed.from_row(row)
        except Exception as exc:  # noqa: BLE001 - whatever is in the hash, the worker goes on
            job = Claimed.undecodable(row)
            text = f"UndecodableJob: this worker cannot read the job's data (not jobengine's JSON?): {exc!r}"
            log.error("claimed a job it cannot decode: it fails", extra={"job_id": job.id, "queue": job.queue,
                                                                         "error": repr(exc)})
            self.claimed[job.id] = job
            self.pending.append(Outcome(job, "failed", encode_exc_string(text), job.failure_ttl, "failed",
                                        error=text))
            return None
        self.claimed[job.id] = job
        return job

    def wait_for_work(self) -> None:
        """Block on the queues' wake-up lists, at most until the next maintenance is due."""
        timeout = max(0.01, min(self.next_schedule, self.next_heartbeat, self.next_recover, self.idle_deadline)
                      - time.monotonic())
        timeout = min(timeout, 1.0)
        # A paused queue's wake-ups are not waited on (submits to it would wake the worker for nothing); the
        # claim still names it, so its jobs are taken within a second of its resume (the claim script skips it
        # while paused).
        awake = [keys.notify(q) for q in self.queues if q not in self.paused]
        try:
            if not awake:
                time.sleep(timeout)
            elif self.blocking.blpop(awake, timeout=timeout):
                self.next_schedule = 0.0  # a delayed job may be due sooner than planned
        except TRANSIENT_ERRORS as exc:
            self.redis_error(exc)
            time.sleep(min(0.5, max(0.0, self.redis_backoff - time.monotonic())))

    # ----- running -----
    def execute(self, batch: list[Claimed]) -> None:
        todo: list[Claimed] = []
        for job in batch:
            if job.id in self.state.cancel_requests:
                self.state.cancel_requests.discard(job.id)
                self.pending.append(Outcome(job, "canceled", encode_exc_string("canceled before it started"),
                                            job.failure_ttl, "canceled"))
            else:
                todo.append(job)
        if any(job.dependencies for job in todo):  # fan-in: their dependencies' results, one round trip
            self._retrying(lambda: read_results(self.redis, todo, self.settings.dependency_results_max_bytes))
        # A traced run span should time the job alone, not the batch's earlier jobs: one job a message then.
        step = 1 if tracing.enabled() else max(1, len(todo))
        slowest = 0.0
        for first in range(0, len(todo), step):
            if self.state.stopping:  # (some may have been given back already, while the last job ran)
                self.pending.extend(given_back(j, "release") for j in todo[first:] if j.id in self.claimed)
                break
            slowest = max(slowest, self.run_batch(todo[first : first + step]))
        # (the outcomes held are written with the next claim, in one round trip)
        self.claim_size = min(self.settings.batch_size, self.claim_size * 2) if slowest < FAST_JOB_SECONDS else 1

    # ----- recording outcomes -----
    def flush(self, final: bool = False) -> None:
        """Write pending outcomes in one round trip; on a Redis error keep them and retry."""
        while self.pending:
            batch = list(self.pending)
            try:
                statuses = self.write_outcomes(batch)
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
            self.recorded(batch, statuses)

    def write_outcomes(self, batch: list[Outcome]) -> list[str]:
        """One complete.lua call for the whole batch: one round trip (safe to repeat: see complete.lua)."""
        return scripts.parse_statuses(self.scripts.complete(args=scripts.complete_args(
            now=time.time(), stamp=utcnow_str(), worker=self.name, outcomes=[o.args() for o in batch])))

    def recorded(self, batch: list[Outcome], statuses: list[str]) -> None:
        ended = self.ended
        for o, status in zip(batch, statuses):
            self.claimed.pop(o.job.id, None)
            record(o, status)
            if status in ended:
                ended[status] += 1
        metrics.WORKER_JOBS_IN_PROGRESS.set(len(self.claimed))
        if self.max_jobs:  # a job given back did not end here
            self.taken -= sum(1 for o in batch if o.outcome in GIVEN_BACK)
