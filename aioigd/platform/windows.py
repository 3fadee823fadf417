"""Windows: default routes from GetIpForwardTable2, hops by IcmpSendEcho2 (no admin).

Routes: ``GetIpForwardTable2(AF_UNSPEC)`` (iphlpapi, Vista+) returns a
``MIB_IPFORWARD_TABLE2``: a ULONG count, then (8-aligned) that many
``MIB_IPFORWARD_ROW2`` of 104 bytes (netioapi.h; ``SOCKADDR_INET`` from ws2ipdef.h,
28 bytes; ``IP_ADDRESS_PREFIX`` 32 bytes). A default route has prefix length 0
and a non-zero next hop. The metric is the route's own; Windows adds the
interface metric when it chooses, so ``GetBestRoute2`` (same row layout) is asked
which default it would take, and that one goes first.

Hops: ``IcmpSendEcho2`` with the TTL in ``IP_OPTION_INFORMATION``, one blocking call
per probe in the default executor (Windows' Proactor loop has no ``add_reader``).
The reply buffer starts with an ``ICMP_ECHO_REPLY`` (ipexport.h): status 0 is the
target's echo reply, 11013 (IP_TTL_EXPIRED_TRANSIT) a router on the way, whose
address is in ``Address``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import socket
import sys
from collections.abc import Mapping

from ..errors import HopsUnavailable
from . import HopAnswer, HopFinder, Route, interface_name, interface_names, order_routes
from .icmp import _PAYLOAD

__all__ = [
    "SOCKADDR_IN",
    "SOCKADDR_IN6",
    "SOCKADDR_INET",
    "IP_ADDRESS_PREFIX",
    "MIB_IPFORWARD_ROW2",
    "IP_OPTION_INFORMATION",
    "ICMP_ECHO_REPLY",
    "parse_forward_table",
    "row_route",
    "best_first",
    "best_route",
    "parse_echo_reply",
    "default_routes",
    "hop_finder",
    "IcmpSendEchoFinder",
]

AF_UNSPEC = 0
AF_INET = 2
AF_INET6_WINDOWS = 23
IP_SUCCESS = 0
IP_DEST_NET_UNREACHABLE = 11002
IP_DEST_HOST_UNREACHABLE = 11003
IP_DEST_PROT_UNREACHABLE = 11004
IP_DEST_PORT_UNREACHABLE = 11005
IP_REQ_TIMED_OUT = 11010
IP_TTL_EXPIRED_TRANSIT = 11013
_UNREACHABLE = (
    IP_DEST_NET_UNREACHABLE,
    IP_DEST_HOST_UNREACHABLE,
    IP_DEST_PROT_UNREACHABLE,
    IP_DEST_PORT_UNREACHABLE,
)
#: Bound on one table (rows are 104 bytes; a host has a few dozen).
MAX_ROWS = 65536


class SOCKADDR_IN(ctypes.Structure):  # noqa: N801 - the Windows SDK's names
    """ws2def.h ``SOCKADDR_IN``: 16 bytes, family in host order, address in network order."""

    _fields_ = [
        ("sin_family", ctypes.c_ushort),
        ("sin_port", ctypes.c_ushort),
        ("sin_addr", ctypes.c_ubyte * 4),
        ("sin_zero", ctypes.c_char * 8),
    ]


class SOCKADDR_IN6(ctypes.Structure):  # noqa: N801
    """ws2ipdef.h ``SOCKADDR_IN6``: 28 bytes."""

    _fields_ = [
        ("sin6_family", ctypes.c_ushort),
        ("sin6_port", ctypes.c_ushort),
        ("sin6_flowinfo", ctypes.c_uint32),
        ("sin6_addr", ctypes.c_ubyte * 16),
        ("sin6_scope_id", ctypes.c_uint32),
    ]


class SOCKADDR_INET(ctypes.Union):  # noqa: N801
    """ws2ipdef.h ``SOCKADDR_INET``: either address, 28 bytes."""

    _fields_ = [("Ipv4", SOCKADDR_IN), ("Ipv6", SOCKADDR_IN6), ("si_family", ctypes.c_ushort)]


class IP_ADDRESS_PREFIX(ctypes.Structure):  # noqa: N801
    """netioapi.h ``IP_ADDRESS_PREFIX``: 32 bytes."""

    _fields_ = [("Prefix", SOCKADDR_INET), ("PrefixLength", ctypes.c_ubyte)]


class MIB_IPFORWARD_ROW2(ctypes.Structure):  # noqa: N801
    """netioapi.h ``MIB_IPFORWARD_ROW2``: 104 bytes, 8-aligned (``NET_LUID``)."""

    _fields_ = [
        ("InterfaceLuid", ctypes.c_uint64),
        ("InterfaceIndex", ctypes.c_uint32),
        ("DestinationPrefix", IP_ADDRESS_PREFIX),
        ("NextHop", SOCKADDR_INET),
        ("SitePrefixLength", ctypes.c_ubyte),
        ("ValidLifetime", ctypes.c_uint32),
        ("PreferredLifetime", ctypes.c_uint32),
        ("Metric", ctypes.c_uint32),
        ("Protocol", ctypes.c_int),
        ("Loopback", ctypes.c_ubyte),
        ("AutoconfigureAddress", ctypes.c_ubyte),
        ("Publish", ctypes.c_ubyte),
        ("Immortal", ctypes.c_ubyte),
        ("Age", ctypes.c_uint32),
        ("Origin", ctypes.c_int),
    ]


class IP_OPTION_INFORMATION(ctypes.Structure):  # noqa: N801
    """ipexport.h ``IP_OPTION_INFORMATION``: TTL first; 16 bytes in a 64-bit process."""

    _fields_ = [
        ("Ttl", ctypes.c_ubyte),
        ("Tos", ctypes.c_ubyte),
        ("Flags", ctypes.c_ubyte),
        ("OptionsSize", ctypes.c_ubyte),
        ("OptionsData", ctypes.c_void_p),
    ]


class ICMP_ECHO_REPLY(ctypes.Structure):  # noqa: N801
    """ipexport.h ``ICMP_ECHO_REPLY``: 40 bytes in a 64-bit process (28 in a 32-bit one)."""

    _fields_ = [
        ("Address", ctypes.c_uint32),
        ("Status", ctypes.c_uint32),
        ("RoundTripTime", ctypes.c_uint32),
        ("DataSize", ctypes.c_ushort),
        ("Reserved", ctypes.c_ushort),
        ("Data", ctypes.c_void_p),
        ("Options", IP_OPTION_INFORMATION),
    ]


def _table_offset() -> int:
    # MIB_IPFORWARD_TABLE2 { ULONG NumEntries; MIB_IPFORWARD_ROW2 Table[]; }: the rows
    # start at the row's alignment (8).
    return ctypes.alignment(MIB_IPFORWARD_ROW2)


def _next_hop(addr: SOCKADDR_INET) -> tuple[int, str, int] | None:
    if addr.si_family == AF_INET:
        v4 = ipaddress.IPv4Address(bytes(addr.Ipv4.sin_addr))
        return (4, str(v4), 0) if int(v4) else None
    if addr.si_family == AF_INET6_WINDOWS:
        v6 = ipaddress.IPv6Address(bytes(addr.Ipv6.sin6_addr))
        return (6, v6.compressed, addr.Ipv6.sin6_scope_id) if int(v6) else None
    return None


def parse_forward_table(data: bytes, names: Mapping[int, str] | None = None) -> list[Route]:
    """Default routes in a ``MIB_IPFORWARD_TABLE2`` (count, then rows).

    Rows with prefix length 0 and a non-zero next hop, not loopback. An IPv6
    link-local next hop gets the interface index as its zone (``fe80::1%12``: what
    Windows resolves). ``names`` maps interface indexes to names. Never raises.
    """
    names = names or {}
    if len(data) < 4:
        return []
    count = min(int.from_bytes(data[:4], "little"), MAX_ROWS)
    size, first = ctypes.sizeof(MIB_IPFORWARD_ROW2), _table_offset()
    routes: list[Route] = []
    for i in range(count):
        at = first + i * size
        if at + size > len(data):
            break
        row = MIB_IPFORWARD_ROW2.from_buffer_copy(data, at)
        if row.DestinationPrefix.PrefixLength != 0 or row.Loopback:
            continue
        route = row_route(row, names)
        if route is not None:
            routes.append(route)
    return routes


def row_route(row: MIB_IPFORWARD_ROW2, names: Mapping[int, str]) -> Route | None:
    """The route a ``MIB_IPFORWARD_ROW2`` names, or None without a next hop."""
    hop = _next_hop(row.NextHop)
    if hop is None:
        return None
    version, text, _ = hop
    if version == 6 and ipaddress.IPv6Address(text).is_link_local:
        text = f"{text}%{row.InterfaceIndex}"
    return Route(version, text, interface_name(row.InterfaceIndex, names), row.Metric, 0)


def best_first(routes: list[Route], best: list[Route]) -> list[Route]:
    """``routes`` with the gateways Windows itself would use (``best``) first, per family.

    The route metric alone does not say which default wins: Windows adds the interface
    metric, so :func:`GetBestRoute2`'s answer decides the first one.
    """
    chosen = {(r.version, r.gateway) for r in best}
    return sorted(routes, key=lambda r: (r.version, r.gateway) not in chosen)


def parse_echo_reply(data: bytes) -> tuple[str, int] | None:
    """(address, status) of the ``ICMP_ECHO_REPLY`` at the start of a reply buffer."""
    if len(data) < ctypes.sizeof(ICMP_ECHO_REPLY):
        return None
    reply = ICMP_ECHO_REPLY.from_buffer_copy(data)
    address = str(ipaddress.IPv4Address(reply.Address.to_bytes(4, "little")))
    return address, reply.Status


def answer_from_reply(address: str, status: int, target: str) -> HopAnswer | None:
    """The hop an IcmpSendEcho2 reply names, or None when it was no answer."""
    if address == "0.0.0.0":  # noqa: S104 - an empty reply, not a bind address
        return None
    if status == IP_SUCCESS:
        return HopAnswer(address, reached_target=True)
    if status == IP_TTL_EXPIRED_TRANSIT:
        return HopAnswer(address)
    if status in _UNREACHABLE:
        return HopAnswer(address, reached_target=address == target)
    return None


def _iphlpapi() -> ctypes.CDLL:
    """iphlpapi.dll with the prototypes we call (pointers stay 64-bit; no int truncation)."""
    if sys.platform != "win32":
        raise OSError("iphlpapi exists on Windows only")
    dll = ctypes.WinDLL("iphlpapi", use_last_error=True)
    dll.GetIpForwardTable2.argtypes = [ctypes.c_ushort, ctypes.POINTER(ctypes.c_void_p)]
    dll.GetIpForwardTable2.restype = ctypes.c_ulong
    dll.GetBestRoute2.argtypes = [
        ctypes.c_void_p,  # InterfaceLuid (NULL: any)
        ctypes.c_ulong,  # InterfaceIndex (0: any)
        ctypes.c_void_p,  # SourceAddress (NULL: any)
        ctypes.POINTER(SOCKADDR_INET),  # DestinationAddress
        ctypes.c_ulong,  # AddressSortOptions
        ctypes.POINTER(MIB_IPFORWARD_ROW2),  # BestRoute
        ctypes.POINTER(SOCKADDR_INET),  # BestSourceAddress
    ]
    dll.GetBestRoute2.restype = ctypes.c_ulong
    dll.FreeMibTable.argtypes = [ctypes.c_void_p]
    dll.FreeMibTable.restype = None
    dll.IcmpCreateFile.argtypes = []
    dll.IcmpCreateFile.restype = ctypes.c_void_p
    dll.IcmpCloseHandle.argtypes = [ctypes.c_void_p]
    dll.IcmpCloseHandle.restype = ctypes.c_int
    dll.IcmpSendEcho2.argtypes = [
        ctypes.c_void_p,  # IcmpHandle
        ctypes.c_void_p,  # Event
        ctypes.c_void_p,  # ApcRoutine
        ctypes.c_void_p,  # ApcContext
        ctypes.c_uint32,  # DestinationAddress (IPAddr)
        ctypes.c_void_p,  # RequestData
        ctypes.c_ushort,  # RequestSize
        ctypes.POINTER(IP_OPTION_INFORMATION),  # RequestOptions
        ctypes.c_void_p,  # ReplyBuffer
        ctypes.c_uint32,  # ReplySize
        ctypes.c_uint32,  # Timeout (ms)
    ]
    dll.IcmpSendEcho2.restype = ctypes.c_uint32
    return dll


def default_routes() -> list[Route]:
    """Windows' IPv4/IPv6 default routes by route metric; empty where none can be read."""
    try:
        iphlpapi = _iphlpapi()
    except OSError:
        return []
    table = ctypes.c_void_p()
    if iphlpapi.GetIpForwardTable2(AF_UNSPEC, ctypes.byref(table)) != 0 or not table.value:
        return []
    try:
        count = min(ctypes.c_uint32.from_address(table.value).value, MAX_ROWS)
        size = _table_offset() + count * ctypes.sizeof(MIB_IPFORWARD_ROW2)
        data = ctypes.string_at(table.value, size)
    finally:
        iphlpapi.FreeMibTable(table)
    names = interface_names()
    best = [r for r in (best_route(iphlpapi, a, names) for a in _BEST_ROUTE_PROBES) if r]
    return best_first(order_routes(parse_forward_table(data, names)), best)


