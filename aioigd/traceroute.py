"""In-process traceroute: find the routers between this host and a target, fast.

Sends one probe per TTL 1..N at once and reports who answered each, through
the platform's hop finder (:func:`aioigd.platform.hop_finder`: UDP with
``IP_RECVERR`` on Linux, ICMP datagram sockets on macOS, ``IcmpSendEcho2`` on
Windows; none needs root or admin rights). The hop addresses are the routers'
LAN-side addresses, exactly where a stacked IGD listens for SSDP and HTTP
(lab-notes.md). Used by :mod:`aioigd.multilayer`. Where no hop finder works,
:class:`~aioigd.errors.HopsUnavailable` says why (never an empty answer that
would read as "no further router").

The probe target is a parameter; the default, :data:`DEFAULT_PROBE_TARGET`,
is a public anycast address (probes to it never need to reach it: the
answers that matter come from the routers on the way).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from .netguard import check_destination
from .platform import HopFinder, hop_finder
from .platform.linux import ICMPReport, parse_extended_error

__all__ = [
    "DEFAULT_PROBE_TARGET",
    "Hop",
    "trace",
    "probe_hop",
    "check_target",
    "parse_extended_error",
    "ICMPReport",
]

#: Where probes are aimed by default (Cloudflare's resolver); override with ``probe_target``.
DEFAULT_PROBE_TARGET = "1.1.1.1"


@dataclass(frozen=True)
class Hop:
    """One router (or the target) on the path."""

    ttl: int
    address: str
    reached_target: bool = False


def check_target(target: str) -> None:
    """Raise ``ValueError`` unless ``target`` is an IPv4 literal; apply loopback-only mode."""
    try:
        socket.inet_aton(target)
    except OSError:
        raise ValueError(f"probe target must be an IPv4 address, not {target!r}") from None
    check_destination(target, "traceroute")


async def probe_hop(
    target: str,
    ttl: int,
    timeout: float = 1.5,
    attempts: int = 3,
    *,
    finder: HopFinder | None = None,
) -> Hop | None:
    """The router at ``ttl`` hops towards ``target`` (or the target itself), or None.

    Raises:
        HopsUnavailable: no hop finder works on this platform or loop.
    """
    finder = finder or hop_finder()
    # Routers rate-limit ICMP time-exceeded (Linux: icmp_ratelimit), so a lost
    # answer is retried: missing a hop would make the mapper skip a NAT layer.
    for attempt in range(attempts):
        answer = await finder.probe(target, ttl, attempt, timeout / attempts)
        if answer is not None:
            return Hop(ttl, answer.address, reached_target=answer.reached_target)
    return None


async def trace(
    target: str = DEFAULT_PROBE_TARGET,
    *,
    max_hops: int = 4,
    timeout: float = 1.5,
    attempts: int = 3,
    finder: HopFinder | None = None,
) -> list[Hop]:
    """Probe TTL 1..``max_hops`` towards ``target`` concurrently (``attempts`` tries each).

    Returns the hops that answered, by TTL, up to the target if it answered.
    Never raises for an unreachable target: an empty list means no router spoke.

    Raises:
        HopsUnavailable: no hop finder works on this platform or loop.
    """
    if not 1 <= max_hops <= 32:
        raise ValueError("max_hops must be in 1..32")
    check_target(target)
    finder = finder or hop_finder()
    probes = (
        probe_hop(target, t, timeout, max(attempts, 1), finder=finder)
        for t in range(1, max_hops + 1)
    )
    try:
        results = await asyncio.gather(*probes)
    except OSError:
        return []  # no route at all
    hops: list[Hop] = []
    for hop in results:
        if hop is None:
            continue
        hops.append(hop)
        if hop.reached_target:
            break
    return hops
