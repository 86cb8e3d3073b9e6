"""Submission validation, idempotency fingerprints, cursors and job preparation: no Redis, no HTTP."""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from jobengine.builtin_types import JOB_TYPES
from jobengine.catalog import Catalog
from jobengine.jobdata import decode_data, encode_data
from jobengine.settings import Settings
from jobengine_api.models import Submissions
from jobengine_api.problems import validation_errors
from jobengine_api.store import decode_cursor, encode_cursor, fingerprint, prepare_job

CATALOG = Catalog(JOB_TYPES)
SUBS = Submissions.build(CATALOG)
SETTINGS = Settings(redis_url="redis://127.0.0.1:1/0")


def errors_of(body: object, batch: bool = False) -> list[dict[str, str]]:
    adapter = SUBS.batch_item if batch else SUBS.single
    with pytest.raises(ValidationError) as info:
        adapter.validate_json(orjson.dumps(body))
    return validation_errors(info.value.errors(), skip_tag=set(SUBS.tags))


def test_valid_submission_picks_the_type_model() -> None:
    sub = SUBS.single.validate_json(b'{"type":"primes","payload":{"lowest":10,"highest":17},"queue":"high"}')
    assert sub.type == "primes" and sub.payload.lowest == 10 and sub.queue == "high"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "primes", "payload": {"lowest": "x", "highest": 17}}, "payload.lowest"),
        ({"type": "primes", "payload": {"lowest": 20, "highest": 17}}, "payload"),
        ({"type": "primes", "payload": {"lowest": 0, "highest": 10_000_000}}, "payload"),
        ({"type": "primes", "payload": {"lowest": 1}}, "payload.highest"),
        ({"type": "nope", "payload": {}}, "type"),
        ({"payload": {}}, "type"),
        ({"type": "primes", "payload": {"lowest": 1, "highest": 2}, "queue": "bad queue!"}, "queue"),
        ({"type": "primes", "payload": {"lowest": 1, "highest": 2}, "delay_seconds": 1,
          "run_at": "2030-01-01T00:00:00Z"}, "run_at"),
        ({"type": "primes", "payload": {"lowest": 1, "highest": 2}, "retry": {"max_retries": -1}},
         "retry.max_retries"),
        ({"type": "primes", "payload": {"lowest": 1, "highest": 2}, "surprise": 1}, "surprise"),
    ],
)
def test_errors_name_the_field(body: dict, field: str) -> None:
    fields = [e["field"] for e in errors_of(body)]
    assert field in fields, fields


def test_unknown_type_lists_known_types() -> None:
    (error,) = errors_of({"type": "nope", "payload": {}})
    assert error["field"] == "type"
    for name in ("primes", "echo", "sleep"):
        assert name in error["message"]


def test_messages_explain_the_range_rules() -> None:
    assert "lowest must be <= highest" in errors_of({"type": "primes", "payload": {"lowest": 5, "highest": 1}})[0][
        "message"]
    assert "range too big" in errors_of({"type": "primes", "payload": {"lowest": 0, "highest": 10**9}})[0]["message"]


def test_batch_items_take_an_idempotency_key_single_bodies_do_not() -> None:
    item = SUBS.batch_item.validate_python({"type": "echo", "payload": {}, "idempotency_key": "k"})
    assert item.idempotency_key == "k"
    assert "idempotency_key" in [e["field"] for e in errors_of({"type": "echo", "payload": {},
                                                                "idempotency_key": "k"})]


