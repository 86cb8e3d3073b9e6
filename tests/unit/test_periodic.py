"""The API's background loops stop even when a library they await swallows the task's cancel."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from jobengine_api.periodic import Periodic
from tests.support.wait import async_wait_until


def run_bounded(scenario: Any, seconds: float = 30.0) -> Any:
    """asyncio.run(scenario()) in a thread: a loop that never stops fails the test instead of hanging it."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(scenario())), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, "the loop did not stop"
    return out[0]


def test_stop_ends_the_loop_even_when_the_step_swallows_the_cancel() -> None:
    async def scenario() -> int:
        calls: list[int] = []
        in_step = asyncio.Event()

        async def swallowing_step() -> None:
            """Stands in for a redis-py command that catches the CancelledError landing mid-call and returns."""
            calls.append(1)
            in_step.set()
            try:
                await asyncio.Event().wait()  # never set: only the cancel ends it
            except asyncio.CancelledError:
                pass

        loop = Periodic(swallowing_step, 0.01, "test loop")
        loop.start()
        await asyncio.wait_for(in_step.wait(), 10)  # stop() lands inside a step
        await asyncio.wait_for(loop.stop(), 10)  # a loop that went on would block in its next step
        return len(calls)

    assert run_bounded(scenario) == 1  # stopped, and no step ran after the one the cancel hit


def test_a_failing_step_does_not_end_the_loop() -> None:
    async def scenario() -> int:
        calls: list[int] = []

        async def failing() -> None:
            calls.append(1)
            raise RuntimeError("boom")

        loop = Periodic(failing, 0.001, "test loop")
        loop.start()
        await async_wait_until(lambda: len(calls) >= 3, timeout=10, message="three steps")
        await loop.stop()
        return len(calls)

    assert run_bounded(scenario) >= 3


def test_wait_first_delays_the_first_step_by_one_interval() -> None:
    async def scenario() -> tuple[int, int]:
        at_once: list[int] = []
        delayed: list[int] = []

        async def step(calls: list[int]) -> None:
            calls.append(1)

        # started together: by the time the ordinary loop has run its first step, the wait_first one has not
        ordinary = Periodic(lambda: step(at_once), 3600, "ordinary")
        waiting = Periodic(lambda: step(delayed), 3600, "waits first", wait_first=True)
        waiting.start()
        ordinary.start()
        await async_wait_until(lambda: at_once, timeout=10, message="the ordinary loop's first step")
        before = len(delayed)
        await ordinary.stop()
        await waiting.stop()
        # and with a short interval, the wait_first loop's first step does come
        soon = Periodic(lambda: step(delayed), 0.01, "waits a little", wait_first=True)
        soon.start()
        await async_wait_until(lambda: len(delayed) > before, timeout=10, message="the first step after a wait")
        await soon.stop()
        return before, len(delayed)

    before, after = run_bounded(scenario)
    assert before == 0 and after >= 1
