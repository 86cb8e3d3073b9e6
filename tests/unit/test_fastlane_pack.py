"""The fast lane's command packer writes what redis-py's own (pure-Python) serializer writes."""

from __future__ import annotations

from datetime import datetime, timezone
from itertools import chain

import pytest
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

from jobengine import keys
from jobengine.jobdata import build_job_hash, new_job_id
from jobengine_api.fastlane import pack


def redis_py(*args: object) -> bytes:
    return b"".join(PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode).pack(*args))


def test_an_enqueue_command_is_packed_as_redis_py_packs_it() -> None:
    job_id = new_job_id()
    fields = build_job_hash(job_id=job_id, job_type="add", function="bench.jobs.add",
                            payload={"a": 1, "b": "é"}, queue="default", timeout=60, result_ttl=500,
                            failure_ttl=3600, retry_intervals=[1.0, 2.5], status="queued", meta={"tenant": "t"},
                            now=datetime.now(timezone.utc))
    args = ["EVALSHA", "a" * 40, 2, keys.job(job_id), keys.queue("default"), job_id, 1764403321.123456, 0, "",
            0.1, -3, 10**20, *chain.from_iterable(fields.items())]
    assert any(isinstance(v, bytes) for v in args)  # the compressed-or-not `data` field, among str/int/float
    assert pack(args) == redis_py(*args)


@pytest.mark.parametrize("bad", [None, True])
def test_a_value_redis_py_refuses_is_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        pack(["SET", "k", bad])  # type: ignore[list-item]
