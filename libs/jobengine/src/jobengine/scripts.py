"""The Lua scripts that move jobs between states atomically, loaded for a sync or an async client, and the
interface of the worker's scripts (claim, complete, complete_claim, recover, schedule): each one's
arguments built and its reply parsed here, once, instead of positional arrays mirrored by hand."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

from . import keys

SCRIPT_NAMES = ("enqueue", "claim", "complete", "complete_claim", "recover", "schedule", "cancel", "requeue")


INCLUDE = "--!include "


KEY_PREFIX = re.compile(r"\bK\.(\w+)")


def source(name: str) -> str:
    """A script's text, with each `--!include <file>` line replaced by lua/<file>.lua (Redis scripts
    cannot load one another: shared functions are inlined), and each key prefix `K.<name>` by its string
    from keys.LUA_PREFIXES: spelled once, and a constant in the script (no table built at each call)."""
    return KEY_PREFIX.sub(_prefix, _included(name))


def _included(name: str) -> str:
    lines = []
    for line in resources.files("jobengine").joinpath(f"lua/{name}.lua").read_text().splitlines(keepends=True):
        lines.append(_included(line[len(INCLUDE):].split()[0]) if line.startswith(INCLUDE) else line)
    return "".join(lines)


def _prefix(match: re.Match[str]) -> str:
    return f"'{keys.LUA_PREFIXES[match.group(1)]}'"  # (a KeyError: a script names a prefix keys.py lacks)


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
