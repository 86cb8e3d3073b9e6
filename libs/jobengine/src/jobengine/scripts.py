"""The Lua scripts that move jobs between states atomically, loaded for a sync or an async client, and the
interface of each: its arguments built and its reply parsed here, once (the worker's claim, complete,
complete_claim, recover, schedule; the API's and the Producer's enqueue, cancel, requeue), instead of
positional arrays mirrored by hand."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

from . import keys
from .jobdata import encode_exc_string

SCRIPT_NAMES = ("enqueue", "claim", "complete", "complete_claim", "recover", "schedule", "cancel", "requeue",
                "take_schedules", "fire", "bulk", "flow", "progress")


INCLUDE = "--!include "


KEY_PREFIX = re.compile(r"\bK\.(\w+)")


LUA_SETTINGS = ("events_max_len",)  # K.<name> that are settings, not key prefixes
EVENTS = "_events"  # put before the scripts that change a job's state: one line emits each change's event
EMITS = re.compile(r"\b(emit\w*|events_batched|events_written)\(")  # a script (with its includes) that calls these


def source(name: str) -> str:
    """A script's text, with each `--!include <file>` line replaced by lua/<file>.lua (Redis scripts
    cannot load one another: shared functions are inlined), and each key prefix `K.<name>` by its string
    from keys.LUA_PREFIXES: spelled once, and a constant in the script (no table built at each call).
    The scripts that change a job's state (those calling an emit function) start with lua/_events.lua (the events
    stream's emit functions)."""
    text = _included(name)
    return KEY_PREFIX.sub(_prefix, (_included(EVENTS) if EMITS.search(text) else "") + text)


def _included(name: str) -> str:
    lines = []
    for line in resources.files("jobengine").joinpath(f"lua/{name}.lua").read_text().splitlines(keepends=True):
        lines.append(_included(line[len(INCLUDE):].split()[0]) if line.startswith(INCLUDE) else line)
    return "".join(lines)


# K.<name> constants besides the key prefixes: the error text of a job ended because a dependency it requires
# ended failed or canceled (_dependents.lua), base64 zlib as RQ's exc_string
LUA_CONSTANTS = {**keys.LUA_PREFIXES, "dependency_failed": encode_exc_string(
    "DependencyFailed: a dependency this job requires ended failed or canceled (see its depends_on and "
    "on_dependency_failure; retrying that dependency revives this job)")}


def _prefix(match: re.Match[str]) -> str:
    if match.group(1) in LUA_SETTINGS:  # a constant of the scripts too, read once as they load
        return f"'{events_max_len()}'"
    return f"'{LUA_CONSTANTS[match.group(1)]}'"  # (a KeyError: a script names a prefix keys.py lacks)


def events_max_len() -> int:
    """JOBENGINE_EVENTS_MAX_LEN (Settings.events_max_len): read from the environment here, as the scripts load
    in the API, the worker and the Producer alike (the library's Settings need not be built for it)."""
    value = int(os.environ.get("JOBENGINE_EVENTS_MAX_LEN", "10000"))
    if value < 1:
        raise ValueError("JOBENGINE_EVENTS_MAX_LEN must be at least 1")
    return value


@dataclass(frozen=True)
class Scripts:
    """Registered scripts (redis-py Script or AsyncScript objects): EVALSHA, falling back to EVAL."""

    enqueue: Any
    claim: Any
    complete: Any
    complete_claim: Any
    recover: Any
    schedule: Any
    cancel: Any
    requeue: Any
    take_schedules: Any
    fire: Any
    bulk: Any
    flow: Any
    progress: Any

    @classmethod
    def register(cls, client: Any) -> Scripts:
        return cls(**{name: client.register_script(source(name)) for name in SCRIPT_NAMES})


# ----- the worker's scripts: arguments -----

class OutcomeArgs(NamedTuple):
    """complete.lua's 6 arguments of one job (see complete.lua for the outcomes and what value and arg hold)."""

    job_id: str
    queue: str
    execution: str
    outcome: str
    value: str
    arg: float | int | str


def _outcomes(outcomes: Iterable[OutcomeArgs]) -> list[Any]:
    flat: list[Any] = []
    for o in outcomes:
        flat += o
    return flat


