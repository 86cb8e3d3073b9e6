"""The built-in job functions, called directly."""

from __future__ import annotations

import pytest

from jobengine.builtin_types import EchoInput, PrimesInput
from jobengine.context import JobContext, set_current_job
from jobengine_worker.jobs.builtin import EchoFailure, echo, primes


def naive_primes(low: int, high: int) -> list[int]:
    return [n for n in range(max(low, 2), high + 1) if all(n % d for d in range(2, int(n**0.5) + 1))]


@pytest.mark.parametrize("low, high", [(10, 17), (0, 1), (0, 2), (2, 2), (14, 16), (0, 1000), (999_000, 1_000_000),
                                       (10**9, 10**9 + 200)])
def test_primes_matches_trial_division(low, high):
    result = primes(PrimesInput(lowest=low, highest=high))
    assert result.primes == naive_primes(low, high)
    assert result.count == len(result.primes)


def test_seed_example():
    assert primes(PrimesInput(lowest=10, highest=17)).model_dump() == {"primes": [11, 13, 17], "count": 3}


def test_echo_fails_on_its_first_attempts_only():
    set_current_job(JobContext("j", "echo", "default", attempt=1))
    with pytest.raises(EchoFailure):
        echo(EchoInput(message="m", fail_attempts=1))
    set_current_job(JobContext("j", "echo", "default", attempt=2))
    assert echo(EchoInput(message="m", fail_attempts=1)).attempt == 2
    set_current_job(None)