#: Where GetBestRoute2 is asked the way to (documentation addresses: a routing-table
#: lookup, nothing is sent); any address off every local network takes a default route.
_BEST_ROUTE_PROBES = ("192.0.2.1", "2001:db8::1")


def best_route(dll: ctypes.CDLL, address: str, names: Mapping[int, str]) -> Route | None:
    dest = SOCKADDR_INET()
    if ":" in address:
        dest.Ipv6.sin6_family = AF_INET6_WINDOWS
        dest.Ipv6.sin6_addr[:] = list(socket.inet_pton(socket.AF_INET6, address))
    else:
        dest.Ipv4.sin_family = AF_INET
        dest.Ipv4.sin_addr[:] = list(socket.inet_aton(address))
    row, source = MIB_IPFORWARD_ROW2(), SOCKADDR_INET()
    rc = dll.GetBestRoute2(
        None, 0, None, ctypes.byref(dest), 0, ctypes.byref(row), ctypes.byref(source)
    )
    return row_route(row, names) if rc == 0 else None


class IcmpSendEchoFinder:
    """``IcmpSendEcho2`` with a TTL, one blocking call per probe in the executor."""

    name = "icmpsendecho2"

    def _blocking(self, target: str, ttl: int, wait: float) -> HopAnswer | None:
        if sys.platform != "win32":
            raise HopsUnavailable("IcmpSendEcho2 exists on Windows only")
        iphlpapi = _iphlpapi()
        handle = iphlpapi.IcmpCreateFile()
        if not handle or handle == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_last_error(), "IcmpCreateFile")
        try:
            options = IP_OPTION_INFORMATION(Ttl=ttl)
            reply = ctypes.create_string_buffer(ctypes.sizeof(ICMP_ECHO_REPLY) + 256)
            # IPAddr is the address in network byte order, read as a little-endian ULONG.
            dest = int.from_bytes(socket.inet_aton(target), "little")
            count = iphlpapi.IcmpSendEcho2(
                handle,
                None,
                None,
                None,
                dest,
                _PAYLOAD,
                len(_PAYLOAD),
                ctypes.byref(options),
                reply,
                len(reply),
                max(1, int(wait * 1000)),
            )
            parsed = parse_echo_reply(reply.raw)
            if count == 0 and ctypes.get_last_error() != IP_TTL_EXPIRED_TRANSIT:
                return None
            return answer_from_reply(*parsed, target) if parsed else None
        finally:
            iphlpapi.IcmpCloseHandle(handle)

    async def probe(self, target: str, ttl: int, attempt: int, wait: float) -> HopAnswer | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._blocking, target, ttl, wait)


def hop_finder(kind: str | None = None) -> HopFinder:
    """IcmpSendEcho2 (the only kind here; ``kind`` may name it)."""
    if kind not in (None, "icmp", IcmpSendEchoFinder.name):
        raise HopsUnavailable(f"no hop finder {kind!r} on Windows (icmp)")
    if sys.platform != "win32":
        raise HopsUnavailable("IcmpSendEcho2 exists on Windows only")
    return IcmpSendEchoFinder()
