"""The executor: a long-lived child process that runs job functions, so a job never runs in the
process that talks to Redis, and a hung or crashing job costs one respawn, not the worker.

Protocol over a pipe, JSON (orjson) both ways, never pickle:
  supervisor -> executor: a batch, [job, job, ...], each job
     [id, type, function, payload, timeout, attempt, queue, traceparent, seq, dependency_results]
     traceparent: the run span's W3C context (or null); made current while the job runs, so the
     job's own spans are children of the run span and its log lines carry the trace id
     seq: the job's number from the supervisor (1, 2, ...), increasing across batches
     dependency_results: null, or {name or id: result} of a job with dependencies (fan-in: dependencies.py)
  executor -> supervisor: reports, [result, result, ...], each [seq, id, kind, value, run_seconds]
     kind: ok (value = result JSON), error / timeout / canceled (value = traceback text; error for any
           exception of the job, BaseException included, and for a result JSON cannot hold),
           invalid (payload failed validation, or no such function: permanent),
           skipped (not started: the supervisor stopped the batch, see Control)
     A report goes out when the batch is done, and mid-batch once REPORT_SECONDS have passed since the
     last one, so a slow job's outcome is never held back by the jobs after it. Each outcome is also
     journaled in shared memory as its job ends, so the executor's death loses none (see Control), and
     the outcomes held while a later job of the batch runs long are read there by the supervisor after
     REPORT_SECONDS without a report: a quick job's outcome does not wait for a slow job after it.
Batches of fast jobs cost two pipe wake-ups for the whole batch instead of two a job. The supervisor
still sees which job runs, and since when, through Control (shared memory), for the hard timeout, the
drain and cancel.

Cancel: the supervisor writes the number of the job to cancel into Control, then sends SIGUSR1. The
executor cancels only when that number is the job it runs, and checks it again as each job starts: a
signal that lands before the job starts still cancels it, and a late signal never cancels the next one.
With cancels asked for several jobs of a batch, the supervisor points the cell at the first of them (they
run in order) and at the next one as each ends.

Signals: the executor ignores SIGTERM and SIGINT (a signal to the worker's process group reaches it too):
stopping is the supervisor's call, which drains the running job, then closes the pipe (or kills it).
"""

from __future__ import annotations

import importlib
import os
import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from jobengine import keys, tracing
from jobengine.catalog import Catalog, get_catalog
from jobengine.context import JobContext, set_current_job
from jobengine.logs import setup_logging
from jobengine.settings import get_settings


class JobTimeout(Exception):
    """The job ran past its timeout (raised inside the job by a timer signal)."""


class JobCanceled(BaseException):
    """A cancel was asked for while the job ran. BaseException so `except Exception` in jobs doesn't swallow it."""


REPORT_SECONDS = 0.02  # longest a finished job's outcome waits in the executor for the rest of its batch
JOURNAL_BYTES = 256 * 1024  # outcomes not yet reported, readable by the supervisor if the executor dies


