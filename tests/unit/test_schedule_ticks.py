"""Tick math of schedules (jobengine.schedules.ticks): cron in a time zone with its DST changes pinned (cronsim's
behaviour, as Debian's cron), the seconds field, interval anchoring, start/end, deterministic jitter, and the
catch-up policy's decisions."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from jobengine.schedules.spec import ScheduleSpec
from jobengine.schedules.ticks import Rule, decide, jitter

BERLIN = ZoneInfo("Europe/Berlin")


def spec(**fields: object) -> ScheduleSpec:
    return ScheduleSpec.model_validate({"name": "s", "type": "counted", **fields})


def local(ts: int, zone: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(ts, zone).isoformat()


def ticks(s: ScheduleSpec, after: datetime, n: int, created: float = 0) -> list[str]:
    zone = ZoneInfo(s.timezone)
    return [local(t, zone) for t in Rule.of(s, created).upcoming(after.timestamp(), n)]


# --- DST, Europe/Berlin: spring 2026-03-29 02:00 -> 03:00, autumn 2026-10-25 03:00 -> 02:00 ---

def test_spring_a_daily_time_that_does_not_exist_runs_at_the_next_that_does() -> None:
    s = spec(cron="30 2 * * *", timezone="Europe/Berlin")
    assert ticks(s, datetime(2026, 3, 27, 12, tzinfo=BERLIN), 3) == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_autumn_a_daily_time_in_the_repeated_hour_runs_once() -> None:
    s = spec(cron="30 2 * * *", timezone="Europe/Berlin")
    assert ticks(s, datetime(2026, 10, 23, 12, tzinfo=BERLIN), 3) == [
        "2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_spring_hourly_skips_the_missing_hour() -> None:
    s = spec(cron="0 * * * *", timezone="Europe/Berlin")
    assert ticks(s, datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 3) == [
        "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]


def test_autumn_hourly_runs_in_both_repeated_hours() -> None:
    s = spec(cron="0 * * * *", timezone="Europe/Berlin")
    got = ticks(s, datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN), 4)
    assert got == ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
                   "2026-10-25T03:00:00+01:00"]


def test_autumn_ticks_are_an_hour_apart_in_real_time() -> None:
    s = spec(cron="0 * * * *", timezone="Europe/Berlin")
    real = Rule.of(s, 0).upcoming(datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN).timestamp(), 4)
    assert [b - a for a, b in zip(real, real[1:])] == [3600, 3600, 3600]


def test_utc_is_the_default_zone() -> None:
    s = spec(cron="0 12 * * *")
    assert ticks(s, datetime(2026, 3, 29, tzinfo=timezone.utc), 1) == ["2026-03-29T12:00:00+00:00"]


# --- seconds, intervals, start and end ---

def test_a_sixth_field_first_is_seconds() -> None:
    s = spec(cron="*/15 * * * * *")
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert [t - int(start.timestamp()) for t in Rule.of(s, 0).upcoming(start.timestamp(), 4)] == [15, 30, 45, 60]


def test_interval_ticks_are_anchored_not_now_plus_interval() -> None:
    s = spec(interval_seconds=10)
    rule = Rule.of(s, created_at=1000.7)  # anchor: the creation second
    assert rule.next_after(1000.7) == 1010
    assert rule.next_after(1013.2) == 1020  # a late look does not shift the grid
    assert rule.next_after(1020) == 1030


def test_interval_from_start_at_and_end_at_ends_it() -> None:
    start = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    s = spec(interval_seconds=3600, start_at=start.isoformat(), end_at="2026-05-01T14:30:00Z")
    rule = Rule.of(s, created_at=0)
    assert rule.next_after(0) == int(start.timestamp())
    assert rule.upcoming(0, 10) == [int(start.timestamp()) + k * 3600 for k in range(3)]
    assert rule.next_after(int(start.timestamp()) + 2 * 3600) is None


def test_cron_respects_start_at() -> None:
    s = spec(cron="0 * * * *", start_at="2026-05-01T12:30:00Z")
    assert local(Rule.of(s, 0).next_after(0), ZoneInfo("UTC")) == "2026-05-01T13:00:00+00:00"


@pytest.mark.parametrize("fields, field", [
    ({"cron": "* * * *"}, "cron"), ({"cron": "61 * * * *"}, "cron"), ({"cron": "0 0 30 2 *"}, "cron"),
    ({"cron": "* * * * *", "timezone": "Nowhere/City"}, "timezone"), ({"interval_seconds": 0}, "interval_seconds"),
    ({}, ""), ({"cron": "* * * * *", "interval_seconds": 5}, ""),
    ({"interval_seconds": 5, "start_at": "2026-01-02T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"}, ""),
    ({"interval_seconds": 5, "start_at": "9999-01-01T00:00:00Z"}, "start_at"),
])
def test_invalid_specs_name_the_field(fields: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec(**fields)
    assert ".".join(map(str, info.value.errors()[0]["loc"])) == field


# --- jitter ---

def test_jitter_is_the_same_everywhere_and_within_bounds() -> None:
    values = [jitter("t:s", tick, 30) for tick in range(1000, 1100)]
    assert values == [jitter("t:s", tick, 30) for tick in range(1000, 1100)]  # a pure function of (schedule, tick)
    assert all(0 <= v < 30 for v in values) and len(set(values)) > 50
    assert jitter("t:other", 1000, 30) != jitter("t:s", 1000, 30)
    assert jitter("t:s", 1000, 0) == 0


def test_a_tick_is_due_only_after_its_jitter() -> None:
    s = spec(interval_seconds=60, jitter_seconds=20)
    rule = Rule.of(s, 0)
    j = jitter("t:s", 600, 20)
    assert decide(rule, s, "t:s", 600, now=600 + j - 0.01).kind == "wait"
    step = decide(rule, s, "t:s", 600, now=600 + j + 0.5)
    assert step.kind == "fire" and step.tick == 600 and step.next_tick == 660 and step.late == pytest.approx(0.5)


# --- catch-up: ticks later than the misfire grace ---

def test_on_time_ticks_fire_in_order_one_step_each() -> None:
    s = spec(interval_seconds=10, misfire_grace_seconds=60)
    step = decide(Rule.of(s, 0), s, "t:s", 100, now=125)  # 100, 110, 120 due; none missed
    assert (step.kind, step.tick, step.next_tick) == ("fire", 100, 110)


@pytest.mark.parametrize("catch_up, expected", [
    ("skip", ("skip", 100, 180, 8)),  # 100..170 missed (180 is within the grace): none fires
    ("latest", ("skip", 100, 170, 7)),  # the latest missed (170) fires, the others not
    ("all", ("fire", 100, 110, 0)),  # each fires, oldest first
])
def test_missed_ticks_by_policy(catch_up: str, expected: tuple) -> None:
    s = spec(interval_seconds=10, misfire_grace_seconds=30, catch_up=catch_up)
    step = decide(Rule.of(s, 0), s, "t:s", 100, now=205)  # due: 100..200; missed: more than 30 s late (< 175)
    assert (step.kind, step.tick, step.next_tick, step.skipped) == expected


def test_latest_then_fires_the_last_missed_tick() -> None:
    s = spec(interval_seconds=10, misfire_grace_seconds=30, catch_up="latest")
    step = decide(Rule.of(s, 0), s, "t:s", 170, now=205)
    assert (step.kind, step.tick, step.next_tick) == ("fire", 170, 180)


def test_all_is_bounded_by_the_catch_up_limit() -> None:
    s = spec(interval_seconds=10, misfire_grace_seconds=30, catch_up="all", catch_up_limit=3)
    step = decide(Rule.of(s, 0), s, "t:s", 100, now=205)  # 8 missed: the oldest 5 skipped, the last 3 fire
    assert (step.kind, step.tick, step.next_tick, step.skipped) == ("skip", 100, 150, 5)
    step = decide(Rule.of(s, 0), s, "t:s", 150, now=205)
    assert (step.kind, step.tick, step.next_tick) == ("fire", 150, 160)


def test_skip_over_a_long_downtime_lands_on_the_grid() -> None:
    s = spec(interval_seconds=1, misfire_grace_seconds=5, catch_up="skip")
    rule, now = Rule.of(s, 0), 1_000 + 86_400.5
    # missed: more than 5 s late, so ticks 1000..87395; the first within the grace is 87396. A step looks at
    # 10,000 ticks at most (the event loop is not held long): the day is skipped in 9 steps
    tick, skipped, steps = 1_000, 0, 0
    while (step := decide(rule, s, "t:s", tick, now)).kind == "skip":
        tick, skipped, steps = step.next_tick, skipped + step.skipped, steps + 1
    assert (tick, skipped, steps) == (87_396, 86_396, 9)
    assert step.kind == "fire" and step.tick == 87_396


def test_a_per_second_cron_catch_up_step_is_short() -> None:
    s = spec(cron="* * * * * *", misfire_grace_seconds=5, catch_up="skip")
    start = int(datetime(2026, 3, 29, tzinfo=BERLIN).timestamp())  # across the spring change, too
    step = decide(Rule.of(s, 0), s, "t:s", start, now=start + 86_400)
    assert step.kind == "skip" and step.skipped == 10_000 and step.next_tick == start + 10_000


def test_an_ended_schedule_has_no_next_tick_after_its_last() -> None:
    s = spec(interval_seconds=10, end_at="1970-01-01T00:02:00Z")
    step = decide(Rule.of(s, 0), s, "t:s", 120, now=121)
    assert step.kind == "fire" and step.next_tick is None
