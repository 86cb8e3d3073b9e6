"""Redis URLs: the plain ones redis-py reads itself, and Sentinel ones, which it has no URL form for.

    redis://[[user]:password@]host[:port][/db]        rediss://... (TLS)        unix:///path/redis.sock
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<primary name>[/db][?options]
    rediss+sentinel://...                               TLS to the sentinels and to the primary

The user and password are the primary's. Sentinels that require a password of their own (`requirepass`
in sentinel.conf) take `sentinel_password` (and `sentinel_username`) options; the TLS options
`ssl_ca_certs`, `ssl_cert_reqs` (none | optional | required) and `ssl_check_hostname` apply to both.
A sentinel's port defaults to 26379. The client asks the sentinels for the current primary when it
connects, and again after a failover (redis-py's Sentinel support), so the URL names no primary address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

PLAIN_SCHEMES = frozenset({"redis", "rediss", "unix"})
SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
SENTINEL_PORT = 26379
SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password", "ssl_ca_certs", "ssl_cert_reqs",
                              "ssl_check_hostname"})


@dataclass(frozen=True)
class SentinelTarget:
    """Where the sentinels are, which primary to ask them for, and how to log in to each."""

    sentinels: tuple[tuple[str, int], ...]
    primary: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False
    ssl_options: dict[str, object] = field(default_factory=dict)

    def primary_kwargs(self) -> dict[str, object]:
        """Connection arguments for the primary (redis-py's master_for)."""
        kwargs: dict[str, object] = {"db": self.db, "username": self.username, "password": self.password}
        if self.ssl:
            kwargs.update(ssl=True, **self.ssl_options)
        return kwargs

    def sentinel_kwargs(self) -> dict[str, object]:
        """Connection arguments for the sentinels themselves."""
        kwargs: dict[str, object] = {"username": self.sentinel_username, "password": self.sentinel_password}
        if self.ssl:
            kwargs.update(ssl=True, **self.ssl_options)
        return kwargs


def scheme(url: str) -> str:
    """'redis', 'rediss+sentinel', ...; '' for a URL without one."""
    name, sep, _ = url.partition("://")
    return name.lower() if sep else ""


def check(url: str) -> None:
    """Raise ValueError saying what is wrong with `url`, if anything redis-py or parse_sentinel would refuse."""
    if scheme(url) in SENTINEL_SCHEMES:
        parse_sentinel(url)
    elif scheme(url) not in PLAIN_SCHEMES:
        raise ValueError("must start with redis://, rediss://, unix://, redis+sentinel:// or rediss+sentinel://")


def parse_sentinel(url: str) -> SentinelTarget | None:
    """The Sentinel target of a redis+sentinel:// or rediss+sentinel:// URL; None for any other URL."""
    kind = scheme(url)
    if kind not in SENTINEL_SCHEMES:
        return None
    rest = url.partition("://")[2]
    # urlsplit reads one host; the netloc here is a list of them, so it is split by hand.
    parts = urlsplit("sentinel://" + rest)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(h) for h in hosts.split(","))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("names no primary: redis+sentinel://host:26379/<primary name>[/db]")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("the path after the hosts must be /<primary name>[/<db number>]")
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in SENTINEL_OPTIONS:
            raise ValueError(f"unknown option {key!r} (known: {', '.join(sorted(SENTINEL_OPTIONS))})")
        options[key] = value
    ssl_options: dict[str, object] = {k: v for k, v in options.items() if k in ("ssl_ca_certs", "ssl_cert_reqs")}
    if "ssl_check_hostname" in options:
        ssl_options["ssl_check_hostname"] = options["ssl_check_hostname"].lower() in ("1", "true", "yes")
    return SentinelTarget(
        sentinels=sentinels, primary=path[0], db=int(path[1]) if len(path) == 2 else 0,
        username=username, password=password,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
        ssl=kind == "rediss+sentinel", ssl_options=ssl_options,
    )


def _host_port(text: str) -> tuple[str, int]:
    """host, host:port, [v6] or [v6]:port."""
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise ValueError(f"bad sentinel address {text!r}")
        port = port[1:]
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"empty sentinel address in {text!r}: list them as host:port,host:port")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"bad port in sentinel address {text!r}")
    return host, int(port) if port else SENTINEL_PORT
