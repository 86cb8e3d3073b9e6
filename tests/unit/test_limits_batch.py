"""A batch item skips the structure walk only when it is too small to break a limit."""

from __future__ import annotations

from typing import Any

import pytest

from jobengine_api.limits import Limits
from jobengine_api.problems import Problem

LIMITS = Limits(max_depth=4, max_string=40, max_payload=60, type_payload={"tiny": 20})


def rejected(item: Any) -> Problem:
    with pytest.raises(Problem) as caught:
        LIMITS.check_batch_item(item)
    return caught.value


def test_items_within_the_limits_pass() -> None:
    LIMITS.check_batch_item({"type": "echo", "payload": {"m": [[1]]}})
    LIMITS.check_batch_item("not a job at all")  # (the model rejects it next)


def test_each_limit_is_still_enforced_on_a_short_item() -> None:
    # field paths are relative to the item, whatever the limit (the item's index is in its result)
    deep = rejected({"type": "echo", "payload": {"m": [[[[1]]]]}})  # 22 bytes, 6 levels
    assert deep.status == 422 and deep.errors[0]["field"].startswith("payload.m")
    long = rejected({"type": "echo", "payload": {"m": "x" * 41}})
    assert long.status == 422 and long.errors[0]["field"] == "payload.m"
    big = rejected({"type": "echo", "payload": {"m": ["abcdefghij"] * 6}})  # 79 bytes of payload > 60
    assert big.status == 413 and big.errors[0]["field"] == "payload"
    own = rejected({"type": "tiny", "payload": {"m": "abcdefghijklmnop"}})  # 22 bytes > the type's 20
    assert own.status == 413
