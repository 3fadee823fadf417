"""macOS: default routes from the ``sysctl`` routing dump, hops by ICMP datagram sockets.

Routes: ``sysctl({CTL_NET, PF_ROUTE, 0, 0, NET_RT_FLAGS, RTF_GATEWAY})`` through
ctypes returns every gatewayed route as a ``struct rt_msghdr`` followed by the
sockaddrs its ``rtm_addrs`` bits name (RTA_DST, RTA_GATEWAY, RTA_NETMASK, ...),
each padded to 4 bytes. No root needed. Layouts: macOS <net/route.h>
(``rt_msghdr``: 92 bytes, ``rt_metrics``: 14 x 32-bit), <netinet/in.h>
(``sockaddr_in`` 16, ``sockaddr_in6`` 28, ``AF_INET6`` = 30), <net/if_dl.h>
(``sockaddr_dl``). FreeBSD's ``rt_msghdr`` differs (its ``rt_metrics`` holds
``u_long``), so only macOS's layout is parsed.

Hops: ICMP echo requests with ``IP_TTL`` on ``SOCK_DGRAM, IPPROTO_ICMP`` (allowed
without root on macOS). Such a socket receives ICMP messages with their IPv4
header, like a raw socket; :func:`~aioigd.platform.icmp.parse_icmp_datagram` keeps
only the echo reply and the errors that quote our own request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import os
import random
import socket
import sys
from collections.abc import Mapping

from ..errors import HopsUnavailable
from . import HopAnswer, HopFinder, Route, interface_name, interface_names, order_routes
from .icmp import ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, echo_request, parse_icmp_datagram
from .probes import SocketProbe, wait_for_answer

__all__ = [
    "RtMetrics",
    "RtMsghdr",
    "parse_route_dump",
    "sysctl_route_dump",
    "default_routes",
    "hop_finder",
    "IcmpDatagramFinder",
]

CTL_NET = 4
PF_ROUTE = 17
NET_RT_FLAGS = 2
RTM_VERSION = 5
RTF_UP = 0x1
RTF_GATEWAY = 0x2
RTF_IFSCOPE = 0x1000000
#: Bits of ``rtm_addrs``, in the order their sockaddrs follow the header.
RTA_DST, RTA_GATEWAY, RTA_NETMASK = 0x1, 0x2, 0x4
RTAX_MAX = 8
#: macOS address families (<sys/socket.h>): AF_INET6 is 30 there, not Linux's 10.
AF_INET = 2
AF_LINK = 18
AF_INET6_DARWIN = 30
#: Bound on one dump (a host's table is a few KiB).
MAX_DUMP_BYTES = 8 << 20


class RtMetrics(ctypes.Structure):
    """``struct rt_metrics`` (macOS <net/route.h>): 14 x 32-bit, 56 bytes."""

    _fields_ = [
        ("rmx_locks", ctypes.c_uint32),
        ("rmx_mtu", ctypes.c_uint32),
        ("rmx_hopcount", ctypes.c_uint32),
        ("rmx_expire", ctypes.c_int32),
        ("rmx_recvpipe", ctypes.c_uint32),
        ("rmx_sendpipe", ctypes.c_uint32),
        ("rmx_ssthresh", ctypes.c_uint32),
        ("rmx_rtt", ctypes.c_uint32),
        ("rmx_rttvar", ctypes.c_uint32),
        ("rmx_pksent", ctypes.c_uint32),
        ("rmx_state", ctypes.c_uint32),
        ("rmx_filler", ctypes.c_uint32 * 3),
    ]


class RtMsghdr(ctypes.Structure):
    """``struct rt_msghdr`` (macOS <net/route.h>): 92 bytes, metrics at offset 36."""

    _fields_ = [
        ("rtm_msglen", ctypes.c_ushort),
        ("rtm_version", ctypes.c_ubyte),
        ("rtm_type", ctypes.c_ubyte),
        ("rtm_index", ctypes.c_ushort),
        ("rtm_flags", ctypes.c_int),
        ("rtm_addrs", ctypes.c_int),
        ("rtm_pid", ctypes.c_int32),
        ("rtm_seq", ctypes.c_int),
        ("rtm_errno", ctypes.c_int),
        ("rtm_use", ctypes.c_int),
        ("rtm_inits", ctypes.c_uint32),
        ("rtm_rmx", RtMetrics),
    ]


def _roundup(length: int) -> int:
    # <net/route.h> ROUNDUP: a zero-length sockaddr still takes 4 bytes.
    return 4 if length == 0 else 1 + ((length - 1) | 3)


def _address(sa: bytes) -> tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """(family, address) of a sockaddr_in/in6; None for other families."""
    if len(sa) < 2:
        return None
    family = sa[1]
    if family == AF_INET:
        raw = sa[4:8].ljust(4, b"\0")  # a netmask may be cut short
        return 4, ipaddress.IPv4Address(raw)
    if family == AF_INET6_DARWIN:
        raw = sa[8:24].ljust(16, b"\0")
        return 6, ipaddress.IPv6Address(raw)
    return None


def _is_zero(sa: bytes | None) -> bool:
    if sa is None or len(sa) < 2:
        return True  # no netmask, or a zero-length one: 0.0.0.0 / ::
    found = _address(sa)
    return found is not None and int(found[1]) == 0


def parse_route_dump(data: bytes, names: Mapping[int, str] | None = None) -> list[Route]:
    """Default routes in a macOS ``NET_RT_FLAGS`` routing dump (``rt_msghdr`` + sockaddrs).

    Up, gatewayed routes whose destination and netmask are zero and whose gateway is
    an IPv4/IPv6 address; a KAME-embedded scope in a link-local gateway becomes its
    zone. Interface-scoped defaults (RTF_IFSCOPE) follow the primary one. Malformed
    messages end the parse; never raises.
    """
    names = names or {}
    head = ctypes.sizeof(RtMsghdr)
    routes: list[Route] = []
    pos = 0
    while pos + head <= len(data):
        msg = RtMsghdr.from_buffer_copy(data, pos)
        end = pos + msg.rtm_msglen
        if msg.rtm_msglen < head or end > len(data):
            break
        start, pos = pos + head, end
        if msg.rtm_version != RTM_VERSION:
            continue
        if msg.rtm_flags & (RTF_UP | RTF_GATEWAY) != RTF_UP | RTF_GATEWAY:
            continue
        sockaddrs: dict[int, bytes] = {}
        at = start
        for bit in range(RTAX_MAX):
            if not msg.rtm_addrs & (1 << bit):
                continue
            if at >= end:
                break
            length = data[at]
            sockaddrs[1 << bit] = data[at : at + length] if length else b""
            at += _roundup(length)
        dst = _address(sockaddrs.get(RTA_DST, b""))
        gw = _address(sockaddrs.get(RTA_GATEWAY, b""))
        if dst is None or gw is None or int(dst[1]) != 0 or dst[0] != gw[0]:
            continue
        if not _is_zero(sockaddrs.get(RTA_NETMASK)):
            continue
        name = interface_name(msg.rtm_index, names)
        version, addr = gw
        text = str(addr)
        if isinstance(addr, ipaddress.IPv6Address) and addr.is_link_local:
            packed = bytearray(addr.packed)
            embedded = int.from_bytes(packed[2:4], "big")
            packed[2:4] = b"\0\0"
            zone = interface_name(embedded, names) if embedded else name
            text = ipaddress.IPv6Address(bytes(packed)).compressed + (f"%{zone}" if zone else "")
        metric = 1 if msg.rtm_flags & RTF_IFSCOPE else 0
        routes.append(Route(version, text, name, metric, 0))
    return routes


def sysctl_route_dump(family: int = 0) -> bytes:
    """The kernel's gatewayed routes as one ``NET_RT_FLAGS`` dump (macOS); OSError if not."""
    if sys.platform != "darwin":
        raise OSError("the PF_ROUTE sysctl dump is read on macOS only")
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.sysctl.argtypes = [
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    libc.sysctl.restype = ctypes.c_int
    mib = (ctypes.c_int * 6)(CTL_NET, PF_ROUTE, 0, family, NET_RT_FLAGS, RTF_GATEWAY)
    for _ in range(3):  # the table can grow between the size query and the read
        size = ctypes.c_size_t(0)
        if libc.sysctl(mib, 6, None, ctypes.byref(size), None, 0) != 0:
            raise OSError(ctypes.get_errno(), "sysctl(NET_RT_FLAGS) size")
        size.value = min(size.value * 2 + 1024, MAX_DUMP_BYTES)
        buf = ctypes.create_string_buffer(size.value)
        if libc.sysctl(mib, 6, buf, ctypes.byref(size), None, 0) == 0:
            return buf.raw[: size.value]
        err = ctypes.get_errno()
        if err != 12:  # ENOMEM: grown meanwhile, ask again
            raise OSError(err, "sysctl(NET_RT_FLAGS)")
    raise OSError(12, "sysctl(NET_RT_FLAGS): table keeps growing")


def default_routes() -> list[Route]:
    """macOS's IPv4/IPv6 default routes, primary first; empty where none can be read."""
    try:
        return order_routes(parse_route_dump(sysctl_route_dump(), interface_names()))
    except OSError:
        return []


# -- hops -------------------------------------------------------------------------------------


class _DatagramProbe:
    """An ICMP socket that receives whole IPv4 datagrams (macOS dgram, or raw anywhere)."""

    def __init__(self, sock: socket.socket, target: str, ident: int, seq: int) -> None:
        self.sock, self.target, self.ident, self.seq = sock, target, ident, seq

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> HopAnswer | None:
        data = self.sock.recv(1500)
        answer = parse_icmp_datagram(data, self.ident, self.seq)
        if answer is None:
            return None  # another probe's (every ICMP socket sees every ICMP message)
        reached = answer.icmp_type == ICMP_ECHO_REPLY or (
            answer.icmp_type == ICMP_DEST_UNREACH and answer.source == self.target
        )
        return HopAnswer(answer.source, reached_target=reached)

    def close(self) -> None:
        self.sock.close()


class IcmpDatagramFinder:
    """ICMP echo with ``IP_TTL``; answers read whole from the ICMP socket.

    ``sock_type`` is ``SOCK_DGRAM`` (macOS, no root); ``SOCK_RAW`` gives the same
    receive semantics on Linux as root (how the lab tests this code).
    """

    name = "icmp-dgram"

    def __init__(self, sock_type: int = socket.SOCK_DGRAM) -> None:
        self.sock_type = sock_type
        self.ident = os.getpid() & 0xFFFF
        # Every ICMP socket sees every answer: sequence numbers tell the probes apart.
        self._seq_base = random.randrange(0, 0x8000)  # noqa: S311 - not a secret

    async def probe(self, target: str, ttl: int, attempt: int, wait: float) -> HopAnswer | None:
        seq = (self._seq_base + ttl + 64 * attempt) & 0xFFFF

        def make() -> SocketProbe:
            sock = socket.socket(socket.AF_INET, self.sock_type, socket.IPPROTO_ICMP)
            try:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                sock.setblocking(False)
                sock.sendto(echo_request(self.ident, seq), (target, 0))
            except BlockingIOError:
                pass
            except BaseException:
                sock.close()
                raise
            return _DatagramProbe(sock, target, self.ident, seq)

        return await wait_for_answer(make, wait)


def hop_finder(kind: str | None = None) -> HopFinder:
    """ICMP datagram sockets (the only kind here; ``kind`` may name it)."""
    if kind not in (None, "icmp", IcmpDatagramFinder.name):
        raise HopsUnavailable(f"no hop finder {kind!r} on macOS (icmp)")
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
    except OSError as exc:
        raise HopsUnavailable(f"ICMP datagram sockets are not available: {exc}") from exc
    return IcmpDatagramFinder()
