"""A schedule's specification: what the API and the declared-schedules file accept, validated on write.

The job part (type, payload, queue, job options) is validated against the catalog by the API (the same
models as a submit); this module checks the schedule's own fields.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..catalog import RetryPolicy
from ..settings import QUEUE_NAME_PATTERN

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
MAX_INTERVAL_SECONDS = 366 * 86_400
MAX_CATCH_UP = 1000


class ScheduleSpec(BaseModel):
    """One schedule. Exactly one of `cron` or `interval_seconds`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique per tenant; the id in URLs.")
    type: str = Field(min_length=1, max_length=200, description="A job type of the catalog (GET /v1/job-types).")
    payload: dict[str, Any] = Field(default_factory=dict, description="The job's input, valid for its type.")
    queue: str | None = Field(None, pattern=QUEUE_NAME_PATTERN, description="Declared queue; default the type's.")
    timeout: int | None = Field(None, ge=1, le=7 * 86_400, strict=True, description="Seconds before a run is killed.")
    retry: RetryPolicy | None = Field(None, description="Overrides the job type's retry policy.")
    result_ttl: int | None = Field(None, ge=1, le=365 * 86_400, strict=True,
                                   description="Seconds the result stays readable.")
    cron: str | None = Field(None, max_length=200, description="5 fields (minute hour day month weekday), or 6 "
                             "with seconds first; evaluated in `timezone` (DST: see docs/guarantees.md).")
    timezone: str = Field("UTC", max_length=64, description="IANA time zone of the cron expression.")
    interval_seconds: int | None = Field(None, ge=1, le=MAX_INTERVAL_SECONDS, strict=True,
                                         description="Every this many seconds from start_at (or creation).")
    start_at: datetime | None = Field(None, description="No tick before (RFC 3339; UTC without an offset).")
    end_at: datetime | None = Field(None, description="No tick after; the schedule then ends.")
    jitter_seconds: int = Field(0, ge=0, le=3600, strict=True,
                                description="Each tick fires up to this much later, the same for every process.")
    overlap: Literal["allow", "skip", "queue_one"] = Field(
        "allow", description="While the previous run has not ended: allow (fire anyway), skip (the tick), queue_one "
        "(keep one tick, fired when the previous run ends; more are skipped).")
    catch_up: Literal["skip", "latest", "all"] = Field(
        "skip", description="Ticks later than misfire_grace_seconds (downtime): skip them, fire the latest once, or "
        "fire all of them (the last catch_up_limit).")
    catch_up_limit: int = Field(100, ge=1, le=MAX_CATCH_UP, strict=True,
                                description="catch_up=all: most missed ticks fired.")
    misfire_grace_seconds: int = Field(60, ge=1, le=86_400, strict=True,
                                       description="A tick fired later than this after its time is missed.")
    paused: bool = Field(False, description="A paused schedule fires nothing.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        if len(value.split(" ")) not in (5, 6):
            raise ValueError("5 fields (minute hour day month weekday) or 6 with seconds first")
        try:
            next(CronSim(value, datetime(2026, 1, 1, tzinfo=timezone.utc)))
        except (CronSimError, ValueError, StopIteration) as exc:
            raise ValueError(f"not a valid cron expression: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("start_at", "end_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if not 1970 <= value.year <= 2200:
            raise ValueError("a time between the years 1970 and 2200")
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron or interval_seconds")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self

    def job_doc(self) -> dict[str, Any]:
        """The submission this schedule makes at each tick (validated by the API's submit models)."""
        doc: dict[str, Any] = {"type": self.type, "payload": self.payload}
        for field in ("queue", "timeout", "result_ttl"):
            if (value := getattr(self, field)) is not None:
                doc[field] = value
        if self.retry is not None:
            doc["retry"] = self.retry.model_dump(mode="json")
        return doc


class DeclaredSpec(ScheduleSpec):
    """A schedule of JOBENGINE_SCHEDULES_FILE: a spec and the tenant it belongs to."""

    tenant: str = Field("default", pattern=TENANT_PATTERN)


def field_of(loc: tuple[Any, ...]) -> str:
    """pydantic's error location as a field path ('' for the model itself)."""
    return ".".join(str(p) for p in loc)
