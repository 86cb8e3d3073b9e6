"""The job catalog and its retry policy: pure logic."""

from __future__ import annotations

import random

import pytest
from pydantic import BaseModel, ValidationError

from jobengine.builtin_types import MAX_PRIMES_RANGE, PrimesInput
from jobengine.catalog import Catalog, JobType, RetryPolicy, discover


class In(BaseModel):
    x: int


def test_discovery_finds_builtins_and_an_installed_package_by_entry_point():
    names = discover().names()
    assert {"primes", "sleep", "echo"} <= set(names)
    assert "wordcount" in names  # examples/jobengine-example-jobs, found through its entry point


def test_discovery_from_a_settings_module_list():
    catalog = discover(["tests.support.jobs"])
    assert {"counted", "hang", "crash"} <= set(catalog.names())


def test_a_type_declared_twice_differently_is_refused():
    a = JobType(name="dup", input_model=In, result_model=In, function="m.f")
    b = JobType(name="dup", input_model=In, result_model=In, function="m.g")
    with pytest.raises(ValueError, match="declared twice"):
        Catalog([a, b])


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "bad name!"}, "letters"),
    ({"function": "nodots"}, "dotted"),
    ({"timeout": 0}, "timeout"),
])
def test_bad_declarations_are_refused(kwargs, message):
    base = {"name": "ok", "input_model": In, "result_model": In, "function": "m.f"}
    with pytest.raises(ValueError, match=message):
        JobType(**{**base, **kwargs})


def test_backoff_grows_exponentially_and_is_capped():
    policy = RetryPolicy(max_retries=6, base_delay=1, factor=2, max_delay=10, jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_jitter_stays_within_its_fraction():
    policy = RetryPolicy(max_retries=1, base_delay=10, factor=2, jitter=0.2)
    rng = random.Random(7)
    delays = [policy.delay(1, rng) for _ in range(500)]
    assert min(delays) >= 8 and max(delays) <= 12
    assert max(delays) - min(delays) > 2  # it really spreads


def test_intervals_has_one_delay_per_retry():
    assert len(RetryPolicy(max_retries=4).intervals()) == 4
    assert RetryPolicy(max_retries=0).intervals() == []


def test_primes_input_validation():
    assert PrimesInput(lowest=10, highest=17).highest == 17
    with pytest.raises(ValidationError, match="lowest must be <= highest"):
        PrimesInput(lowest=17, highest=10)
    with pytest.raises(ValidationError, match="range too big"):
        PrimesInput(lowest=0, highest=MAX_PRIMES_RANGE + 1)
    with pytest.raises(ValidationError):
        PrimesInput(lowest="ten", highest=17)
    with pytest.raises(ValidationError, match="Extra inputs"):
        PrimesInput(lowest=1, highest=2, other=3)
