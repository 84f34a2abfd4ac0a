"""Remote media fetching refuses every non-public address (SSRF), unless the allow-list names it.

Only loopback traffic is ever sent: servers listen on 127.0.0.1, and for private / link-local ranges a
resolver stub stands in for DNS while `socket.create_connection` is made to fail the test if reached,
so those refusals are shown to happen before any connection.
"""
from __future__ import annotations

import socket
import time

import pytest
from serving_helpers import RED_PNG as PNG
from serving_helpers import free_port, media_server

from uniembed.errors import InputError
from uniembed.media import MediaLimits
from uniembed.serving.remote import REMOTE_FETCH_FAILED, address_allowed, fetch_remote



@pytest.fixture(scope="module")
def loopback_server():
    with media_server() as port:
        yield port


def _limits(*allow: str) -> MediaLimits:
    return MediaLimits(allow_remote=True, remote_allow=allow, remote_timeout_s=5)


def _refused(url: str, limits: MediaLimits) -> None:
    with pytest.raises(InputError) as caught:
        fetch_remote(url, limits)
    assert caught.value.problem == REMOTE_FETCH_FAILED  # one text, whatever went wrong


def test_loopback_is_refused_unless_allowed(loopback_server):
    port = loopback_server
    for url in (f"http://127.0.0.1:{port}/red.png", f"http://localhost:{port}/red.png",  # a name that resolves there
                f"http://[::1]:{port}/red.png", f"http://[::ffff:127.0.0.1]:{port}/red.png",
                f"http://0.0.0.0:{port}/red.png"):
        _refused(url, _limits())
    # the control: the allow-list lets the same loopback server be fetched
    assert fetch_remote(f"http://127.0.0.1:{port}/red.png", _limits("127.0.0.1/32")) == PNG
    assert fetch_remote(f"http://localhost:{port}/red.png", _limits("localhost")) == PNG


def _name_for_loopback(monkeypatch, name: str = "media.test") -> None:
    """Resolve `name` to 127.0.0.1 (a stand-in for an allowed public host); other names as usual."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == name:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def test_redirects_are_checked_again_and_capped(monkeypatch, loopback_server):
    port = loopback_server
    _name_for_loopback(monkeypatch)
    allowed = _limits("media.test")  # the host is allowed by name; its address 127.0.0.1 is not
    assert fetch_remote(f"http://media.test:{port}/red.png", allowed) == PNG  # the control
    # a redirect from the allowed host to loopback (a live server) is refused
    _refused(f"http://media.test:{port}/redirect/127.0.0.1:{port}/red.png", allowed)
    _refused(f"http://media.test:{port}/redirect/localhost:{port}/red.png", allowed)
    _refused(f"http://media.test:{port}/redirect/[::1]:{port}/red.png", allowed)
    # an allowed redirect is followed; an endless one stops at max_redirects
    assert fetch_remote(f"http://media.test:{port}/redirect/media.test:{port}/red.png", allowed) == PNG
    _refused(f"http://media.test:{port}/loop", allowed)


def test_a_trickling_server_is_cut_off_at_the_time_limit(loopback_server):
    started = time.monotonic()
    _refused(f"http://127.0.0.1:{loopback_server}/trickle",
             MediaLimits(allow_remote=True, remote_allow=("127.0.0.1/32",), remote_timeout_s=1.0))
    assert time.monotonic() - started < 5  # the whole fetch has one deadline, not one per read


def test_failures_read_the_same_open_or_closed_port(loopback_server):
    closed_port = free_port()
    allowed = _limits("127.0.0.1/32")
    errors = []
    for url in (f"http://127.0.0.1:{closed_port}/x.png", f"http://127.0.0.1:{loopback_server}/missing.png",
                f"http://127.0.0.1:{loopback_server}/red.png"):
        try:
            fetch_remote(url, MediaLimits(**{**allowed.__dict__, "max_file_bytes": 10}))
        except InputError as exc:
            errors.append(str(exc))
    assert len(errors) == 3 and len(set(errors)) == 1


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "169.254.169.254", "192.168.0.1", "172.16.5.4", "100.64.0.1",
                                     "224.0.0.1", "240.0.0.1", "0.0.0.0", "fe80::1", "fc00::1", "ff02::1",
                                     "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:a00:1::"])
def test_private_ranges_are_refused_before_any_connection(monkeypatch, address):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, port, *a, **k: [(family, socket.SOCK_STREAM, 6, "", (address, port))])

    def no_connection(*args, **kwargs):
        raise AssertionError(f"connected to {args[0]}")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    _refused("http://media.example/cat.png", _limits())
    assert not address_allowed(address)


def test_allow_list_names_networks_and_hosts():
    assert address_allowed("10.1.2.3", "x", ["10.0.0.0/8"]) and not address_allowed("10.1.2.3", "x", ["11.0.0.0/8"])
    assert address_allowed("::ffff:10.1.2.3", "x", ["::ffff:10.0.0.0/104"])
    assert address_allowed("169.254.1.1", "Media.Internal", ["media.internal"])
    assert address_allowed("93.184.216.34") and address_allowed("2606:2800:220:1:248:1893:25c8:1946")


def test_a_name_resolving_to_public_and_private_is_refused(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))])
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    _refused("http://rebind.example/cat.png", _limits())


def test_the_checked_address_is_the_one_connected_no_second_lookup(monkeypatch, loopback_server):
    """DNS rebinding: the name is resolved once; a second lookup (which would answer differently) never happens."""
    answers = iter(["127.0.0.1", "10.9.9.9"])
    lookups = []
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host != "media.test":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert fetch_remote(f"http://media.test:{loopback_server}/red.png", _limits("127.0.0.1/32")) == PNG
    assert lookups == ["media.test"]
