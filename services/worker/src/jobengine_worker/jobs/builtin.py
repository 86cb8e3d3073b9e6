"""Built-in job functions. Each takes its validated input model and returns its result model."""

from __future__ import annotations

import math
import time

from jobengine.builtin_types import (
    EchoInput,
    EchoResult,
    PrimesInput,
    PrimesResult,
    SleepInput,
    SleepResult,
)
from jobengine.context import current_job


def primes(payload: PrimesInput) -> PrimesResult:
    """Segmented sieve of Eratosthenes over [lowest, highest]."""
    low, high = max(payload.lowest, 2), payload.highest
    if high < low:
        return PrimesResult(primes=[], count=0)
    limit = math.isqrt(high)
    base = bytearray([1]) * (limit + 1)
    base[0:2] = b"\x00\x00"[: min(2, limit + 1)]
    for i in range(2, math.isqrt(limit) + 1):
        if base[i]:
            base[i * i :: i] = bytearray(len(base[i * i :: i]))
    segment = bytearray([1]) * (high - low + 1)
    for p in (i for i, flag in enumerate(base) if flag):
        start = max(p * p, (low + p - 1) // p * p)
        if start <= high:
            segment[start - low :: p] = bytearray(len(segment[start - low :: p]))
    found = [low + i for i, flag in enumerate(segment) if flag]
    return PrimesResult(primes=found, count=len(found))


def sleep(payload: SleepInput) -> SleepResult:
    ctx = current_job()
    started = time.monotonic()
    step = payload.seconds / payload.steps
    for n in range(1, payload.steps + 1):
        end = started + step * n
        if payload.cpu:
            while time.monotonic() < end:
                pass
        else:
            time.sleep(max(0.0, end - time.monotonic()))
        if payload.steps > 1:
            ctx.progress(n / payload.steps, f"step {n}/{payload.steps}")
    return SleepResult(slept=round(time.monotonic() - started, 6))


class EchoFailure(RuntimeError):
    """Raised on purpose by the echo job."""


def echo(payload: EchoInput) -> EchoResult:
    attempt = current_job().attempt
    if payload.fail or attempt <= payload.fail_attempts:
        raise EchoFailure(f"echo failed on purpose (attempt {attempt})")
    return EchoResult(message=payload.message, attempt=attempt)
