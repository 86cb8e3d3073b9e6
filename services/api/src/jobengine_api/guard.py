"""Redis memory guard: refuse submissions before Redis reaches its maxmemory.

With `maxmemory-policy noeviction` (the chart's), a Redis at maxmemory refuses every write: new jobs,
and also the workers' claims and outcomes, so jobs stop ending and the memory their results hold is
only given back as TTLs expire. The guard keeps the last part of maxmemory for the jobs already
accepted: above `JOBENGINE_REDIS_MEMORY_LIMIT_RATIO` of maxmemory the API answers 503 with Retry-After
to new submissions. Lua cannot read INFO cheaply, so each API process samples `INFO memory` in the
background every `JOBENGINE_REDIS_MEMORY_CHECK_SECONDS`; between two samples a burst can overshoot a
little, which the headroom absorbs (and past maxmemory itself Redis refuses the enqueue script before
it writes anything). Off when the ratio is 0 or Redis has no maxmemory.
"""

from __future__ import annotations

import logging
from typing import Any

from jobengine.redis_conn import TRANSIENT_ERRORS

from .periodic import Periodic

log = logging.getLogger(__name__)


class MemoryGuard:
    def __init__(self, client: Any, ratio: float, interval: float) -> None:
        self.client = client
        self.ratio = ratio
        self.interval = interval
        self.over = False  # read by the submit handlers: no await, no Redis call on the hot path
        self.used = 0
        self.maxmemory = 0
        self._loop = Periodic(self._step, interval, "redis memory guard")

    async def sample(self) -> None:
        info = await self.client.info("memory")
        self.used, self.maxmemory = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        over = self.maxmemory > 0 and self.used >= self.ratio * self.maxmemory
        if over != self.over:
            log.warning("redis memory guard %s", "on: refusing submissions" if over else "off",
                        extra={"used_memory": self.used, "maxmemory": self.maxmemory, "ratio": self.ratio})
        self.over = over

    async def _step(self) -> None:
        try:
            await self.sample()
        except TRANSIENT_ERRORS:
            self.over = False  # Redis unreachable: the enqueue itself answers 503

    def start(self) -> None:
        if self.ratio > 0:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
