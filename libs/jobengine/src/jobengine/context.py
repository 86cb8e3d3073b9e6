"""What a running job can ask about itself: id, attempt, a way to report progress, and the results of the jobs
it depends on (fan-in)."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

TOO_LARGE = "__jobengine_too_large__"  # (the worker's marker: dependencies.py)


class DependencyResultsTooLarge(RuntimeError):
    """The dependencies' results exceed JOBENGINE_DEPENDENCY_RESULTS_MAX_BYTES."""


@dataclass
class JobContext:
    job_id: str
    job_type: str
    queue: str
    attempt: int  # 1 for the first run
    _report: Callable[[str, float, str], None] | None = field(default=None, repr=False)
    _dependency_results: dict[str, Any] | None = field(default=None, repr=False)

    def dependency_results(self) -> dict[str, Any]:
        """{name (in a flow) or job id (depends_on): its result} of the jobs this one depends on; None for one
        that did not finish (a dependency with on: any may have failed). {} for a job without dependencies.
        Raises DependencyResultsTooLarge past JOBENGINE_DEPENDENCY_RESULTS_MAX_BYTES (base64 bytes, together)."""
        results = self._dependency_results or {}
        if TOO_LARGE in results:
            raise DependencyResultsTooLarge(f"the dependencies' results take {results[TOO_LARGE]} bytes, more than "
                                            "JOBENGINE_DEPENDENCY_RESULTS_MAX_BYTES")
        return dict(results)

    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress (0..1); readable through GET /v1/jobs/{id}. Cheap to call often: it is rate-limited."""
        if self._report is not None:
            self._report(self.job_id, max(0.0, min(1.0, float(fraction))), message[:500])


_current: ContextVar[JobContext | None] = ContextVar("jobengine_current_job", default=None)


def current_job() -> JobContext:
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("current_job() is only available inside a running job")
    return ctx


def set_current_job(ctx: JobContext | None) -> None:
    _current.set(ctx)
