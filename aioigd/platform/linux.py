"""Linux: default routes from rtnetlink (every table), hops by IP_RECVERR.

Routes come from one ``RTM_GETROUTE`` dump over a stdlib ``AF_NETLINK`` socket
(no root needed), which holds every routing table: default routes in policy
tables (``ip rule``, some VPNs) are found too, after the main table's. Where
netlink cannot be opened (seccomp sandboxes, old gVisor) ``/proc/net/route`` and
``/proc/net/ipv6_route`` are read instead (main table only).

Hops: each probe has its own socket with ``IP_TTL`` and ``IP_RECVERR``; the ICMP
time-exceeded report lands in that socket's error queue with the router's
address (no root). The probe is a UDP datagram (default) or an ICMP echo on an
ICMP datagram socket (``kind="icmp"``, allowed when the process's group is in
``net.ipv4.ping_group_range``; the same socket API macOS offers).

Layouts: <linux/netlink.h> (``struct nlmsghdr``, 16 bytes), <linux/rtnetlink.h>
(``struct rtmsg``, 12 bytes; ``struct rtattr``, 4 bytes + payload, 4-aligned;
``struct rtnexthop``, 8 bytes), <linux/errqueue.h> (``struct sock_extended_err``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import HopsUnavailable
from . import HopAnswer, HopFinder, Route, interface_name, interface_names, order_routes
from .icmp import ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_TIME_EXCEEDED, echo_request
from .probes import SocketProbe, wait_for_answer

__all__ = [
    "ICMPReport",
    "parse_extended_error",
    "parse_rtnetlink_routes",
    "parse_proc_net_route",
    "parse_proc_ipv6_route",
    "route_dump_request",
    "netlink_routes",
    "proc_routes",
    "default_routes",
    "hop_finder",
    "UdpRecvErrFinder",
    "IcmpDgramFinder",
]

NETLINK_ROUTE = 0
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
RTN_UNICAST = 1
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_MULTIPATH = 9
RTA_TABLE = 15
RTNH_F_DEAD = 0x1
RTNH_F_LINKDOWN = 0x10
_NLMSGHDR = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")
_RTNEXTHOP = struct.Struct("=HBBi")
#: Bound on one dump (a full-table BGP router would be far above; a host is far below).
MAX_DUMP_BYTES = 8 << 20

#: <linux/in.h>; only Linux has these (no fallback number: on macOS 11 is IP_MULTICAST_LOOP).
IP_RECVERR = 11
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_ICMP = 2
_BASE_PORT = 33434


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = start
    while pos + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, pos)
        if length < _RTATTR.size or pos + length > end:
            break
        out.setdefault(kind, data[pos + _RTATTR.size : pos + length])
        pos += _align(length)
    return out


def _u32(attrs: dict[int, bytes], kind: int, default: int) -> int:
    raw = attrs.get(kind, b"")
    return int.from_bytes(raw, sys.byteorder) if len(raw) == 4 else default


def _gateway(version: int, raw: bytes, ifname: str | None) -> str | None:
    if len(raw) != (4 if version == 4 else 16):
        return None
    if version == 4:
        return str(ipaddress.IPv4Address(raw))
    addr = ipaddress.IPv6Address(raw)
    return f"{addr.compressed}%{ifname}" if addr.is_link_local and ifname else addr.compressed


def parse_rtnetlink_routes(data: bytes, names: Mapping[int, str] | None = None) -> list[Route]:
    """Default routes in a ``RTM_NEWROUTE`` dump (one or more netlink messages).

    Unicast routes with a zero-length destination and a gateway (or a multipath
    gateway), not dead or link-down; every table. ``names`` maps interface indexes
    to names (:func:`~aioigd.platform.interface_names`; else numbers). Malformed
    messages end the parse; never raises.
    """
    names = names or {}
    routes: list[Route] = []
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size or pos + length > len(data):
            break
        body, end = pos + _NLMSGHDR.size, pos + length
        pos += _align(length)
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            break
        if kind != RTM_NEWROUTE or body + _RTMSG.size > end:
            continue
        family, dst_len, _, _, table, _, _, rtype, flags = _RTMSG.unpack_from(data, body)
        if family not in (socket.AF_INET, socket.AF_INET6) or dst_len != 0:
            continue
        if rtype != RTN_UNICAST or flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN):
            continue
        version = 4 if family == socket.AF_INET else 6
        attrs = _attrs(data, body + _RTMSG.size, end)
        table = _u32(attrs, RTA_TABLE, table)
        metric = _u32(attrs, RTA_PRIORITY, 0)
        hops: list[tuple[int, bytes]] = []
        if RTA_GATEWAY in attrs:
            hops.append((_u32(attrs, RTA_OIF, 0), attrs[RTA_GATEWAY]))
        multipath = attrs.get(RTA_MULTIPATH, b"")
        at = 0
        while at + _RTNEXTHOP.size <= len(multipath):
            nh_len, nh_flags, _, nh_if = _RTNEXTHOP.unpack_from(multipath, at)
            if nh_len < _RTNEXTHOP.size or at + nh_len > len(multipath):
                break
            nh_attrs = _attrs(multipath, at + _RTNEXTHOP.size, at + nh_len)
            if RTA_GATEWAY in nh_attrs and not nh_flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN):
                hops.append((nh_if, nh_attrs[RTA_GATEWAY]))
            at += _align(nh_len)
        for oif, raw in hops:
            ifname = interface_name(oif, names)
            gw = _gateway(version, raw, ifname)
            if gw is not None:
                routes.append(Route(version, gw, ifname, metric, table))
    return routes


def route_dump_request(family: int = socket.AF_UNSPEC, seq: int = 1) -> bytes:
    """The ``RTM_GETROUTE`` dump request for ``family`` (every table)."""
    body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETROUTE, flags, seq, 0) + body


def _dump_done(chunk: bytes) -> bool:
    pos = 0
    while pos + _NLMSGHDR.size <= len(chunk):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(chunk, pos)
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if length < _NLMSGHDR.size:
            return True
        pos += _align(length)
    return False


def netlink_routes(timeout: float = 2.0) -> list[Route]:
    """Every table's default routes, read from rtnetlink; raises OSError if it cannot."""
    if sys.platform != "linux":
        raise OSError("rtnetlink exists on Linux only")
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        sock.send(route_dump_request())
        data = bytearray()
        while len(data) < MAX_DUMP_BYTES:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
            if _dump_done(chunk):
                break
    return parse_rtnetlink_routes(bytes(data), interface_names())


