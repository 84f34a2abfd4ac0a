"""A free loopback port for test servers and torchrun rendezvous (one helper for every test that needs one: the
library's own, which `uniembed eval --processes` uses for its ranks)."""
from __future__ import annotations

from uniembed.launch import free_port

__all__ = ["free_port"]
