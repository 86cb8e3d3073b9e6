"""When and how long to wait before trying a request again: bounded exponential backoff with jitter, or the
server's Retry-After when it sends one. Pure logic, shared by Client and AsyncClient."""

from __future__ import annotations

import random
from dataclasses import dataclass

# Statuses worth another try: 429 (backlog limit, quota, rate limit) and 503 (Redis down or full) carry
# Retry-After; 502 and 504 come from a proxy in front of a restarting API. Never another 4xx.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts`: tries in all (1 = no retry); `backoff`: the first delay, doubled each time up to `max_backoff`
    (jittered: half to all of it); a Retry-After is waited out when it is at most `max_retry_after` (a longer
    one ends the retries: trying sooner than the server asked would only be refused again); `deadline`:
    seconds after the first try after which no retry starts."""

    attempts: int = 30
    backoff: float = 0.25
    max_backoff: float = 5.0
    max_retry_after: float = 30.0
    deadline: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security

    def next_delay(self, attempt: int, elapsed: float, retry_after: float | None = None) -> float | None:
        """The wait before the next try, or None when the retries are used up."""
        if attempt >= self.attempts or (retry_after is not None and retry_after > self.max_retry_after):
            return None
        delay = self.delay(attempt, retry_after)
        if elapsed + delay > self.deadline:
            return None
        return delay


NO_RETRY = RetryPolicy(attempts=1)
