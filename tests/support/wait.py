"""Waiting on a condition instead of on the clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.02,
               message: str = "condition") -> T:
    """Poll `condition()` until it is truthy and return its value; fail after `timeout` seconds (a deadline
    generous enough that only a hang reaches it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message} (last value {value!r})")
        time.sleep(interval)


async def async_wait_until(condition: Callable[[], T | Awaitable[T]], timeout: float = 30.0,
                           interval: float = 0.005, message: str = "condition") -> T:
    """wait_until for the event loop: yields to other tasks between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message} (last value {value!r})")
        await asyncio.sleep(interval)
