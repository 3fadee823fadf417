"""In-process traceroute: find the routers between this host and a target, fast.

Sends one UDP probe per TTL 1..N at once, each from its own socket with
``IP_TTL`` set and ``IP_RECVERR`` on (Linux; no root needed), and reads the
ICMP time-exceeded reports from each socket's error queue. The hop addresses
are the routers' LAN-side addresses, exactly where a stacked IGD listens for
SSDP and HTTP (lab-notes.md). Used by :mod:`aioigd.multilayer`.

The probe target is a parameter; the default, :data:`DEFAULT_PROBE_TARGET`,
is a public anycast address (probes to it never need to reach it: the
answers that matter come from the routers on the way).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass

from .netguard import check_destination

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
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_SO_EE_ORIGIN_ICMP = 2
_ICMP_TIME_EXCEEDED = 11
_ICMP_DEST_UNREACH = 3
_BASE_PORT = 33434


@dataclass(frozen=True)
class ICMPReport:
    """A decoded ``struct sock_extended_err`` with its offender address."""

    errno: int
    origin: int
    icmp_type: int
    icmp_code: int
    offender: str | None


@dataclass(frozen=True)
class Hop:
    """One router (or the target) on the path."""

    ttl: int
    address: str
    reached_target: bool = False


def parse_extended_error(data: bytes) -> ICMPReport | None:
    """Decode the IP_RECVERR control message (``sock_extended_err`` + ``sockaddr_in``)."""
    if len(data) < 16:
        return None
    errno_, origin, icmp_type, icmp_code = struct.unpack_from("=IBBB", data, 0)
    offender = None
    if len(data) >= 24:
        family = struct.unpack_from("=H", data, 16)[0]
        if family == socket.AF_INET:
            offender = socket.inet_ntoa(data[20:24])
    return ICMPReport(errno_, origin, icmp_type, icmp_code, offender)


def _read_report(sock: socket.socket) -> ICMPReport | None:
    try:
        _, ancdata, _, _ = sock.recvmsg(512, 512, _MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == _IP_RECVERR:
            return parse_extended_error(data)
    return None


def check_target(target: str) -> None:
    """Raise ``ValueError`` unless ``target`` is an IPv4 literal; apply loopback-only mode."""
    try:
        socket.inet_aton(target)
    except OSError:
        raise ValueError(f"probe target must be an IPv4 address, not {target!r}") from None
    check_destination(target, "traceroute")


async def _probe_once(target: str, ttl: int, port: int, wait: float) -> ICMPReport | None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        sock.connect((target, port))
        with contextlib.suppress(OSError):
            sock.send(b"aioigd-probe")
        got: asyncio.Future[ICMPReport] = loop.create_future()

        def on_event() -> None:
            report = _read_report(sock)
            if report is not None and not got.done():
                got.set_result(report)

        # epoll reports a pending error-queue entry as readable (EPOLLERR).
        loop.add_reader(sock.fileno(), on_event)
        try:
            async with asyncio.timeout(wait):
                return await got
        except TimeoutError:
            return None
        finally:
            loop.remove_reader(sock.fileno())


async def probe_hop(target: str, ttl: int, timeout: float = 1.5, attempts: int = 3) -> Hop | None:
    """The router at ``ttl`` hops towards ``target`` (or the target itself), or None."""
    # Routers rate-limit ICMP time-exceeded (Linux: icmp_ratelimit), so a lost
    # answer is retried: missing a hop would make the mapper skip a NAT layer.
    for attempt in range(attempts):
        port = _BASE_PORT + ttl + 32 * attempt
        report = await _probe_once(target, ttl, port, timeout / attempts)
        if report is None or report.origin != _SO_EE_ORIGIN_ICMP or report.offender is None:
            continue
        if report.icmp_type == _ICMP_TIME_EXCEEDED:
            return Hop(ttl, report.offender)
        if report.icmp_type == _ICMP_DEST_UNREACH:
            return Hop(ttl, report.offender, reached_target=report.offender == target)
    return None


async def trace(
    target: str = DEFAULT_PROBE_TARGET,
    *,
    max_hops: int = 4,
    timeout: float = 1.5,
    attempts: int = 3,
) -> list[Hop]:
    """Probe TTL 1..``max_hops`` towards ``target`` concurrently (``attempts`` tries each).

    Returns the hops that answered, by TTL, up to the target if it answered.
    Never raises for an unreachable target: an empty list means no router spoke.
    """
    if not 1 <= max_hops <= 32:
        raise ValueError("max_hops must be in 1..32")
    check_target(target)
    probes = (probe_hop(target, t, timeout, max(attempts, 1)) for t in range(1, max_hops + 1))
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
