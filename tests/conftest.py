"""Shared fixtures, and the guard that keeps in-process tests on loopback.

The network rule: no test may send anything out of a real interface. Every
in-process test runs with ``socket.socket.sendto``/``connect`` wrapped so that
a destination outside 127.0.0.0/8 and ::1 fails the test loudly. (Tests that
need more run their traffic inside network namespaces they create, in
subprocesses, where this guard does not apply and cannot be needed.)
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from aioigd.session import set_default_transport
from aioigd.testing import FakeIGD

# AIOIGD_TEST_TRANSPORT=stdlib runs the whole suite over the asyncio-streams HTTP client.
if os.environ.get("AIOIGD_TEST_TRANSPORT") == "stdlib":
    set_default_transport("stdlib")

# Loopback-only mode for aioigd itself, inherited by every subprocess a test starts
# (tests/netlab.py drops it for commands run inside its isolated namespaces).
os.environ["AIOIGD_LOOPBACK_ONLY"] = "1"

_real_sendto = socket.socket.sendto
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkRuleViolation(AssertionError):
    """A test tried to reach a non-loopback address."""


def _check(address: Any) -> None:
    if not isinstance(address, tuple) or not address:
        return  # AF_UNIX paths and the like
    host = str(address[0]).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise NetworkRuleViolation(f"test tried to reach host name {host!r}") from None
    if not ip.is_loopback:
        raise NetworkRuleViolation(f"test tried to reach {host}, outside loopback")


def _guarded_sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _check(args[-1])
    return _real_sendto(self, data, *args)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any in-process test that sends to or connects outside loopback."""
    monkeypatch.setattr(socket.socket, "sendto", _guarded_sendto)
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    yield


@pytest.fixture
async def fake_igd() -> AsyncIterator[FakeIGD]:
    """A well-behaved WANIPConnection:2 fake on 127.0.0.1."""
    async with FakeIGD("127.0.0.1") as fake:
        yield fake


def loopback_search(fake: FakeIGD, **kwargs: Any) -> dict[str, Any]:
    """Discovery keywords that search only ``fake``'s loopback SSDP port."""
    return {
        "timeout": 2.0,
        "multicast": False,
        "default_gateways": False,
        "unicast": [(fake.host, fake.ssdp_port)],
        **kwargs,
    }
