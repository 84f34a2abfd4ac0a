"""Fetching a remote medium for the server, only when allowed, from public addresses, within limits (SSRF guard).

The library reads no network (`media.source_bytes` refuses URLs); the server's media policy fetches here when
started with `--allow-remote-media`. Every failure gives one message, so errors tell nothing of the network.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import Any, Sequence

from ..errors import InputError
from ..media import MediaLimits, describe_source

log = logging.getLogger(__name__)

REMOTE_FETCH_FAILED = "remote medium could not be fetched"


def fetch_remote(url: str, limits: MediaLimits) -> bytes:
    """Download a remote medium, only when explicitly allowed, from public addresses, within limits.

    The host is resolved once and every address checked (loopback, private, link-local, multicast,
    reserved and unspecified ranges are refused, IPv4-mapped IPv6 judged as its IPv4 address) unless
    `limits.remote_allow` names the host or a network holding the address; the connection goes to the
    checked address (no second lookup), each redirect is checked the same way, at most
    `max_redirects`. Every failure gives the same message, so errors tell nothing of the network.
    """
    if not limits.allow_remote:
        raise InputError(
            f"remote URL '{describe_source(url)}' not fetched",
            fix="download it yourself, pass a data URI, or enable remote media explicitly",
        )
    deadline = time.monotonic() + limits.remote_timeout_s
    try:
        return _fetch(url, limits, deadline)
    except Exception as exc:  # refusals and network errors of every kind give one text
        log.info("remote fetch of %s failed: %s: %s", describe_source(url), type(exc).__name__, exc)
        raise InputError(REMOTE_FETCH_FAILED, fix="check that the URL is public and the file small enough, "
                                                  "or send the file inline as a data URI") from None


class RemoteRefused(Exception):
    """A remote fetch refused by policy (address, scheme, redirects, size, time)."""


def _fetch(url: str, limits: MediaLimits, deadline: float) -> bytes:
    import http.client
    from urllib.parse import urljoin, urlsplit

    for _ in range(limits.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteRefused(f"unsupported URL {describe_source(url)}")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = resolve_public(host, port, limits.remote_allow)
        sock = socket.create_connection((address, port), timeout=_remaining(deadline))
        if parts.scheme == "https":
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        connection = http.client.HTTPConnection(host, port, timeout=_remaining(deadline))
        connection.sock = sock  # already connected to the checked address: http.client does no lookup
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", target, headers={"User-Agent": "uniembed", "Accept-Encoding": "identity"})
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise RemoteRefused("redirect without Location")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise RemoteRefused(f"HTTP {response.status}")
            return _read_limited(response, sock, limits.max_file_bytes, deadline)
        finally:
            connection.close()
    raise RemoteRefused(f"more than {limits.max_redirects} redirects")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RemoteRefused("time limit reached")
    return left


def _read_limited(response: Any, sock: socket.socket, limit: int, deadline: float) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RemoteRefused(f"Content-Length {declared} over {limit}")
    chunks, size = [], 0
    while True:
        sock.settimeout(_remaining(deadline))
        chunk = response.read1(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise RemoteRefused(f"body over {limit} bytes")
        chunks.append(chunk)


def resolve_public(host: str, port: int, allow: Sequence[str] = ()) -> str:
    """The address to connect to for `host`: resolved once, refused when any address is not public
    (unless `allow` names the host or a network holding the address)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise RemoteRefused(f"{host} resolves to no address")
    for address in addresses:
        if not address_allowed(address, host, allow):
            raise RemoteRefused(f"{host} resolves to the non-public address {address}")
    return addresses[0]


def address_allowed(address: str, host: str = "", allow: Sequence[str] = ()) -> bool:
    """Whether a fetch may connect to `address`: a public one, or one the allow-list names."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    for entry in allow:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            if host and entry.lower().rstrip(".") == host.lower().rstrip("."):
                return True
    return _is_public(ip)


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not _is_public(embedded):
            return False
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64: judge the IPv4 address it stands for
            return _is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return ip.is_global and not (ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local
                                 or ip.is_reserved or ip.is_unspecified)
