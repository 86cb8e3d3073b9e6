"""The API's background loops stop even when a library they await swallows the task's cancel."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from jobengine_api.periodic import Periodic


def run_bounded(scenario: Any, seconds: float = 5.0) -> Any:
    """asyncio.run(scenario()) in a thread: a loop that never stops fails the test instead of hanging it."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(scenario())), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, "the loop did not stop"
    return out[0]


async def swallowing_step(calls: list[int]) -> None:
    """Stands in for a redis-py command that catches the CancelledError landing mid-call and returns."""
    calls.append(1)
    try:
        await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        pass


def test_stop_ends_the_loop_even_when_the_step_swallows_the_cancel() -> None:
    async def scenario() -> int:
        calls: list[int] = []
        loop = Periodic(lambda: swallowing_step(calls), 0.01, "test loop")
        loop.start()
        await asyncio.sleep(0.03)  # stop() lands inside a step
        await asyncio.wait_for(loop.stop(), 2)
        done = len(calls)
        await asyncio.sleep(0.1)
        return len(calls) - done

    assert run_bounded(scenario) == 0  # stopped, and no step ran after


def test_a_failing_step_does_not_end_the_loop_and_wait_first_delays_the_first_step() -> None:
    async def scenario() -> tuple[int, int]:
        calls: list[int] = []

        async def failing() -> None:
            calls.append(1)
            raise RuntimeError("boom")

        loop = Periodic(failing, 0.02, "test loop", wait_first=True)
        loop.start()
        await asyncio.sleep(0.01)
        before_first_interval = len(calls)
        await asyncio.sleep(0.15)
        await loop.stop()
        return before_first_interval, len(calls)

    first, total = run_bounded(scenario)
    assert first == 0 and total >= 3
