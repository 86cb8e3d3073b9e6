"""Console sessions (console/sessions.py): a cookie is valid only as signed, unexpired, and while its API key
is in force with the same secret; CSRF tokens are bound to the session; the Secure rule."""

from __future__ import annotations

import time

import pytest

from jobengine_api.apikey import hash_secret
from jobengine_api.auth import DEV_PRINCIPAL
from jobengine_api.console.sessions import Sessions, cookie_secure, cookie_value
from jobengine_api.keyring import KeyEntry, KeyRing

SECRET = b"k" * 32


def ring(secret: str = "s3cret", revoked: bool = False) -> KeyRing:
    entry = KeyEntry("ops", "acme", frozenset({"read", "admin"}), hash_secret(secret), revoked)
    return KeyRing({"ops": entry})


def test_a_session_carries_its_keys_current_principal_and_no_secret() -> None:
    keyring = ring()
    sessions = Sessions(SECRET, keyring, 3600)
    cookie = sessions.issue(keyring.entries["ops"].principal)
    assert "s3cret" not in cookie
    session = sessions.check(cookie)
    assert session is not None and session.principal.tenant == "acme" and session.principal.has("admin")


@pytest.mark.parametrize("change", ["tampered", "other-signer", "revoked-in-file", "revoked-in-redis",
                                    "re-keyed", "deleted", "garbage"])
def test_a_session_ends_when_its_cookie_or_its_key_is_not_good(change: str) -> None:
    keyring = ring()
    sessions = Sessions(SECRET, keyring, 3600)
    cookie = sessions.issue(keyring.entries["ops"].principal)
    if change == "tampered":
        payload, sig = cookie.split(".")
        cookie = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + sig
    elif change == "other-signer":
        sessions = Sessions(b"x" * 32, keyring, 3600)
    elif change == "revoked-in-file":
        keyring.update(entries=ring(revoked=True).entries)
    elif change == "revoked-in-redis":
        keyring.update(revoked={"ops"})
    elif change == "re-keyed":  # the same key id with a new secret
        keyring.update(entries=ring("another").entries)
    elif change == "deleted":
        keyring.update(entries={})
    else:
        cookie = "not-a-cookie"
    assert sessions.check(cookie) is None


def test_sessions_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = ring()
    sessions = Sessions(SECRET, keyring, 60)
    cookie = sessions.issue(keyring.entries["ops"].principal)
    assert sessions.check(cookie) is not None
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)
    assert sessions.check(cookie) is None


def test_csrf_tokens_are_bound_to_their_session() -> None:
    keyring = ring()
    sessions = Sessions(SECRET, keyring, 3600)
    one = sessions.check(sessions.issue(keyring.entries["ops"].principal))
    two = sessions.check(sessions.issue(keyring.entries["ops"].principal))
    assert one and two
    assert sessions.csrf_ok(one, sessions.csrf_token(one))
    assert not sessions.csrf_ok(one, sessions.csrf_token(two))
    assert not sessions.csrf_ok(one, None) and not sessions.csrf_ok(one, "")


def test_without_a_signing_key_no_session_is_valid() -> None:
    assert Sessions(None, ring(), 3600).check("a.b") is None


def test_development_sessions_are_the_development_principal() -> None:
    sessions = Sessions(SECRET, None, 3600)
    session = sessions.check(sessions.issue(DEV_PRINCIPAL))
    assert session is not None and session.principal == DEV_PRINCIPAL


def test_the_login_form_token_needs_its_cookie() -> None:
    sessions = Sessions(SECRET, None, 3600)
    cookie, token = sessions.login_token()
    assert sessions.login_ok(cookie, token)
    assert not sessions.login_ok(None, token) and not sessions.login_ok(cookie + "x", token)


@pytest.mark.parametrize("host, scheme, development, secure", [
    ("127.0.0.1:8000", "http", False, False), ("localhost:8000", "http", False, False),
    ("[::1]:8000", "http", False, False), ("jobengine.example.com", "http", False, True),
    ("jobengine.example.com", "https", False, True), ("127.0.0.1:8000", "https", False, True),
    ("jobengine.localtest.me", "http", True, False),
])
def test_the_cookie_is_secure_except_over_http_on_loopback_or_in_development(
        host: str, scheme: str, development: bool, secure: bool) -> None:
    assert cookie_secure(host, scheme, development) is secure


def test_the_cookie_is_read_from_raw_headers() -> None:
    assert cookie_value([(b"cookie", b"a=1; jobengine_console=abc.def; b=2")]) == "abc.def"
    assert cookie_value([(b"cookie", b"a=1")]) is None
    assert cookie_value([(b"cookie", b'jobengine_console="unterminated')]) is None
