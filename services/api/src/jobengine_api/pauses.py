"""Which queues are paused, as this API process knows it: re-read from Redis every
JOBENGINE_PAUSED_REFRESH_SECONDS (one round trip, not one a submit), so a submit to a queue paused with
refuse_submits costs a set lookup. The claim script reads the marker itself: this copy only decides refusals."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from jobengine.redis_conn import TRANSIENT_ERRORS

from .periodic import Periodic
from .store import JobStore

log = logging.getLogger(__name__)


class PausedQueues:
    def __init__(self, store: JobStore, queues: Iterable[str], interval: float) -> None:
        self.store = store
        self.queues = sorted(queues)
        self.refusing: frozenset[str] = frozenset()  # paused with refuse_submits: submits get 409
        self._loop = Periodic(self.refresh, interval, "paused-queues refresh")

    async def refresh(self) -> None:
        try:
            paused = await self.store.paused_queues(self.queues)
        except TRANSIENT_ERRORS as exc:  # keep what we knew; submits meet the Redis outage anyway
            log.debug("paused queues not refreshed", extra={"error": repr(exc)})
            return
        self.refusing = frozenset(q for q, view in paused.items() if view["refuse_submits"])

    def set(self, queue: str, refusing: bool) -> None:
        """This process's own pause or resume takes effect here at once (the others' at their next refresh)."""
        self.refusing = self.refusing | {queue} if refusing else self.refusing - {queue}

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
