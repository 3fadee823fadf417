"""The loopback guard itself must bite, or it proves nothing."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import NetworkRuleViolation


def test_guard_refuses_non_loopback_udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(NetworkRuleViolation):
            s.sendto(b"x", ("239.255.255.250", 1900))
        with pytest.raises(NetworkRuleViolation):
            s.connect(("192.0.2.1", 1900))


def test_guard_allows_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("127.0.0.1", 9))


async def test_discover_with_defaults_is_refused_by_the_guard() -> None:
    """Library defaults use the real network; in tests that must fail loudly, never send."""
    import aioigd

    with pytest.raises((NetworkRuleViolation, aioigd.IGDError, OSError)):
        await aioigd.discover(timeout=0.3, multicast=False, unicast=["192.0.2.1"])
