"""A claimed job as the worker holds it, and the outcome it records for it (complete.lua's arguments)."""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from jobengine.jobdata import decode_data, encode_exc_string, encode_return_value, parse_ts
from jobengine.scripts import ClaimRow, OutcomeArgs

# The text a job gets when a cancel asked for while it ran turns its requeue or release into canceled.
STOPPED_TEXT = encode_exc_string("canceled while running; it was stopped before it ended")
UNKNOWN_TYPE = "unknown"  # the job type label of a job whose hash cannot be read


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
    dependencies: dict[str, str] | None = None  # {name or id: job id} of a job with dependencies (fan-in)
    dependency_results: dict[str, Any] | None = None  # read before it runs (dependencies.py)

    @property
    def member(self) -> str:
        return f"{self.id}:{self.execution}"

    @classmethod
    def from_row(cls, row: ClaimRow) -> Claimed:
        """Decode one claimed job; raises (ValueError, TypeError, KeyError, zlib.error...) on a hash this worker
        cannot read (stock RQ's pickled data, garbage, missing fields): see undecodable()."""
        function, args, kwargs = decode_data(row.data)  # type: ignore[arg-type]
        meta = orjson.loads(row.meta) if row.meta else {}
        enq, created = parse_ts(row.enqueued_at), parse_ts(row.created_at)
        return cls(
            id=row.id.decode(), queue=row.queue.decode(), execution=row.execution.decode(), attempt=int(row.attempt),
            type=str(meta.get("type", "")), function=str(function), payload=args[0] if args else kwargs,
            timeout=int(row.timeout or 180), retries_left=int(row.retries_left or 0),
            retry_intervals=orjson.loads(row.retry_intervals) if row.retry_intervals else [],
            number_of_retries=int(row.number_of_retries or 0),
            enqueued_at=enq.timestamp() if enq else None, created_at=created.timestamp() if created else None,
            result_ttl=int(row.result_ttl or 86_400), failure_ttl=int(row.failure_ttl or 604_800),
            traceparent=meta.get("traceparent"), tracestate=meta.get("tracestate"),
            dependencies=meta.get("dependencies"),
        )

    @classmethod
    def undecodable(cls, row: ClaimRow) -> Claimed:
        """What the worker knows of a job it cannot decode: enough to fail it alone."""
        try:
            failure_ttl = int(row.failure_ttl or 604_800)
        except ValueError:
            failure_ttl = 604_800
        return cls(id=row.id.decode(errors="replace"), queue=row.queue.decode(errors="replace"),
                   execution=row.execution.decode(), attempt=int(row.attempt), type=UNKNOWN_TYPE, function="",
                   payload=None, timeout=0, retries_left=0, retry_intervals=[], number_of_retries=0,
                   enqueued_at=None, created_at=None, result_ttl=0, failure_ttl=failure_ttl)


@dataclass
class Outcome:
    job: Claimed
    outcome: str  # complete.lua's: finished | failed | retry | canceled | requeue | release | crash
    value: str = ""  # base64 return value or exception text
    arg: float = 0  # TTL of an ended job and its result, run_at for a retry, the most crashes for a crash
    metric: str = ""  # jobengine_jobs_finished_total outcome label, "" for none, CRASH: by the status reached
    run_seconds: float | None = None
    error: str = ""  # exception text of a failed run (for its span)
    trace: dict[str, str] = field(default_factory=dict)  # trace_id, span_id of the run, for the log line

    def args(self) -> OutcomeArgs:
        return OutcomeArgs(self.job.id, self.job.queue, self.job.execution, self.outcome, self.value, self.arg)


CRASH = "crash"  # Outcome.metric of a crash: its label depends on the status complete.lua gives the job


def expires(seconds: float) -> int:
    """`seconds` from now, rounded up to a whole epoch second (a claim's expiry in the StartedJobRegistry):
    Redis keeps a whole number as an integer, so a small registry compares its scores without parsing
    them, and Lua passes it on as it came, where a number it computed would be formatted by sprintf."""
    return math.ceil(time.time() + seconds)


def exit_text(code: int | None) -> str:
    """How an executor process ended, for a crash's error text: its real exit code, or the signal."""
    if code is None:
        return "still running: killed"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def to_outcome(job: Claimed, kind: str, value: Any, seconds: float, *, max_crashes: int) -> Outcome:
    """The outcome of a run: kind is the executor's (ok, error, timeout, canceled, invalid), or crash (its
    executor died while it ran, or just after, with `value` the reason)."""
    if kind == "ok":
        return Outcome(job, "finished", encode_return_value(value), job.result_ttl, "succeeded", seconds)
    if kind == "canceled":
        return Outcome(job, "canceled", encode_exc_string(str(value)), job.failure_ttl, "canceled", seconds)
    text = str(value)
    if kind != "invalid" and job.retries_left > 0:  # a failed, timed-out or crashed run that will run again
        intervals = job.retry_intervals or [0.0]
        delay = float(intervals[min(job.number_of_retries, len(intervals) - 1)])
        return Outcome(job, "retry", encode_exc_string(text), time.time() + delay, "retried", seconds, text)
    if kind == CRASH:  # retries spent: requeued until the crash limit, then failed with this text
        text = f"{text}; it took its executor down more than JOBENGINE_MAX_CRASHES={max_crashes} times"
        return Outcome(job, CRASH, encode_exc_string(text), max_crashes, CRASH, seconds, text)
    label = "timed_out" if kind == "timeout" else "failed"
    return Outcome(job, "failed", encode_exc_string(text), job.failure_ttl, label, seconds, text)
