"""The job catalog: every job type declared once.

A declaration names the input and result models, the default queue, timeout, retry policy,
result TTL and the import path of the function. The API imports declarations only; the worker
imports the functions. Job types come from this library's built-ins, from installed packages
exposing the `jobengine.job_types` entry point, and from JOBENGINE_JOB_TYPE_MODULES.
"""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jobengine.job_types"
# Job type authors: declare numeric input fields StrictInt / StrictFloat (pydantic's), as the built-in
# types do. In pydantic's lax mode JSON true/false passes for 1/0 and "5" for 5; strict numbers refuse
# both (a strict float still takes an integer).
__all__ = ["Catalog", "JobType", "RetryPolicy", "StrictFloat", "StrictInt", "declared_queues", "discover",
           "get_catalog"]


class RetryPolicy(BaseModel):
    """Retries after a failure: delay = min(max_delay, base_delay * factor**(attempt-1)), +/- jitter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: StrictInt = Field(0, ge=0, le=50, description="Retries after the first attempt fails.")
    base_delay: StrictFloat = Field(1.0, ge=0, le=86_400, description="Seconds before the first retry.")
    factor: StrictFloat = Field(2.0, ge=1, le=10, description="Multiplier of the delay per further retry.")
    max_delay: StrictFloat = Field(3600.0, ge=0, le=86_400, description="Upper bound of one delay, seconds.")
    jitter: StrictFloat = Field(0.1, ge=0, le=1, description="Fraction of the delay added or removed at random.")

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Delay in seconds before retry number `retry_number` (1-based)."""
        raw = min(self.max_delay, self.base_delay * self.factor ** max(0, retry_number - 1))
        if self.jitter:
            spread = raw * self.jitter
            raw += (rng or random).uniform(-spread, spread)
        return max(0.0, raw)

    def intervals(self) -> list[float]:
        """One delay per retry, jitter included, fixed at submit time (RQ stores them on the job)."""
        return [round(self.delay(n), 3) for n in range(1, self.max_retries + 1)]


@dataclass(frozen=True)
class JobType:
    name: str
    input_model: type[BaseModel]
    result_model: type[BaseModel]
    function: str  # dotted import path "package.module.function", imported by the worker only
    description: str = ""
    queue: str = "default"
    timeout: int = 60  # seconds
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    result_ttl: int = 86_400  # seconds the result stays readable
    failure_ttl: int = 7 * 86_400
    # largest payload the API accepts for this type, in bytes of its JSON; None: JOBENGINE_MAX_PAYLOAD_BYTES
    max_payload_bytes: int | None = None

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ValueError(f"job type name {self.name!r}: letters, digits, '_', '-', '.' only")
        if "." not in self.function:
            raise ValueError(f"job type {self.name}: function must be a dotted import path")
        if self.timeout <= 0:
            raise ValueError(f"job type {self.name}: timeout must be positive")
        if self.max_payload_bytes is not None and self.max_payload_bytes < 2:
            raise ValueError(f"job type {self.name}: max_payload_bytes must be at least 2 ({{}} is 2 bytes)")

    def schema(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "queue": self.queue,
            "timeout": self.timeout,
            "retry": self.retry.model_dump(),
            "result_ttl": self.result_ttl,
            "max_payload_bytes": self.max_payload_bytes,
            "input_schema": self.input_model.model_json_schema(),
            "result_schema": self.result_model.model_json_schema(),
        }


class Catalog:
    def __init__(self, job_types: Iterable[JobType] = ()) -> None:
        self._types: dict[str, JobType] = {}
        for job_type in job_types:
            self.add(job_type)

    def add(self, job_type: JobType) -> None:
        existing = self._types.get(job_type.name)
        if existing is not None and existing != job_type:
            raise ValueError(f"job type {job_type.name!r} is declared twice ({existing.function}, {job_type.function})")
        self._types[job_type.name] = job_type

    def get(self, name: str) -> JobType | None:
        return self._types.get(name)

    def __getitem__(self, name: str) -> JobType:
        return self._types[name]

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._types.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._types)

    def names(self) -> list[str]:
        return sorted(self._types)


def declared_queues(catalog: Catalog, settings: Settings) -> frozenset[str]:
    """The queues a client may name: the job types' default queues, JOBENGINE_DEFAULT_QUEUE and
    JOBENGINE_QUEUES_DECLARED (the chart's worker pools). Nothing else reaches rq:queues, the queue
    statistics or a metric label through the API."""
    return frozenset({t.queue for t in catalog} | {settings.default_queue} | set(settings.queues_declared))


def _as_job_types(obj: object, origin: str) -> list[JobType]:
    if isinstance(obj, JobType):
        return [obj]
    if isinstance(obj, (list, tuple)) and all(isinstance(t, JobType) for t in obj):
        return list(obj)
    raise TypeError(f"{origin} must be a JobType or a list of JobType, got {type(obj).__name__}")


def discover(modules: Iterable[str] = ()) -> Catalog:
    """Build the catalog from entry points and from the given modules' JOB_TYPES."""
    catalog = Catalog()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name != "builtin", e.name)):
        for job_type in _as_job_types(ep.load(), f"entry point {ep.name}"):
            catalog.add(job_type)
    for module_name in modules:
        module = importlib.import_module(module_name)
        for job_type in _as_job_types(getattr(module, "JOB_TYPES", None), f"{module_name}.JOB_TYPES"):
            catalog.add(job_type)
    return catalog


@lru_cache(maxsize=1)
def get_catalog() -> Catalog:
    from .settings import get_settings

    catalog = discover(get_settings().job_type_modules)
    log.info("job catalog loaded", extra={"job_types": catalog.names()})
    return catalog
