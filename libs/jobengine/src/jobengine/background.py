"""A task of the event loop that runs until stop(), for the API's background loops (housekeeping, the schedules'
firing loop, bulk operations).

Stopping does not rely on the task's cancellation alone: redis-py's asyncio client can swallow a cancel that
lands mid-command (the command then returns as if nothing happened), and a `while True` loop around it went on
forever, so the API hung at shutdown (seen about one Ctrl-C of `make run` in six). A loop also watches the
event that stop() sets first, and waits on it instead of sleeping (pause()).
"""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    task_name = "background"

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when stop() is called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run(self) -> None:  # the loop: `while not self._stopping.is_set(): ...`
        raise NotImplementedError
