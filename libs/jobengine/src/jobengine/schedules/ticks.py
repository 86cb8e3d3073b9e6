"""Tick math: when a schedule fires, computed from the schedule (never from now + interval), and what the
catch-up policy does with ticks that are late. Pure functions: the firing loop, the API and the unit tests
share them.

Ticks are whole epoch seconds. Cron ticks come from cronsim in the schedule's time zone (DST as Debian's
cron: a time that does not exist runs at the next one that does, a fixed time in a repeated hour runs once;
docs/guarantees.md); interval ticks are anchor + k * interval, the anchor being start_at or the creation time.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim

from .spec import ScheduleSpec

# due ticks one decision looks at: a longer downtime is worked through in several steps, so that no step holds
# the API's event loop long (10,000 ticks of a per-second cron: about 30 ms)
SCAN_CAP = 10_000


@dataclass(frozen=True)
class Rule:
    """The ticks of one schedule."""

    cron: str | None
    zone: ZoneInfo
    interval: int | None
    anchor: int  # interval schedules: the first tick
    start: int | None  # no tick before
    end: float | None  # no tick after

    @classmethod
    def of(cls, spec: ScheduleSpec, created_at: float) -> Rule:
        start = math.ceil(spec.start_at.timestamp()) if spec.start_at else None
        return cls(spec.cron, ZoneInfo(spec.timezone), spec.interval_seconds,
                   start if start is not None else math.floor(created_at), start,
                   spec.end_at.timestamp() if spec.end_at else None)

    def next_after(self, t: float) -> int | None:
        """The first tick strictly after t; None when the schedule has ended by then."""
        if self.start is not None:
            t = max(t, self.start - 1)
        if self.interval is not None:
            tick = self.anchor if t < self.anchor else self.anchor + (math.floor((t - self.anchor) / self.interval)
                                                                      + 1) * self.interval
        else:
            assert self.cron is not None
            try:
                tick = int(next(CronSim(self.cron, datetime.fromtimestamp(math.floor(t), self.zone))).timestamp())
            except StopIteration:  # (an expression that never matches, such as 30 February)
                return None
        if self.end is not None and tick > self.end:
            return None
        return tick

    def ticks_after(self, t: float) -> Iterator[int]:
        """The ticks strictly after t, in order, until the schedule ends (one cron iterator for all of them:
        a new one per tick costs ten times more)."""
        if self.interval is not None:
            tick = self.next_after(t)
            while tick is not None:
                yield tick
                tick = self.next_after(tick)
            return
        assert self.cron is not None
        if self.start is not None:
            t = max(t, self.start - 1)
        for when in CronSim(self.cron, datetime.fromtimestamp(math.floor(t), self.zone)):
            tick = int(when.timestamp())
            if self.end is not None and tick > self.end:
                return
            yield tick

    def upcoming(self, after: float, count: int) -> list[int]:
        return list(itertools.islice(self.ticks_after(after), count))


def jitter(member: str, tick: int, seconds: int) -> float:
    """The delay of one tick, in [0, seconds): from a hash of (schedule, tick), so every process agrees."""
    if not seconds:
        return 0.0
    digest = hashlib.sha256(f"{member}:{tick}".encode()).digest()
    return round(int.from_bytes(digest[:8], "big") / 2**64 * seconds, 3)


@dataclass(frozen=True)
class Step:
    """What to do with a schedule now. kind: fire (tick), skip (`skipped` ticks from tick, as missed), or
    wait (nothing due: put it back at `score`). next_tick: the schedule's next tick after the step."""

    kind: str
    tick: int
    next_tick: int | None
    skipped: int = 0
    late: float = 0.0  # fire: seconds since the tick (plus its jitter)

    def next_score(self, member: str, spec: ScheduleSpec) -> float | str:
        if self.next_tick is None:
            return ""
        return self.next_tick + jitter(member, self.next_tick, spec.jitter_seconds)


def decide(rule: Rule, spec: ScheduleSpec, member: str, next_tick: int, now: float) -> Step:
    """The step for a schedule whose next tick is `next_tick`. A tick is due once now >= tick + jitter, and
    missed when later than misfire_grace_seconds after that. Missed ticks by catch_up: skip (none of them
    fires), latest (only the last missed one fires), all (each fires, at most catch_up_limit, the most recent).
    Due ticks that are not missed always fire, one step each, in order."""
    due: list[tuple[int, float]] = []
    after: int | None = None  # the first tick not due (or not looked at)
    for t in itertools.chain((next_tick,), rule.ticks_after(next_tick)):
        at = t + jitter(member, t, spec.jitter_seconds)
        if at > now or len(due) >= SCAN_CAP:
            after = t
            break
        due.append((t, at))
    if not due:
        return Step("wait", next_tick, next_tick)
    grace = spec.misfire_grace_seconds
    missed = 0
    for _, at in due:
        if now - at <= grace:
            break
        missed += 1

    def following(i: int) -> int | None:
        return due[i][0] if i < len(due) else after

    if missed == 0:
        return Step("fire", due[0][0], following(1), late=now - due[0][1])
    if spec.catch_up == "skip":
        return Step("skip", due[0][0], following(missed), skipped=missed)
    keep = 1 if spec.catch_up == "latest" else spec.catch_up_limit
    if missed > keep:
        return Step("skip", due[0][0], following(missed - keep), skipped=missed - keep)
    return Step("fire", due[0][0], following(1), late=now - due[0][1])