class Control:
    """What the supervisor and its executor share: a few numbers and a journal in shared memory, and a lock.

    The executor starts job `seq` only if seq <= allowed, and records it as started under the same lock,
    so `freeze()` (at a stop signal) knows exactly which jobs of a batch will never start: the supervisor
    gives those back to their queue at once, while the running job drains.

    Each outcome is also written to the journal as the job ends, before it is reported: when the executor
    dies or is killed (a crash, another job's hard timeout, the drain deadline), the supervisor still reads
    the outcomes of the batch's finished jobs there, so they are recorded, not run again."""

    CANCEL, ALLOWED, STARTED, RUNNING, STARTED_AT, JOURNAL = range(6)

    def __init__(self, ctx: Any) -> None:
        self.cells = ctx.RawArray("d", 6)  # doubles: seq numbers stay exact up to 2**53
        self.journal = ctx.RawArray("c", JOURNAL_BYTES)  # outcomes, one JSON line each; cells[JOURNAL] bytes
        self.lock = ctx.Lock()

    # executor side
    def begin(self, seq: int) -> bool:
        with self.lock:
            if seq > self.cells[self.ALLOWED]:
                return False
            self.cells[self.STARTED] = seq
            self.cells[self.STARTED_AT] = time.monotonic()  # CLOCK_MONOTONIC: the same clock in both processes
            self.cells[self.RUNNING] = 1
        return True

    def end(self) -> None:
        self.cells[self.RUNNING] = 0

    def cancel_wanted(self, seq: int) -> bool:
        return seq != 0 and self.cells[self.CANCEL] == seq

    def journal_add(self, line: bytes) -> bool:
        """Append one outcome (no newline in it); False when the journal has no room (report now)."""
        start = int(self.cells[self.JOURNAL])
        end = start + len(line) + 1
        if end > JOURNAL_BYTES:
            return False
        self.journal[start:end] = line + b"\n"
        self.cells[self.JOURNAL] = end  # written after the bytes: a kill mid-write leaves the line out
        return True

    def journal_clear(self) -> None:
        self.cells[self.JOURNAL] = 0

    # supervisor side
    def allow(self, seq: int) -> None:
        self.cells[self.ALLOWED] = seq

    def freeze(self) -> int:
        """Let no further job start; returns the number of the last job that started (0: none)."""
        with self.lock:
            self.cells[self.ALLOWED] = self.cells[self.STARTED]
            return int(self.cells[self.STARTED])

    def cancel(self, seq: int) -> None:
        self.cells[self.CANCEL] = seq

    def started(self) -> int:
        return int(self.cells[self.STARTED])

    def running(self) -> tuple[int, float] | None:
        """(seq, monotonic start) of the job running now, or None between jobs."""
        seq, at, running = self.cells[self.STARTED], self.cells[self.STARTED_AT], self.cells[self.RUNNING]
        return (int(seq), at) if running else None

    def journaled(self) -> list[list[Any]]:
        """The outcomes written since the last report (read once the executor is dead, or while it runs a
        job: it writes the journal only between jobs)."""
        data = self.journal[: int(self.cells[self.JOURNAL])]
        return [orjson.loads(line) for line in data.split(b"\n") if line]


_running = False
_current_seq = 0  # number of the job being run (0: none)
_control: Control | None = None


def _cancel_wanted() -> bool:
    return _control is not None and _control.cancel_wanted(_current_seq)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _running:
        raise JobTimeout("job exceeded its timeout")


def _on_cancel(signum: int, frame: FrameType | None) -> None:
    if _running and _cancel_wanted():
        raise JobCanceled("job canceled")


class ProgressReporter:
    """Writes progress to the job hash and its tenant's event stream (lua/progress.lua), at most every 0.2 s
    per job (the last report always lands)."""

    def __init__(self) -> None:
        self._client: Any = None
        self._script: Any = None
        self._last: dict[str, float] = {}

    def __call__(self, job_id: str, fraction: float, message: str) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last.get(job_id, 0.0) < 0.2:
            return
        self._last[job_id] = now
        try:
            if self._client is None:
                from jobengine.redis_conn import sync_client
                from jobengine.settings import get_settings

                from jobengine.scripts import source

                self._client = sync_client(get_settings())
                self._script = self._client.register_script(source("progress"))
            self._script(keys=[keys.job(job_id)],
                         args=[job_id, orjson.dumps({"fraction": fraction, "message": message})])
        except Exception:  # noqa: BLE001 - progress is best effort; the job must not fail for it
            pass