def parse_proc_net_route(text: str) -> list[str]:
    """Default-route gateways from the text of ``/proc/net/route`` (Linux).

    Rows whose destination and mask are 0 and whose RTF_UP (0x1) and RTF_GATEWAY
    (0x2) flags are set, best metric first; addresses are little-endian hex.
    Malformed rows are skipped.
    """
    return [r.gateway for r in order_routes(_proc_v4(text))]


def _proc_v4(text: str) -> list[Route]:
    found: list[Route] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, gw, flags, mask = (int(fields[i], 16) for i in (1, 2, 3, 7))
            metric = int(fields[6])
        except ValueError:
            continue
        if dest == 0 and mask == 0 and flags & 0x3 == 0x3 and 0 < gw <= 0xFFFFFFFF:
            addr = str(ipaddress.IPv4Address(struct.pack("<I", gw)))
            found.append(Route(4, addr, fields[0], metric, 254))
    return found


def parse_proc_ipv6_route(text: str) -> list[str]:
    """IPv6 default routers from ``/proc/net/ipv6_route`` (Linux), as ``addr%dev``.

    Rows with destination ::/0 and a non-zero next hop; link-local next hops
    carry their interface as zone id so they can be reached.
    """
    return [r.gateway for r in _proc_v6(text)]


def _proc_v6(text: str) -> list[Route]:
    routes: list[Route] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or not _hex(fields[0]) or not _hex(fields[4]):
            continue
        is_default = int(fields[0], 16) == 0 and fields[1] == "00"
        if not is_default or int(fields[4], 16) == 0:
            continue
        addr = ipaddress.IPv6Address(bytes.fromhex(fields[4]))
        text_addr = f"{addr.compressed}%{fields[9]}" if addr.is_link_local else addr.compressed
        metric = int(fields[5], 16) if _hex(fields[5], 8) else 0
        if all(r.gateway != text_addr for r in routes):
            routes.append(Route(6, text_addr, fields[9], metric, 254))
    return routes


def _hex(text: str, width: int = 32) -> bool:
    return len(text) == width and all(c in "0123456789abcdefABCDEF" for c in text)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return ""


