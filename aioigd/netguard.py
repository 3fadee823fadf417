"""Loopback-only mode: a switch that makes aioigd refuse every non-loopback peer.

The demo turns it on, and so do the tests (``AIOIGD_LOOPBACK_ONLY=1``), so that
a bug cannot make them search, probe or connect beyond 127.0.0.0/8 and ::1:
discovery, traceroute and HTTP all ask :func:`check_destination` first.
Namespaced lab runs (isolated networks) turn it off explicitly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator

from .errors import NetworkPolicyError

__all__ = ["NetworkPolicyError", "loopback_only", "is_loopback_only", "check_destination"]

_ENV = "AIOIGD_LOOPBACK_ONLY"
_forced = 0


def is_loopback_only() -> bool:
    """True inside :func:`loopback_only` or when ``AIOIGD_LOOPBACK_ONLY=1``."""
    return _forced > 0 or os.environ.get(_ENV) == "1"


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Refuse non-loopback destinations inside this block (re-entrant)."""
    global _forced
    _forced += 1
    try:
        yield
    finally:
        _forced -= 1


def check_destination(host: str, what: str) -> None:
    """Raise :class:`NetworkPolicyError` for a non-loopback ``host`` in loopback-only mode."""
    if not is_loopback_only():
        return
    try:
        ok = ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise NetworkPolicyError(f"loopback-only mode: refusing {what} to {host}")
