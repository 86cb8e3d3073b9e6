"""What a running job can ask about itself: id, attempt, and a way to report progress."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class JobContext:
    job_id: str
    job_type: str
    queue: str
    attempt: int  # 1 for the first run
    _report: Callable[[str, float, str], None] | None = field(default=None, repr=False)

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