def proc_routes(
    route_path: str = "/proc/net/route", ipv6_path: str = "/proc/net/ipv6_route"
) -> list[Route]:
    """Default routes from /proc (main table only); empty where the files are missing."""
    return order_routes(_proc_v4(_read(route_path)) + _proc_v6(_read(ipv6_path)))


def default_routes() -> list[Route]:
    """Every table's default routes from rtnetlink, else from /proc; best first."""
    try:
        return order_routes(netlink_routes())
    except OSError:
        return proc_routes()


# -- hops -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ICMPReport:
    """A decoded ``struct sock_extended_err`` with its offender address."""

    errno: int
    origin: int
    icmp_type: int
    icmp_code: int
    offender: str | None


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


def answer_from_report(report: ICMPReport | None, target: str) -> HopAnswer | None:
    """The hop an error-queue report names, or None for anything but an ICMP report."""
    if report is None or report.origin != SO_EE_ORIGIN_ICMP or report.offender is None:
        return None
    if report.icmp_type == ICMP_TIME_EXCEEDED:
        return HopAnswer(report.offender)
    if report.icmp_type == ICMP_DEST_UNREACH:
        return HopAnswer(report.offender, reached_target=report.offender == target)
    return None


class _ErrQueueProbe:
    """A probe socket whose ICMP errors arrive on its error queue (IP_RECVERR)."""

    def __init__(self, sock: socket.socket, target: str) -> None:
        self.sock = sock
        self.target = target

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> HopAnswer | None:
        if sys.platform == "win32":
            raise OSError("no error queue on Windows")
        if self.sock.type == socket.SOCK_DGRAM and self.sock.proto == socket.IPPROTO_ICMP:
            try:
                data, peer = self.sock.recvfrom(512, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                pass  # the ICMP error's errno (sk_err); its details are on the error queue
            else:
                if data[:1] == bytes([ICMP_ECHO_REPLY]):  # no IP header on Linux ping sockets
                    return HopAnswer(str(peer[0]), reached_target=True)
        try:
            _, ancdata, _, _ = self.sock.recvmsg(512, 512, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        for level, kind, data in ancdata:
            if level == socket.IPPROTO_IP and kind == IP_RECVERR:
                return answer_from_report(parse_extended_error(data), self.target)
        return None

    def close(self) -> None:
        self.sock.close()


def _open(proto: int, ttl: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class UdpRecvErrFinder:
    """UDP probes to closed high ports, ICMP reports from the error queue (no root)."""

    name = "udp-recverr"

    async def probe(self, target: str, ttl: int, attempt: int, wait: float) -> HopAnswer | None:
        def make() -> SocketProbe:
            sock = _open(0, ttl)
            try:
                sock.connect((target, _BASE_PORT + ttl + 32 * attempt))
                with contextlib.suppress(OSError):
                    sock.send(b"aioigd-probe")
            except BaseException:
                sock.close()
                raise
            return _ErrQueueProbe(sock, target)

        return await wait_for_answer(make, wait)


class IcmpDgramFinder:
    """ICMP echo on an ICMP datagram socket ("ping socket"), errors from the error queue."""

    name = "icmp-dgram"

    async def probe(self, target: str, ttl: int, attempt: int, wait: float) -> HopAnswer | None:
        def make() -> SocketProbe:
            sock = _open(socket.IPPROTO_ICMP, ttl)
            try:
                # The kernel sets the identifier (the socket's "port") and the checksum.
                sock.sendto(echo_request(0, ttl + 32 * attempt), (target, 0))
            except BlockingIOError:
                pass
            except BaseException:
                sock.close()
                raise
            return _ErrQueueProbe(sock, target)

        return await wait_for_answer(make, wait)


def ping_sockets_allowed() -> bool:
    """True when this process may open ICMP datagram sockets (``ping_group_range``)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
    except OSError:
        return False
    return True


def hop_finder(kind: str | None = None) -> HopFinder:
    """``udp`` (default: works for every user) or ``icmp`` (ping sockets)."""
    if kind in (None, "udp", UdpRecvErrFinder.name):
        return UdpRecvErrFinder()
    if kind in ("icmp", IcmpDgramFinder.name):
        if not ping_sockets_allowed():
            raise HopsUnavailable(
                "ICMP datagram sockets are not allowed for this process's group "
                "(net.ipv4.ping_group_range)"
            )
        return IcmpDgramFinder()
    raise HopsUnavailable(f"no hop finder {kind!r} on Linux (udp, icmp)")
