"""Which Redis error replies mean "retry later" (and which of them "reconnect first"), as redis-py parses them."""

from __future__ import annotations

import pytest
from redis._parsers.base import BaseParser

from jobengine.redis_failover import demoted, refusing


@pytest.mark.parametrize(("reply", "is_demoted", "is_refusing"), [
    ("READONLY You can't write against a read only replica.", True, False),
    ("UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)", True, False),
    ("MISCONF Errors writing to the AOF file: No space left on device", False, True),
    ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.", False, True),
    ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", False, True),
    ("ERR unknown command 'FOO'", False, False),
    ("WRONGTYPE Operation against a key holding the wrong kind of value", False, False),
    ("BUSYKEY Target key name already exists.", False, False),
])
def test_error_replies_are_sorted_into_retryable_or_not(reply: str, is_demoted: bool, is_refusing: bool) -> None:
    exc = BaseParser.parse_error(reply)
    assert (demoted(exc), refusing(exc)) == (is_demoted, is_refusing)
