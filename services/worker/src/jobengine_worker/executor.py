"""The executor: a long-lived child process that runs job functions, so a job never runs in the
process that talks to Redis, and a hung or crashing job costs one respawn, not the worker.

Protocol over a pipe, JSON (orjson) both ways, never pickle, one job at a time (so the supervisor
decides what starts: a drain or a cancel of a waiting job needs no message to the executor):
  supervisor -> executor: [id, type, function, payload, timeout, attempt, queue, traceparent, seq]
     traceparent: the run span's W3C context (or null); made current while the job runs, so the
     job's own spans are children of the run span and its log lines carry the trace id
     seq: the job's number from the supervisor (1, 2, ...), for cancel (below)
  executor -> supervisor: [id, kind, value, run_seconds]
     kind: ok (value = result JSON), error / timeout / canceled (value = traceback text),
           invalid (payload failed validation, or no such function: permanent)
Cancel: the supervisor numbers the jobs it sends (seq), writes the number of the
job to cancel into a shared counter, then sends SIGUSR1. The executor cancels only when that number is
the job it runs, and checks it again as the job starts: a signal that lands just before the job starts
still cancels it, and a late signal for a job already done never cancels the next one.
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

from jobengine import tracing
from jobengine.catalog import Catalog, get_catalog
from jobengine.context import JobContext, set_current_job
from jobengine.logs import setup_logging
from jobengine.settings import get_settings


class JobTimeout(Exception):
    """The job ran past its timeout (raised inside the job by a timer signal)."""


class JobCanceled(BaseException):
    """A cancel was asked for while the job ran. BaseException so `except Exception` in jobs doesn't swallow it."""


_running = False
_current_seq = 0  # number of the job being run (0: none)
_cancel_seq: Any = None  # shared with the supervisor: number of the job it wants canceled


def _cancel_wanted() -> bool:
    return _cancel_seq is not None and _current_seq != 0 and _cancel_seq.value == _current_seq


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _running:
        raise JobTimeout("job exceeded its timeout")


def _on_cancel(signum: int, frame: FrameType | None) -> None:
    if _running and _cancel_wanted():
        raise JobCanceled("job canceled")


class ProgressReporter:
    """Writes progress to the job hash, at most every 0.2 s per job (the last report always lands)."""

    def __init__(self) -> None:
        self._client: Any = None
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

                self._client = sync_client(get_settings())
            self._client.hset(
                f"rq:job:{job_id}", "jobengine_progress", orjson.dumps({"fraction": fraction, "message": message})
            )
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
        token = tracing.attach(job[7] if len(job) > 7 else None)
        _current_seq = int(job[8]) if len(job) > 8 else 0
        try:
            return self._run(job_id, type_name, function, payload, timeout, attempt, queue)
        finally:
            _current_seq = 0
            tracing.detach(token)

    def _run(self, job_id: str, type_name: str, function: str, payload: Any, timeout: int, attempt: int,
             queue: str) -> tuple[str, Any, float]:
        global _running
        job_type = self.catalog.get(type_name)
        try:
            fn = self.function(function)
            arg: Any = job_type.input_model.model_validate(payload) if job_type else payload
        except ValidationError as exc:
            return "invalid", f"payload no longer valid for {type_name}: {exc}", 0.0
        except (ImportError, AttributeError) as exc:
            return "invalid", f"cannot import job function {function}: {exc!r}", 0.0
        set_current_job(JobContext(job_id, type_name, queue, attempt, self.progress))
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
        except Exception:  # noqa: BLE001 - any job error is reported, never fatal to the executor
            return "error", traceback.format_exc(), time.perf_counter() - started
        finally:
            set_current_job(None)


def main(conn: Connection, cancel_seq: Any = None) -> None:
    """Entry point of the executor process. cancel_seq: shared unsigned counter (see the module doc)."""
    global _cancel_seq
    _cancel_seq = cancel_seq
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the supervisor, which decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGUSR1, _on_cancel)
    settings = get_settings()
    setup_logging(settings.log_level, settings.log_format)
    tracing.setup_tracing("jobengine-worker")  # for the job's own spans; off unless OTEL_* asks for it
    runner = Runner(get_catalog())
    conn.send_bytes(orjson.dumps(["ready", os.getpid()]))
    while True:
        try:
            job = orjson.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        kind, value, seconds = runner.run(job)
        try:
            conn.send_bytes(orjson.dumps([job[0], kind, value, seconds]))
        except (BrokenPipeError, OSError):
            return
