"""Sentinel URLs: what they name, and a clear error for a malformed one (at start-up, naming the setting)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from jobengine.redis_url import SentinelTarget, check, parse_sentinel
from jobengine.settings import Settings


def test_a_sentinel_url_names_its_sentinels_primary_db_and_credentials() -> None:
    target = parse_sentinel("redis+sentinel://app:s%40cret@s1.example:26380,s2.example,[::1]:5000/jobs/3"
                            "?sentinel_password=sp")
    assert target == SentinelTarget(
        sentinels=(("s1.example", 26380), ("s2.example", 26379), ("::1", 5000)), primary="jobs", db=3,
        username="app", password="s@cret", sentinel_password="sp",
    )
    assert target.primary_kwargs() == {"db": 3, "username": "app", "password": "s@cret"}
    assert target.sentinel_kwargs() == {"username": None, "password": "sp"}


def test_rediss_sentinel_uses_tls_with_its_options_for_both_the_primary_and_the_sentinels() -> None:
    target = parse_sentinel("rediss+sentinel://:pw@s1:26379/mymaster?ssl_ca_certs=/ca.pem&ssl_check_hostname=false")
    assert target is not None and target.db == 0 and target.username is None and target.password == "pw"
    tls = {"ssl": True, "ssl_ca_certs": "/ca.pem", "ssl_check_hostname": False}
    assert target.primary_kwargs() == {"db": 0, "username": None, "password": "pw", **tls}
    assert target.sentinel_kwargs() == {"username": None, "password": None, **tls}


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://h:6380/1", "unix:///tmp/r.sock"])
def test_plain_urls_are_left_to_redis_py(url: str) -> None:
    assert parse_sentinel(url) is None
    check(url)


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://s1:26379", "names no primary"),
    ("redis+sentinel://s1:26379/", "names no primary"),
    ("redis+sentinel://s1:26379/mymaster/zero", "/<primary name>[/<db number>]"),
    ("redis+sentinel://s1:26379,,s2/mymaster", "empty sentinel address"),
    ("redis+sentinel://s1:notaport/mymaster", "bad port"),
    ("redis+sentinel://s1:26379/mymaster?password=x", "unknown option 'password'"),
    ("http://127.0.0.1:6379", "must start with redis://"),
    ("127.0.0.1:6379", "must start with redis://"),
])
def test_a_malformed_url_is_refused_with_the_reason(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        check(url)


def test_a_bad_url_stops_the_process_naming_the_setting_and_hiding_the_url() -> None:
    run = subprocess.run([sys.executable, "-c", "from jobengine.settings import load_settings; load_settings()"],
                         env={"JOBENGINE_REDIS_URL": "redis+sentinel://:secret@s1:26379"}, capture_output=True,
                         text=True)
    assert run.returncode == 2
    assert "invalid setting JOBENGINE_REDIS_URL" in run.stderr and "names no primary" in run.stderr
    assert "secret" not in run.stderr


def test_settings_accept_a_sentinel_url() -> None:
    url = "redis+sentinel://s1:26379,s2:26379/mymaster/0"
    assert Settings(redis_url=url).redis_url == url
