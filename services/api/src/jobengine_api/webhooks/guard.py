"""The outbound guard: a webhook URL may not reach private, loopback, link-local, multicast or reserved addresses
(unless JOBENGINE_WEBHOOKS_ALLOW_PRIVATE), so a tenant cannot make the platform call into its own network.

The host is resolved once per attempt, every address it resolves to is checked, and the request goes to the
checked address (the Host header and TLS server name stay the URL's), so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot slip past."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit


class Refused(Exception):
    """The URL's address is not allowed (the message says which and why)."""


def check_url(url: str) -> str | None:
    """Why a webhook URL is not acceptable (None: it is). Only its form here; addresses are checked per attempt."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host"
    if parts.username or parts.password:
        return "must not carry credentials"
    if port == 0:
        return "port 0 is not valid"
    if len(url) > 2048:
        return "at most 2048 characters"
    return None


def forbidden(address: str) -> str | None:
    """Why an IP address may not be called (None: it may)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attr, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_unspecified", "unspecified"), ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return what
    return None


def literal_refusal(url: str, allow_private: bool) -> str | None:
    """For a URL naming an IP address itself: why it is refused now (at subscription), else None."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    why = None if allow_private else forbidden(host)
    return f"{host} is a {why} address (JOBENGINE_WEBHOOKS_ALLOW_PRIVATE is off)" if why else None


async def resolve(url: str, allow_private: bool) -> tuple[str, str, str]:
    """(the URL with its host replaced by a checked address, the original host (Host header and TLS name),
    the address). Raises Refused when an address is not allowed, OSError when the name does not resolve."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    if not allow_private:
        for address in addresses:  # every one: the client would try them in turn
            if why := forbidden(address):
                raise Refused(f"{host} resolves to {address}, a {why} address (JOBENGINE_WEBHOOKS_ALLOW_PRIVATE "
                              "is off)")
    address = addresses[0]
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    host_header = host if not parts.port else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header, address
