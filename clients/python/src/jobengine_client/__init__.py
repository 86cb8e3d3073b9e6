"""jobengine-client: the Python SDK of the jobengine HTTP API (sync Client, asyncio AsyncClient)."""

from .aio import AsyncClient
from .client import Client
from .errors import (ApiError, Conflict, Forbidden, InvalidRequest, JobengineError, JobFailed, NotFound,
                     TooManyRequests, TransportError, Unauthorized, Unavailable, WaitTimeout)
from .models import (TERMINAL, Accepted, BatchItem, BatchResult, Job, JobSummary, JobTypeInfo, Page, Progress,
                     QueueStats, StatusChange)
from .retry import NO_RETRY, RetryPolicy
from .typed import JobSpec, NewJob

__all__ = [
    "Accepted", "ApiError", "AsyncClient", "BatchItem", "BatchResult", "Client", "Conflict", "Forbidden",
    "InvalidRequest", "Job", "JobFailed", "JobSpec", "JobSummary", "JobTypeInfo", "JobengineError", "NO_RETRY",
    "NewJob", "NotFound", "Page", "Progress", "QueueStats", "RetryPolicy", "StatusChange", "TERMINAL",
    "TooManyRequests", "TransportError", "Unauthorized", "Unavailable", "WaitTimeout",
]
__version__ = "0.1.0"