class Runner:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.functions: dict[str, Callable[..., Any]] = {}
        self.progress = ProgressReporter()

    def function(self, path: str) -> Callable[..., Any]:
        fn = self.functions.get(path)
        if fn is None:
            module_name, _, attr = path.rpartition(".")
            fn = getattr(importlib.import_module(module_name), attr)
            self.functions[path] = fn
        return fn

    def run(self, job: list[Any]) -> tuple[str, Any, float]:
        job_id, type_name, function, payload, timeout, attempt, queue = job[:7]
        global _current_seq
        token = tracing.attach(job[7])
        _current_seq = int(job[8])
        try:
            return self._run(job_id, type_name, function, payload, timeout, attempt, queue,
                             job[9] if len(job) > 9 else None)
        finally:
            _current_seq = 0
            tracing.detach(token)

    def _run(self, job_id: str, type_name: str, function: str, payload: Any, timeout: int, attempt: int,
             queue: str, dependency_results: dict[str, Any] | None = None) -> tuple[str, Any, float]:
        global _running
        job_type = self.catalog.get(type_name)
        try:
            fn = self.function(function)
            arg: Any = job_type.input_model.model_validate(payload) if job_type else payload
        except ValidationError as exc:
            return "invalid", f"payload no longer valid for {type_name}: {exc}", 0.0
        except Exception as exc:  # noqa: BLE001 - ImportError, AttributeError, or the module's own error
            return "invalid", f"cannot import job function {function}: {exc!r}", 0.0
        set_current_job(JobContext(job_id, type_name, queue, attempt, self.progress, dependency_results))
        started = time.perf_counter()
        try:
            signal.setitimer(signal.ITIMER_REAL, float(timeout))
            _running = True
            try:
                if _cancel_wanted():  # the signal came before _running was set
                    raise JobCanceled("job canceled")
                value = fn(arg)
            finally:
                _running = False
                signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json")
            elif job_type is not None:
                value = job_type.result_model.model_validate(value).model_dump(mode="json")
            return "ok", value, time.perf_counter() - started
        except JobTimeout:
            return "timeout", f"JobTimeout: exceeded its timeout of {timeout}s\n{traceback.format_exc()}", \
                time.perf_counter() - started
        except JobCanceled:
            return "canceled", "canceled while running", time.perf_counter() - started
        except BaseException:  # noqa: BLE001 - any job error (KeyboardInterrupt, SystemExit too) is the job's
            # failure, never the executor's end: a death would cost the job no attempt and run it forever
            return "error", traceback.format_exc(), time.perf_counter() - started
        finally:
            set_current_job(None)


def main(conn: Connection, control: Control) -> None:
    """Entry point of the executor process (see the module doc for the protocol)."""
    global _control
    _control = control
    # Stop signals are the supervisor's: Ctrl-C, or a SIGTERM sent to the whole process group (systemd's
    # KillMode, supervisord's stopasgroup, kill -TERM -PGID) must not end the running job; the supervisor
    # drains it, then stops this process by closing its pipe (or SIGKILL past the deadline).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGUSR1, _on_cancel)
    settings = get_settings()
    setup_logging(settings.log_level, settings.log_format)
    tracing.setup_tracing("jobengine-worker")  # for the job's own spans; off unless OTEL_* asks for it
    runner = Runner(get_catalog())
    conn.send_bytes(orjson.dumps(["ready", os.getpid()]))
    while True:
        try:
            batch = orjson.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            run_batch(conn, control, runner, batch)
        except (BrokenPipeError, OSError):
            return


def run_batch(conn: Connection, control: Control, runner: Runner, batch: list[list[Any]]) -> None:
    """Run a batch in order; report when it is done, or once REPORT_SECONDS have passed since the last
    report. Every outcome goes to the journal first, so it survives this process (see Control)."""
    lines: list[bytes] = []
    last_report = time.monotonic()
    for index, job in enumerate(batch):
        seq = int(job[8])
        if control.begin(seq):
            try:
                kind, value, seconds = runner.run(job)
            finally:
                control.end()
        else:
            kind, value, seconds = "skipped", None, 0.0
        line = encode_outcome(seq, job[0], kind, value, seconds)
        lines.append(line)
        now = time.monotonic()
        if not control.journal_add(line) or (now - last_report >= REPORT_SECONDS and index + 1 < len(batch)):
            report(conn, control, lines)
            lines, last_report = [], now
    report(conn, control, lines)


def encode_outcome(seq: int, job_id: str, kind: str, value: Any, seconds: float) -> bytes:
    """One outcome line. A result JSON cannot hold (an int above 64 bits, say) fails its job: encoding it
    here, where it is written anyway, costs the happy path nothing."""
    try:
        return orjson.dumps([seq, job_id, kind, value, seconds])
    except orjson.JSONEncodeError as exc:
        text = f"ResultNotEncodable: the job's return value cannot be stored as JSON: {exc}"
        return orjson.dumps([seq, job_id, "error", text, seconds])


def report(conn: Connection, control: Control, lines: list[bytes]) -> None:
    if lines:
        conn.send_bytes(b"[" + b",".join(lines) + b"]")
    control.journal_clear()  # (if killed just before this, the supervisor reads these outcomes twice: it
    #                           keeps the first)
