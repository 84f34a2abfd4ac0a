"""The ground floor reads no network: `uniembed.media` refuses remote URLs whatever its limits say; fetching
(SSRF-guarded) lives with the server's media policy in `uniembed.serving.remote`."""
from __future__ import annotations

import socket

import pytest

from uniembed import media
from uniembed.errors import InputError
from uniembed.media import MediaLimits, load_image


def test_media_refuses_remote_urls_before_any_connection(monkeypatch):
    def no_connection(*args, **kwargs):
        raise AssertionError("the library opened a connection")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    monkeypatch.setattr(socket, "getaddrinfo", no_connection)
    with pytest.raises(InputError, match="remote URL .* not fetched.*allow-remote-media"):
        load_image("http://127.0.0.1:9/cat.png", MediaLimits(allow_remote=True, remote_allow=("127.0.0.1/32",)))


def test_media_module_holds_no_network_code():
    assert not any(hasattr(media, name) for name in ("socket", "fetch_remote", "resolve_public", "address_allowed"))