def claim_args(*, expiry: int, stamp: str, worker: str, execution: str, limit: int, queues: Sequence[str],
               again: bool = False) -> list[Any]:
    """again: this call (same execution id) was sent before and its reply lost: answer what it claimed."""
    return [expiry, stamp, worker, execution, limit, "1" if again else "0", *queues]


def complete_args(*, now: float, stamp: str, worker: str, outcomes: Iterable[OutcomeArgs]) -> list[Any]:
    return [now, stamp, worker, *_outcomes(outcomes)]


def complete_claim_args(*, now: float, stamp: str, worker: str, expiry: int, execution: str, limit: int,
                        queues: Sequence[str], outcomes: Iterable[OutcomeArgs], again: bool = False) -> list[Any]:
    return [now, stamp, worker, expiry, execution, limit, "1" if again else "0", len(queues), *queues,
            *_outcomes(outcomes)]


def recover_args(*, now: float, stamp: str, max_recoveries: int, limit: int, failed_text: str,
                 canceled_text: str) -> list[Any]:
    return [now, stamp, max_recoveries, limit, failed_text, canceled_text]


def schedule_args(*, now: float, stamp: str, limit: int) -> list[Any]:
    return [now, stamp, limit]


# ----- the worker's scripts: replies -----

class ClaimRow(NamedTuple):
    """One job claimed by claim.lua, as Redis answered it (bytes, or None for a field the hash lacks)."""

    id: bytes
    queue: bytes
    execution: bytes
    attempt: int
    data: bytes | None
    timeout: bytes | None
    meta: bytes | None
    retries_left: bytes | None
    retry_intervals: bytes | None
    number_of_retries: bytes | None
    enqueued_at: bytes | None
    created_at: bytes | None
    result_ttl: bytes | None
    failure_ttl: bytes | None


class Recovered(NamedTuple):
    job_id: str
    queue: str
    status: str


def parse_claim(reply: list[list[Any]]) -> list[ClaimRow]:
    # (Lua's false, for a field a hash lacks, arrives as None; a row short of fields is padded the same way)
    return [ClaimRow._make(row) if len(row) == 14 else ClaimRow._make([*row, *[None] * 14][:14]) for row in reply]


def parse_statuses(reply: list[Any]) -> list[str]:
    """complete.lua's answer: the new status of each job (or lost, gone), in the order given."""
    return [s.decode() if isinstance(s, bytes) else str(s) for s in reply]


def parse_complete_claim(reply: list[Any]) -> tuple[list[str], list[ClaimRow]]:
    statuses, rows = reply
    return parse_statuses(statuses), parse_claim(rows)


def parse_recover(reply: list[bytes]) -> list[Recovered]:
    return [Recovered(*(v.decode() for v in reply[i: i + 3])) for i in range(0, len(reply), 3)]


def parse_schedule(reply: list[Any]) -> tuple[int, float]:
    """(jobs moved, earliest run_at still scheduled, or -1 for none)."""
    moved, earliest = reply
    return int(moved), float(earliest)


# ----- the submit and change scripts (enqueue, cancel, requeue): the API's store and the Producer -----

class EnqueueReply(NamedTuple):
    """enqueue.lua's answer. code: WRITTEN (job = the id), REPEAT (an idempotent repeat: job = the first
    request's id, fingerprint its body's, status its RQ status or '' once expired), QUEUE_FULL (number = the
    queue's length), RATE_LIMITED (number = ms until a token), TENANT_QUOTA (number = jobs held)."""

    code: int
    job: str = ""
    fingerprint: str = ""
    status: str = ""
    number: int = 0


ENQUEUE_WRITTEN, ENQUEUE_REPEAT, ENQUEUE_QUEUE_FULL, ENQUEUE_RATE_LIMITED, ENQUEUE_TENANT_QUOTA = 1, 0, 2, 3, 4


def enqueue_keys(job_id: str, queue: str, idempotency: str = "", rate_limit: str = "",
                 backlog: str = "", tenant_index: str = "", also_shared_index: bool = False) -> list[str]:
    """KEYS of enqueue.lua: the job's and its queue's keys, then the optional idempotency key, the API
    key's token bucket, the tenant's backlog counter and the tenant's listing index ('' for none: the job goes
    to the shared index instead); also_shared_index: to the shared one as well."""
    job_keys = [keys.job(job_id), keys.queue(queue), keys.scheduled_registry(queue), keys.notify(queue),
                idempotency, rate_limit, backlog, tenant_index]
    if also_shared_index:
        job_keys.append(keys.JOB_INDEX)
    return job_keys


