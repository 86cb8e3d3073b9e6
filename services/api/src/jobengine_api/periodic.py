"""A background step repeated every `interval` seconds until stop(), for the API's housekeeping loops.

Stopping does not rely on the task's cancellation alone: redis-py's asyncio client can swallow a cancel
that lands mid-command (the command then returns as if nothing happened), and a `while True` loop
around it went on forever, so the API hung at shutdown (seen about one Ctrl-C of `make run` in six).
The loop also watches an event that stop() sets, and waits on it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, step: Callable[[], Awaitable[None]], interval: float, name: str, *,
                 wait_first: bool = False) -> None:
        self.step = step
        self.interval = interval
        self.name = name
        self.wait_first = wait_first  # the first step after one interval rather than at once
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        if self.wait_first:
            await self._pause()
        while not self._stopping.is_set():
            try:
                await self.step()
            except Exception:  # noqa: BLE001 - the loop must outlive any surprise
                log.exception("%s failed", self.name)
            await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
