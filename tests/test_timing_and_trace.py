"""The in-process traceroute on loopback (the renewal schedule is in test_lifecycle.py)."""

from __future__ import annotations

import socket
import struct

import pytest

from aioigd.netguard import NetworkPolicyError
from aioigd.traceroute import Hop, parse_extended_error, trace


def _ee(origin: int, icmp_type: int, code: int, offender: str | None) -> bytes:
    head = struct.pack("=IBBBBII", 113, origin, icmp_type, code, 0, 0, 0)
    if offender is None:
        return head
    sin = struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton(offender))
    return head + sin


def test_parse_extended_error() -> None:
    report = parse_extended_error(_ee(2, 11, 0, "192.168.1.1"))
    assert report is not None
    assert (report.origin, report.icmp_type, report.icmp_code) == (2, 11, 0)
    assert report.offender == "192.168.1.1"
    assert parse_extended_error(_ee(2, 3, 3, None)) is not None
    assert parse_extended_error(_ee(2, 3, 3, None)).offender is None  # type: ignore[union-attr]
    assert parse_extended_error(b"short") is None


async def test_trace_on_loopback_reaches_the_target_at_ttl_1() -> None:
    hops = await trace("127.0.0.1", max_hops=3, timeout=1.0)
    assert hops == [Hop(1, "127.0.0.1", reached_target=True)]


async def test_trace_refuses_bad_targets() -> None:
    with pytest.raises(ValueError):
        await trace("example.org")
    with pytest.raises(ValueError):
        await trace("127.0.0.1", max_hops=0)
    # The suite runs in loopback-only mode: a real target is refused before any probe.
    with pytest.raises(NetworkPolicyError):
        await trace("198.51.100.1")