def enqueue_args(job_id: str, queue: str, fields: Iterable[Any], run_at: float = 0, index_max_age: int = 0,
                 idempotency_ttl: int = 0, fingerprint: str = "", max_backlog: int = 0, rate: float = 0,
                 burst: int = 0, quota: int = 0) -> list[Any]:
    """ARGV of enqueue.lua (see the script): `fields`, the job hash as a flat field, value sequence.
    (enqueue_keys and this take their arguments by position too: the API calls them on every submit.)"""
    args = [job_id, run_at, index_max_age, idempotency_ttl, fingerprint, keys.queue(queue), max_backlog, rate,
            burst, quota]
    args.extend(fields)
    return args


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def parse_enqueue(reply: list[Any]) -> EnqueueReply:
    code = int(reply[0])
    if code == ENQUEUE_WRITTEN:
        return EnqueueReply(code, _text(reply[1]))
    if code == ENQUEUE_REPEAT:
        return EnqueueReply(code, _text(reply[1]), _text(reply[2]) if len(reply) > 2 else "",
                            _text(reply[3]) if len(reply) > 3 else "")
    return EnqueueReply(code, number=int(reply[1]))


def cancel_args(*, job_id: str, now: float, stamp: str, message: str, owner: str, token: str) -> list[Any]:
    """ARGV of cancel.lua. owner: the tenant the job must belong to ('' checks nothing); token: this call's,
    so a repeat of it (its reply lost) answers as the first run did."""
    return [job_id, now, stamp, message, owner, token]


def requeue_args(*, job_id: str, stamp: str, owner: str, token: str) -> list[Any]:
    """ARGV of requeue.lua (owner and token as for cancel_args)."""
    return [job_id, stamp, owner, token]


def bulk_args(*, op_id: str, owner: str, now: float, stamp: str, limit: int, lease_seconds: float,
              cancel_text: str) -> list[Any]:
    """ARGV of bulk.lua: one step of operation op_id under owner's lease."""
    return [op_id, owner, now, stamp, limit, lease_seconds, cancel_text]


class BulkStep(NamedTuple):
    state: str  # running | done | canceled | leased | missing
    examined: int
    matched: int


def parse_bulk(reply: list[Any]) -> BulkStep:
    return BulkStep(_text(reply[0]), int(reply[1]), int(reply[2]))


def parse_change(reply: list[Any]) -> tuple[str, str]:
    """(result, status) of cancel.lua (canceled | stopping | terminal | missing) or requeue.lua (queued |
    not_failed | missing)."""
    return _text(reply[0]), _text(reply[1])


# ----- schedules (jobengine.schedules): take_schedules.lua and fire.lua -----

def take_args(*, now: float, lease_end: float, limit: int) -> list[Any]:
    return [now, lease_end, limit]


def parse_take(reply: list[Any]) -> tuple[list[str], float]:
    """(members taken, earliest score left in the due zset or -1)."""
    members, earliest = reply
    return [_text(m) for m in members], float(earliest)


FIRE_WRITTEN, FIRE_REPEAT, FIRE_QUEUE_FULL, FIRE_TENANT_QUOTA = 1, 0, 2, 4
FIRE_STALE, FIRE_SKIPPED_OVERLAP, FIRE_SKIPPED_MISSED, FIRE_BUFFERED, FIRE_BUFFER_WAITS = 10, 11, 12, 13, 14
FIRE_BROKEN, FIRE_RESCORED = 15, 16
FIRE_STEPS = ("fire", "pending", "skip", "broken", "rescore", "trigger")
NO_JOB_KEYS: tuple[str, ...] = ()  # steps that write no job pass no enqueue KEYS


def fire_keys(schedule: str, runs: str, job_keys: Sequence[str] = NO_JOB_KEYS) -> list[str]:
    """KEYS of fire.lua: the schedule's hash and runs list, then all of enqueue.lua's KEYS (enqueue_keys; the
    tick's idempotency key in place of an Idempotency-Key)."""
    return [schedule, runs, *job_keys]


