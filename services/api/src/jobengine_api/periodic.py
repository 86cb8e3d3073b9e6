"""A background step repeated every `interval` seconds until stop(), for the API's housekeeping loops
(jobengine.background says how stopping is made sure)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from jobengine.background import Background

log = logging.getLogger(__name__)


class Periodic(Background):
    def __init__(self, step: Callable[[], Awaitable[None]], interval: float, name: str, *,
                 wait_first: bool = False) -> None:
        super().__init__()
        self.step = step
        self.interval = interval
        self.name = self.task_name = name
        self.wait_first = wait_first  # the first step after one interval rather than at once

    async def _run(self) -> None:
        if self.wait_first:
            await self.pause(self.interval)
        while not self._stopping.is_set():
            try:
                await self.step()
            except Exception:  # noqa: BLE001 - the loop must outlive any surprise
                log.exception("%s failed", self.name)
            await self.pause(self.interval)