def test_fingerprint_ignores_key_order_and_formatting() -> None:
    a = SUBS.single.validate_json(b'{"type":"primes","payload":{"lowest":1,"highest":2}}')
    b = SUBS.single.validate_json(b'{ "payload": {"highest": 2, "lowest": 1}, "type": "primes" }')
    c = SUBS.single.validate_json(b'{"type":"primes","payload":{"lowest":1,"highest":3}}')
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor("1700000000123-7")) == "1700000000123-7"
    for bad in ("", "!!!", "bm9jb2xvbg", encode_cursor("1-2")[:-2] + "@@@",
                encode_cursor("1-2 +inf"), encode_cursor("+")):  # never a range bound of the caller's
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_prepare_job_builds_an_rq_job_hash() -> None:
    sub = SUBS.single.validate_json(b'{"type":"primes","payload":{"lowest":10,"highest":17},"timeout":5}')
    job = prepare_job(sub, CATALOG["primes"], SETTINGS)
    # no backlog limit, no rate limit, no tenant quota (the defaults); the tenant's listing index
    assert job.args[6:10] == [0, 0.0, 1, 0] and job.keys[5:] == ["", "", "jobengine:index:default"]
    fields = dict(zip(job.args[10::2], job.args[11::2], strict=True))
    assert job.status == fields["status"] == "queued" and job.queue == "default"
    # a small `data` is plain JSON (zlib would make it larger), as RQ reads it too (it falls back to the raw
    # bytes when they are not zlib's)
    assert orjson.loads(fields["data"]) == [
        "jobengine_worker.jobs.builtin.primes", None, [{"lowest": 10, "highest": 17}], {}]
    assert fields["timeout"] == 5 and fields["origin"] == "default"
    assert orjson.loads(fields["meta"])["type"] == "primes"
    assert len(orjson.loads(fields["retry_intervals"])) == CATALOG["primes"].retry.max_retries
    assert job.keys == [f"rq:job:{job.id}", "rq:queue:default", "rq:scheduled:default", "jobengine:notify:default", "",
                        "", "", "jobengine:index:default"]
    assert job.args[1] == 0  # run now


def test_prepare_job_schedules_delays_and_run_at() -> None:
    sub = SUBS.single.validate_python({"type": "echo", "payload": {}, "delay_seconds": 60, "queue": "low",
                                       "retry": {"max_retries": 0}})
    job = prepare_job(sub, CATALOG["echo"], SETTINGS, idempotency_key="k", fp="f")
    assert job.status == "scheduled" and job.queue == "low"
    assert job.args[1] == pytest.approx(datetime.now(timezone.utc).timestamp() + 60, abs=2)
    assert job.keys[4] == "jobengine:idempotency:default:k" and job.args[4] == "f"
    assert "retry_intervals" not in job.args[10::2]
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    due = prepare_job(SUBS.single.validate_python({"type": "echo", "payload": {}, "run_at": past}),
                      CATALOG["echo"], SETTINGS)
    assert due.status == "queued" and due.args[1] == 0


def test_openapi_components_hold_every_type() -> None:
    components = SUBS.openapi_components(10)
    for name in ("PrimesJob", "EchoJob", "SleepJob", "PrimesInput", "JobSubmission", "BatchSubmission"):
        assert name in components
    assert components["JobSubmission"]["discriminator"]["propertyName"] == "type"


def test_job_data_is_compressed_once_it_is_large_and_reads_back_either_way() -> None:
    small, large = {"text": "x"}, {"text": "lorem ipsum " * 100}
    assert encode_data("m.f", small) == orjson.dumps(["m.f", None, [small], {}])
    assert len(encode_data("m.f", large)) < 200 and zlib.decompress(encode_data("m.f", large)).startswith(b'["m.f"')
    for payload in (small, large):
        assert decode_data(encode_data("m.f", payload)) == ("m.f", [payload], {})


@pytest.mark.parametrize("cursor", ["0-0", "18446744073709551616-0", "0-18446744073709551616"])
def test_cursors_outside_redis_stream_ids_are_refused(cursor: str) -> None:
    with pytest.raises(ValueError):
        decode_cursor(encode_cursor(cursor))
    assert decode_cursor(encode_cursor(f"{2**64 - 1}-{2**64 - 1}")) == f"{2**64 - 1}-{2**64 - 1}"
    assert decode_cursor(encode_cursor("0-1")) == "0-1"


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "primes", "payload": {"lowest": True, "highest": 17}}, "payload.lowest"),
    ({"type": "sleep", "payload": {"seconds": False}}, "payload.seconds"),
    ({"type": "primes", "payload": {"lowest": 1, "highest": 2}, "timeout": True}, "timeout"),
    ({"type": "primes", "payload": {"lowest": 1, "highest": 2}, "retry": {"jitter": False}}, "retry.jitter"),
])
def test_booleans_are_not_numbers(body: dict, field: str) -> None:
    assert field in [e["field"] for e in errors_of(body)]
    assert field in [e["field"] for e in errors_of(body, batch=True)]


def test_run_at_is_at_most_365_days_ahead() -> None:
    base = {"type": "primes", "payload": {"lowest": 1, "highest": 2}}
    far = (datetime.now(timezone.utc) + timedelta(days=365, hours=1)).isoformat()
    assert [e["field"] for e in errors_of({**base, "run_at": far})] == ["run_at"]
    near = (datetime.now(timezone.utc) + timedelta(days=364)).isoformat()
    assert SUBS.single.validate_python({**base, "run_at": near}).run_at is not None