def fire_args(*, step: str, member: str, version: str, next_read: str, tick: float, next_tick: str,
              next_score: float | str, overlap: str, now: float, runs_kept: int, retry_score: float,
              extra: str | int = "", job_args: Sequence[Any] = ()) -> list[Any]:
    """ARGV of fire.lua (see the script). next_tick: '' when the schedule ends after this step; job_args:
    enqueue.lua's ARGV (enqueue_args) for the steps that write a job."""
    assert step in FIRE_STEPS, step
    return [step, member, version, next_read, tick, next_tick, next_score, overlap, now, runs_kept, retry_score,
            extra, *job_args]


def parse_fire(reply: list[Any]) -> tuple[int, str]:
    """(code, job id or number as text): see fire.lua's codes (FIRE_*)."""
    return int(reply[0]), _text(reply[1]) if len(reply) > 1 else ""


def set_enqueue_idempotency(job_keys: list[str], job_args: list[Any], key: str, ttl: int) -> None:
    """Give an enqueue call (enqueue_keys, enqueue_args) an idempotency key of another namespace than the
    users' Idempotency-Key (a schedule's tick): KEYS[5] and ARGV[4] of enqueue.lua."""
    job_keys[4] = key
    job_args[3] = ttl


# ----- workflows: flow.lua (POST /v1/flows, and POST /v1/jobs with depends_on) -----

DEFERRED_SCORE = 9_999_999_999  # a deferred job's score in rq:deferred:<queue> (as _dependents.lua's)
FLOW_WRITTEN, FLOW_QUOTA, FLOW_MISSING, FLOW_REPEAT = 1, 4, 5, 6


class FlowNodeArgs(NamedTuple):
    """One job of flow.lua: enqueue.lua's KEYS and ARGV (enqueue_keys, enqueue_args: for a job with
    dependencies, its KEYS[3] the queue's deferred registry and run_at DEFERRED_SCORE), its dependencies as
    (id, 'success' | 'any') and what a required dependency's failure does to it ('fail' | 'cancel')."""

    keys: Sequence[str]
    args: Sequence[Any]
    depends_on: Sequence[tuple[str, str]]
    on_failure: str = "fail"


def flow_args(*, flow_id: str, tenant: str, stamp: str, now: float, flow_fields: Sequence[Any], counter: str,
              quota: int, nodes: Iterable[FlowNodeArgs], idempotency: str = "", idempotency_ttl: int = 0,
              fingerprint: str = "") -> list[Any]:
    """ARGV of flow.lua (see the script). flow_id '' writes one job (nodes: one); idempotency: a flow's key
    (keys.idempotency of the flow namespace), bound to `fingerprint` for idempotency_ttl seconds."""
    nodes = list(nodes)
    args: list[Any] = [flow_id, tenant, stamp, now, len(flow_fields), *flow_fields, counter, quota, idempotency,
                       idempotency_ttl, fingerprint, len(nodes)]
    for node in nodes:
        args += [len(node.keys), len(node.args), len(node.depends_on), node.on_failure, *node.keys, *node.args]
        for dep, on in node.depends_on:
            args += [dep, on]
    return args


class FlowReply(NamedTuple):
    """flow.lua's answer: code FLOW_WRITTEN (id: the flow's or the job's, statuses: each node's RQ status),
    FLOW_REPEAT (id: the flow its idempotency key names, statuses: (that request's fingerprint,)),
    FLOW_MISSING (id: the dependency that does not exist for this tenant), FLOW_QUOTA (number: jobs held), or
    for one job enqueue.lua's other answers (enqueue: parsed as parse_enqueue)."""

    code: int
    id: str = ""
    statuses: tuple[str, ...] = ()
    number: int = 0
    enqueue: EnqueueReply | None = None


def parse_flow(reply: list[Any]) -> FlowReply:
    code = int(reply[0])
    if code == FLOW_WRITTEN:
        return FlowReply(code, _text(reply[1]), tuple(_text(s) for s in reply[2:]))
    if code == FLOW_MISSING:
        return FlowReply(code, _text(reply[1]))
    if code == FLOW_REPEAT:
        return FlowReply(code, _text(reply[1]), (_text(reply[2]),))
    if code == FLOW_QUOTA and len(reply) == 2:
        return FlowReply(code, number=int(reply[1]), enqueue=parse_enqueue(reply))
    return FlowReply(code, enqueue=parse_enqueue(reply))
