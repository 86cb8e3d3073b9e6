"""jobengine-client: the Python SDK of the jobengine HTTP API (sync Client, asyncio AsyncClient)."""

from .aio import AsyncClient
from .client import Client
from .errors import (ApiError, Conflict, Forbidden, InvalidRequest, JobengineError, JobFailed, NotFound,
                     OperationTimeout, TooManyRequests, TransportError, Unauthorized, Unavailable, WaitTimeout)
from .models import (TERMINAL, Accepted, BatchItem, BatchResult, CurrentJob, Job, JobSummary, JobTypeInfo,
                     Operation, OperationCounts, Page, Progress, QueuePause, QueueStats, Schedule, ScheduleDetail,
                     SchedulePage, ScheduleRun, StatusChange, Triggered, WorkerInfo)
from .retry import NO_RETRY, RetryPolicy
from .typed import JobSpec, NewJob

__all__ = [
    "Accepted", "ApiError", "AsyncClient", "BatchItem", "BatchResult", "Client", "Conflict", "Forbidden",
    "InvalidRequest", "Job", "JobFailed", "JobSpec", "JobSummary", "JobTypeInfo", "JobengineError", "NO_RETRY",
    "NewJob", "NotFound", "Page", "Progress", "QueueStats", "RetryPolicy", "StatusChange", "TERMINAL",
    "TooManyRequests", "TransportError", "Unauthorized", "Unavailable", "WaitTimeout",
    "CurrentJob", "Operation", "OperationCounts", "OperationTimeout", "QueuePause", "Schedule", "ScheduleDetail",
    "SchedulePage", "ScheduleRun", "Triggered", "WorkerInfo",
]
__version__ = "0.1.0"
