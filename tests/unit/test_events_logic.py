"""Pure logic of events and webhooks: event documents, stream ids, signatures, the address guard, backoff."""

from __future__ import annotations

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobengine_api.events import WHOLE_ENTRY, entry_events, stream_id
from jobengine_api.webhooks import guard, signing
from jobengine_api.webhooks.delivery import MAX_BACKOFF, backoff, delivery_id


def test_an_entry_becomes_its_event_documents() -> None:
    (doc,) = entry_events("1764861234567-3", {b"e": b"job.progress abc low started sleep()",
                                              b"p": b'{"fraction": 0.5, "message": "half"}'})
    assert doc == {"id": "1764861234567-3-0", "type": "job.progress", "job_id": "abc", "job_type": "sleep",
                   "queue": "low", "status": "started", "at": "2025-12-04T15:13:54.567Z",
                   "progress": {"fraction": 0.5, "message": "half"}}
    batch = entry_events("1-0", {b"e": b"job.finished a low finished \njob.started b default started "})
    assert [(d["id"], d["type"], d["job_id"], d["job_type"]) for d in batch] == [
        ("1-0-0", "job.finished", "a", ""), ("1-0-1", "job.started", "b", "")]
    assert all("progress" not in d for d in batch)


def test_event_ids_compare_as_triples() -> None:
    assert stream_id("10-2-0") > stream_id("9-99-5") and stream_id("10-2-1") > stream_id("10-2-0")
    assert stream_id("10-2") > stream_id("10-2-7")  # a bare entry id: after all of its events
    assert stream_id(b"5") == (5, 0, WHOLE_ENTRY)
    for bad in ("yesterday", "1-2-3-4", "-1", "1--2"):
        with pytest.raises(ValueError):
            stream_id(bad)


def test_signatures_verify_with_the_standardwebhooks_package_with_either_secret() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    body = json.dumps({"type": "job.finished"}).encode()
    headers = signing.headers([new, old], "msg_1", int(time.time()), body)
    for secret in (old, new):
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + b" ", headers)


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.0.0.1", "private"), ("192.168.1.1", "private"),
    ("172.16.0.1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"), ("::ffff:127.0.0.1", "loopback"), ("fd00::1", "private"),
    ("93.184.216.34", None), ("2606:4700::1111", None),
])
def test_the_guard_names_what_an_address_is(address: str, why: str | None) -> None:
    assert guard.forbidden(address) == why


def test_url_forms() -> None:
    assert guard.check_url("https://hooks.example.com/x") is None
    assert guard.check_url("ftp://example.com") and guard.check_url("http://u:p@example.com/")
    assert guard.check_url("http:///nohost") and guard.check_url("not a url")
    assert guard.literal_refusal("http://10.0.0.1/", allow_private=False)
    assert guard.literal_refusal("http://10.0.0.1/", allow_private=True) is None
    assert guard.literal_refusal("http://example.com/", allow_private=False) is None


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempts in range(1, 6):
        assert 0.5 * 2 ** (attempts - 1) <= backoff(1.0, attempts) <= 2 ** (attempts - 1)
    assert backoff(1.0, 40) <= MAX_BACKOFF
    assert delivery_id("1-0", "wh_a") == delivery_id("1-0", "wh_a") != delivery_id("1-0", "wh_b")
