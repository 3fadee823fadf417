"""Pure timing functions (time is a parameter) and the in-process traceroute on loopback."""

from __future__ import annotations

import socket
import struct

import pytest

from aioigd.mapper import PERMANENT_RECHECK, renew_delay, retry_delay
from aioigd.netguard import NetworkPolicyError
from aioigd.traceroute import Hop, parse_extended_error, trace


@pytest.mark.parametrize(
    ("lease", "elapsed", "expected"),
    [
        (3600, 0.0, 1800.0),  # half the lease
        (3600, 1000.0, 800.0),  # time already spent counts
        (3600, 5000.0, 0.0),  # overdue: now
        (2, 0.0, 1.0),
        (1, 0.0, 0.5),  # never later than the lease itself
        (0, 0.0, PERMANENT_RECHECK),  # permanent: re-assert now and then (router reboots)
        (0, 100.0, PERMANENT_RECHECK - 100.0),
    ],
)
def test_renew_delay(lease: int, elapsed: float, expected: float) -> None:
    assert renew_delay(lease, elapsed=elapsed) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("failures", "lease", "expected"),
    [
        (1, 3600, 2.0),
        (2, 3600, 4.0),
        (6, 3600, 64.0),
        (20, 3600, 64.0),  # capped
        (5, 10, 5.0),  # at most half the lease
        (3, 1, 1.0),  # at least 1 s: never a tight loop
        (10, 0, 64.0),
    ],
)
def test_retry_delay_backs_off_with_a_floor(failures: int, lease: int, expected: float) -> None:
    assert retry_delay(failures, lease) == pytest.approx(expected)


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
