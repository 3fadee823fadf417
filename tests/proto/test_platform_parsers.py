"""The platform layer's byte parsers on fixtures built from the documented layouts.

Every fixture is packed here with ``struct`` from the C headers' field lists (named
at each builder), independently of the ctypes declarations the parsers use, and the
ctypes declarations' sizes and offsets are checked against the same layouts. Native
byte order: Linux, macOS and Windows hosts are little-endian where these tests run.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Any

import pytest

from aioigd.platform import (
    HopAnswer,
    Route,
    bsd,
    linux,
    order_routes,
    subnet_gateway_candidates,
    windows,
)
from aioigd.platform.icmp import checksum, echo_request, parse_icmp_datagram

# -- Linux rtnetlink ---------------------------------------------------------------------------
# <linux/netlink.h> struct nlmsghdr { __u32 len; __u16 type; __u16 flags; __u32 seq; __u32 pid; }
# <linux/rtnetlink.h> struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope,
# type; u32 flags; } and struct rtattr { u16 len; u16 type; } + payload padded to 4 bytes.


def rta(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def nlmsg(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body


def rtmsg(family: int, dst_len: int = 0, table: int = 254, rtype: int = 1, flags: int = 0) -> bytes:
    return struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, table, 3, 0, rtype, flags)


def route_msg(family: int, *attrs: bytes, **kw: int) -> bytes:
    return nlmsg(24, rtmsg(family, **kw) + b"".join(attrs))


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


NAMES = {2: "eth0", 3: "wg0"}
V4 = socket.AF_INET
V6 = socket.AF_INET6
GW6_LL = socket.inet_pton(V6, "fe80::1")


def test_rtnetlink_dump_every_table_multipath_and_skips() -> None:
    # struct rtnexthop { u16 len; u8 flags; u8 hops; int ifindex; } + its rtattrs.
    nh = rta(5, socket.inet_aton("10.9.0.1"))
    nexthop = struct.pack("=HBBi", 8 + len(nh), 0, 0, 3) + nh
    dead_nh = rta(5, socket.inet_aton("10.9.0.2"))
    dead = struct.pack("=HBBi", 8 + len(dead_nh), 0x1, 0, 3) + dead_nh
    dump = b"".join(
        [
            route_msg(
                V4, rta(5, socket.inet_aton("192.168.1.1")), rta(4, u32(2)), rta(6, u32(100))
            ),
            # A policy-routing table (ip rule ... lookup 100), table id in RTA_TABLE.
            route_msg(V4, rta(15, u32(100)), rta(5, socket.inet_aton("192.168.1.254")), table=252),
            route_msg(V4, rta(9, nexthop + dead), rta(15, u32(200))),
            route_msg(V6, rta(5, GW6_LL), rta(4, u32(2)), rta(6, u32(1024))),
            # Not defaults / not usable: a /24, a linkdown default, a blackhole, no gateway.
            route_msg(V4, rta(1, socket.inet_aton("10.0.0.0")), rta(5, b"\1\2\3\4"), dst_len=24),
            route_msg(V4, rta(5, socket.inet_aton("192.168.9.1")), flags=0x10),
            route_msg(V4, rta(5, socket.inet_aton("192.168.8.1")), rtype=6),
            route_msg(V4, rta(4, u32(2))),
            nlmsg(3, u32(0)),  # NLMSG_DONE ends the dump
            route_msg(V4, rta(5, socket.inet_aton("1.2.3.4"))),
        ]
    )
    assert linux.parse_rtnetlink_routes(dump, NAMES) == [
        Route(4, "192.168.1.1", "eth0", 100, 254),
        Route(4, "192.168.1.254", None, 0, 100),
        Route(4, "10.9.0.1", "wg0", 0, 200),
        Route(6, "fe80::1%eth0", "eth0", 1024, 254),
    ]
    # Main table first, then by metric.
    assert [r.gateway for r in order_routes(linux.parse_rtnetlink_routes(dump, NAMES))][:3] == [
        "192.168.1.1",
        "fe80::1%eth0",
        "192.168.1.254",
    ]


@pytest.mark.parametrize("cut", [0, 3, 15, 17, 30, 41])
def test_rtnetlink_truncated_never_raises(cut: int) -> None:
    dump = route_msg(V4, rta(5, socket.inet_aton("192.168.1.1")), rta(4, u32(2)))
    assert linux.parse_rtnetlink_routes(dump[:cut], NAMES) == []
    bad_len = struct.pack("=HH", 200, 5) + b"\xc0\xa8\x01\x01"  # rtattr longer than the message
    assert linux.parse_rtnetlink_routes(route_msg(V4, bad_len), NAMES) == []


def test_route_dump_request_layout() -> None:
    req = linux.route_dump_request(socket.AF_UNSPEC, seq=7)
    assert struct.unpack("=IHHII", req[:16]) == (28, 26, 0x301, 7, 0)
    assert req[16:] == bytes(12)


# -- macOS sysctl NET_RT_FLAGS dump --------------------------------------------------------------
# macOS <net/route.h>: struct rt_msghdr { u_short rtm_msglen; u_char rtm_version; u_char rtm_type;
# u_short rtm_index; (2 pad) int rtm_flags; int rtm_addrs; pid_t rtm_pid; int rtm_seq; int
# rtm_errno; int rtm_use; u_int32_t rtm_inits; struct rt_metrics rtm_rmx; } where rt_metrics is
# 14 x 32-bit (rmx_locks .. rmx_state, rmx_filler[3]): "=HBBH2xiiiiiiI" + 56 bytes = 92.
# <netinet/in.h> sockaddr_in { u_char len=16; u_char family=2; u_short port; in_addr; zero[8] },
# sockaddr_in6 { len=28; family=30; port; u_int32 flowinfo; in6_addr; u_int32 scope_id },
# <net/if_dl.h> sockaddr_dl { len; family=18; u_short index; u_char type, nlen, alen, slen;
# char data[12] }. Each sockaddr is padded to 4 bytes; a zero-length one takes 4.


def rt_msghdr(length: int, index: int, flags: int, addrs: int, version: int = 5) -> bytes:
    return struct.pack("=HBBH2xiiiiiiI", length, version, 4, index, flags, addrs, 0, 0, 0, 0, 0) + (
        b"\0" * 56
    )


def sin(addr: str) -> bytes:
    return struct.pack("=BBH4s8x", 16, 2, 0, socket.inet_aton(addr))


def sin6(packed: bytes, scope: int = 0) -> bytes:
    return struct.pack("=BBHI16sI", 28, 30, 0, 0, packed, scope)


def sdl(index: int) -> bytes:
    return struct.pack("=BBHBBBB12x", 20, 18, index, 6, 0, 0, 0)


def rt_message(index: int, flags: int, *sockaddrs: tuple[int, bytes]) -> bytes:
    addrs = 0
    body = b""
    for bit, sa in sockaddrs:
        addrs |= bit
        body += sa + b"\0" * (-len(sa) % 4 if sa else 4)
    return rt_msghdr(92 + len(body), index, flags, addrs) + body


UP_GW = 0x1 | 0x2
DST, GW, MASK, IFP = 0x1, 0x2, 0x4, 0x10
KAME_LL = bytes.fromhex("fe800004000000000000000000000001")  # fe80:4::1: scope 4 embedded


def test_rt_msghdr_declaration_matches_the_header() -> None:
    assert ctypes.sizeof(bsd.RtMetrics) == 56
    assert ctypes.sizeof(bsd.RtMsghdr) == 92
    offsets = {name: getattr(bsd.RtMsghdr, name).offset for name, *_ in bsd.RtMsghdr._fields_}
    assert offsets == {
        "rtm_msglen": 0,
        "rtm_version": 2,
        "rtm_type": 3,
        "rtm_index": 4,
        "rtm_flags": 8,
        "rtm_addrs": 12,
        "rtm_pid": 16,
        "rtm_seq": 20,
        "rtm_errno": 24,
        "rtm_use": 28,
        "rtm_inits": 32,
        "rtm_rmx": 36,
    }
    assert struct.calcsize("=HBBH2xiiiiiiI") + 56 == 92


def test_sysctl_dump_defaults_scoped_kame_and_skips() -> None:
    names = {4: "en0", 5: "en1"}
    dump = b"".join(
        [
            # Primary default: dst 0.0.0.0, gateway, zero-length netmask (4 bytes of padding).
            rt_message(4, UP_GW, (DST, sin("0.0.0.0")), (GW, sin("192.168.1.1")), (MASK, b"")),
            # Interface-scoped default on en1 (RTF_IFSCOPE) with an explicit zero netmask.
            rt_message(
                5,
                UP_GW | 0x1000000,
                (DST, sin("0.0.0.0")),
                (GW, sin("10.0.0.1")),
                (MASK, struct.pack("=BB2x", 4, 2) + b""),
                (IFP, sdl(5)),
            ),
            # IPv6 default via a link-local router, KAME-embedded scope.
            rt_message(4, UP_GW, (DST, sin6(bytes(16))), (GW, sin6(KAME_LL)), (MASK, b"")),
            # Not defaults: a /24, a down route, a link-layer gateway, an old version.
            rt_message(
                4,
                UP_GW,
                (DST, sin("10.1.0.0")),
                (GW, sin("10.1.0.1")),
                (MASK, sin("255.255.255.0")),
            ),
            rt_message(4, 0x2, (DST, sin("0.0.0.0")), (GW, sin("192.168.7.1"))),
            rt_message(4, UP_GW, (DST, sin("0.0.0.0")), (GW, sdl(4))),
        ]
    )
    old = bytearray(rt_message(4, UP_GW, (DST, sin("0.0.0.0")), (GW, sin("192.168.6.1"))))
    old[2] = 4
    routes = bsd.parse_route_dump(dump + bytes(old), names)
    assert routes == [
        Route(4, "192.168.1.1", "en0", 0, 0),
        Route(4, "10.0.0.1", "en1", 1, 0),
        Route(6, "fe80::1%en0", "en0", 0, 0),
    ]
    for cut in (0, 10, 91, 95, len(dump) - 3):
        bsd.parse_route_dump(dump[:cut], names)  # never raises
    assert bsd.parse_route_dump(dump[:95], names) == []


# -- Windows GetIpForwardTable2 ----------------------------------------------------------------
# netioapi.h MIB_IPFORWARD_ROW2 (x64 and x86 alike, 8-aligned by NET_LUID):
#   0 NET_LUID InterfaceLuid (u64)        8 NET_IFINDEX InterfaceIndex (u32)
#  12 IP_ADDRESS_PREFIX DestinationPrefix { SOCKADDR_INET Prefix (28); UINT8 PrefixLength; 3 pad }
#  44 SOCKADDR_INET NextHop (28)         72 UCHAR SitePrefixLength (3 pad)
#  76 ULONG ValidLifetime  80 ULONG PreferredLifetime  84 ULONG Metric  88 NL_ROUTE_PROTOCOL
#  92 BOOLEAN Loopback, AutoconfigureAddress, Publish, Immortal  96 ULONG Age  100 NL_ROUTE_ORIGIN
# = 104 bytes. ws2ipdef.h SOCKADDR_INET: SOCKADDR_IN { u16 family=2; u16 port; in_addr; zero[8] }
# or SOCKADDR_IN6 { u16 family=23; u16 port; u32 flowinfo; in6_addr; u32 scope_id } (28).
# MIB_IPFORWARD_TABLE2 { ULONG NumEntries; (4 pad) MIB_IPFORWARD_ROW2 Table[]; }.


def sockaddr_inet(addr: str) -> bytes:
    if ":" in addr:
        return struct.pack("<HHI16sI", 23, 0, 0, socket.inet_pton(V6, addr), 0)
    return struct.pack("<HH4s8x", 2, 0, socket.inet_aton(addr)) + bytes(12)


def row2(index: int, prefix: str, plen: int, hop: str, metric: int, loopback: int = 0) -> bytes:
    raw = struct.pack("<QI", 0x6000000000000 + index, index)
    raw += sockaddr_inet(prefix) + struct.pack("<B3x", plen)
    raw += sockaddr_inet(hop) + struct.pack("<B3x", 0)
    raw += struct.pack("<IIIiBBBBIi", 0xFFFFFFFF, 0xFFFFFFFF, metric, 3, loopback, 0, 0, 0, 0, 1)
    assert len(raw) == 104
    return raw


def forward_table(*rows: bytes) -> bytes:
    return struct.pack("<I4x", len(rows)) + b"".join(rows)


def test_forward_row_declaration_matches_netioapi() -> None:
    assert ctypes.sizeof(windows.SOCKADDR_IN) == 16
    assert ctypes.sizeof(windows.SOCKADDR_IN6) == 28
    assert ctypes.sizeof(windows.SOCKADDR_INET) == 28
    assert ctypes.sizeof(windows.IP_ADDRESS_PREFIX) == 32
    assert ctypes.sizeof(windows.MIB_IPFORWARD_ROW2) == 104
    assert ctypes.alignment(windows.MIB_IPFORWARD_ROW2) == 8
    row = windows.MIB_IPFORWARD_ROW2
    offsets = {name: getattr(row, name).offset for name, *_ in row._fields_}
    assert offsets == {
        "InterfaceLuid": 0,
        "InterfaceIndex": 8,
        "DestinationPrefix": 12,
        "NextHop": 44,
        "SitePrefixLength": 72,
        "ValidLifetime": 76,
        "PreferredLifetime": 80,
        "Metric": 84,
        "Protocol": 88,
        "Loopback": 92,
        "AutoconfigureAddress": 93,
        "Publish": 94,
        "Immortal": 95,
        "Age": 96,
        "Origin": 100,
    }
    assert windows.IP_ADDRESS_PREFIX.PrefixLength.offset == 28
    assert windows.SOCKADDR_IN6.sin6_addr.offset == 8
    assert windows.SOCKADDR_IN6.sin6_scope_id.offset == 24


def test_forward_table_defaults() -> None:
    table = forward_table(
        row2(12, "0.0.0.0", 0, "192.168.1.1", 25),
        row2(12, "192.168.1.0", 24, "0.0.0.0", 281),  # on-link: not a default
        row2(7, "0.0.0.0", 0, "0.0.0.0", 5),  # no next hop
        row2(1, "0.0.0.0", 0, "127.0.0.1", 0, loopback=1),
        row2(12, "::", 0, "fe80::1", 256),
        row2(9, "::", 0, "2001:db8::1", 10),
        row2(13, "0.0.0.0", 0, "10.0.0.1", 5),
    )
    names = {12: "Ethernet", 13: "Wi-Fi"}
    routes = windows.parse_forward_table(table, names)
    assert routes == [
        Route(4, "192.168.1.1", "Ethernet", 25, 0),
        Route(6, "fe80::1%12", "Ethernet", 256, 0),
        Route(6, "2001:db8::1", "9", 10, 0),
        Route(4, "10.0.0.1", "Wi-Fi", 5, 0),
    ]
    assert [r.gateway for r in order_routes(routes)][:2] == ["10.0.0.1", "2001:db8::1"]
    # A count larger than the buffer, and short buffers, never raise.
    assert windows.parse_forward_table(struct.pack("<I4x", 5) + table[8:112], names) == [routes[0]]
    assert windows.parse_forward_table(b"\1\0", names) == []


class _FakeIphlpapi:
    """GetBestRoute2 as Windows answers it: the chosen row written into ``BestRoute``."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.asked: list[bytes] = []

    def GetBestRoute2(self, *args: Any) -> int:  # noqa: N802 - the API's name
        dest, row = args[3]._obj, args[5]._obj  # the objects behind ctypes.byref()
        self.asked.append(bytes(dest))
        ctypes.memmove(ctypes.addressof(row), self.answer, len(self.answer))
        return 0


def test_best_route_asks_with_a_sockaddr_inet_and_reads_the_row() -> None:
    fake = _FakeIphlpapi(row2(13, "0.0.0.0", 0, "10.0.0.1", 5))
    dll: Any = fake
    assert windows.best_route(dll, "192.0.2.1", {13: "Wi-Fi"}) == Route(
        4, "10.0.0.1", "Wi-Fi", 5, 0
    )
    assert fake.asked == [sockaddr_inet("192.0.2.1")]
    fake.answer = row2(12, "::", 0, "fe80::1", 256)
    assert windows.best_route(dll, "2001:db8::1", {}) == Route(6, "fe80::1%12", "12", 256, 0)
    assert fake.asked[1] == sockaddr_inet("2001:db8::1")


def test_windows_best_route_goes_first() -> None:
    routes = [Route(4, "192.168.1.1", "Ethernet", 5, 0), Route(4, "10.0.0.1", "Wi-Fi", 25, 0)]
    best = [Route(4, "10.0.0.1", "Wi-Fi", 25, 0)]
    assert [r.gateway for r in windows.best_first(routes, best)] == ["10.0.0.1", "192.168.1.1"]
    assert windows.best_first(routes, []) == routes


# ipexport.h (64-bit process) ICMP_ECHO_REPLY { IPAddr Address; ULONG Status; ULONG RoundTripTime;
# USHORT DataSize; USHORT Reserved; PVOID Data (8); IP_OPTION_INFORMATION Options { UCHAR Ttl, Tos,
# Flags, OptionsSize; (4 pad) PUCHAR OptionsData (8) } } = 40 bytes.


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="the 64-bit layout")
def test_echo_reply_declaration_and_parse() -> None:
    assert ctypes.sizeof(windows.IP_OPTION_INFORMATION) == 16
    assert ctypes.sizeof(windows.ICMP_ECHO_REPLY) == 40
    assert windows.ICMP_ECHO_REPLY.Data.offset == 16
    assert windows.ICMP_ECHO_REPLY.Options.offset == 24
    assert windows.IP_OPTION_INFORMATION.OptionsData.offset == 8

    def reply(addr: str, status: int) -> bytes:
        head = struct.pack("<4sIIHHQ", socket.inet_aton(addr), status, 3, 12, 0, 0x1000)
        return head + struct.pack("<BBBB4xQ", 64, 0, 0, 0, 0) + b"aioigd-probe"

    parsed = windows.parse_echo_reply(reply("10.0.1.1", 11013))
    assert parsed == ("10.0.1.1", 11013)
    assert windows.answer_from_reply(*parsed, "33.0.0.2") == HopAnswer("10.0.1.1")
    parsed = windows.parse_echo_reply(reply("33.0.0.2", 0))
    assert parsed is not None
    done = windows.answer_from_reply(*parsed, "33.0.0.2")
    assert done == HopAnswer("33.0.0.2", reached_target=True)
    assert windows.answer_from_reply("0.0.0.0", 11010, "33.0.0.2") is None  # noqa: S104
    assert windows.answer_from_reply("10.0.0.9", 11010, "33.0.0.2") is None
    assert windows.parse_echo_reply(b"\0" * 39) is None


# -- ICMP datagrams (macOS ICMP dgram sockets and raw sockets: IPv4 header included) ----------
# RFC 791 IPv4 header (20 bytes, IHL 5) + RFC 792 ICMP: echo { type, code, cksum, id, seq } and
# time exceeded / unreachable { type, code, cksum, unused(4), original IP header + 8 bytes }.


def ipv4(src: str, dst: str, payload: bytes, proto: int = 1) -> bytes:
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(payload),
            1,
            0,
            64,
            proto,
            0,
            socket.inet_aton(src),
            socket.inet_aton(dst),
        )
        + payload
    )


def test_echo_request_checksum_is_valid() -> None:
    req = echo_request(0x1234, 7)
    assert req[0] == 8 and struct.unpack("!HH", req[4:8]) == (0x1234, 7)
    assert checksum(req) == 0


def test_icmp_datagram_answers_match_our_probe_only() -> None:
    ours = echo_request(0x1234, 7)
    quoted = ipv4("192.168.1.2", "33.0.0.2", ours)[:28]
    exceeded = ipv4("10.0.1.1", "192.168.1.2", struct.pack("!BBH4x", 11, 0, 0) + quoted)
    answer = parse_icmp_datagram(exceeded, 0x1234, 7)
    assert answer is not None and (answer.source, answer.icmp_type) == ("10.0.1.1", 11)
    assert parse_icmp_datagram(exceeded, 0x1234, 8) is None  # another probe's
    assert parse_icmp_datagram(exceeded, 0x9999, 7) is None  # another process's
    reply = ipv4("33.0.0.2", "192.168.1.2", struct.pack("!BBHHH", 0, 0, 0, 0x1234, 7))
    got = parse_icmp_datagram(reply, 0x1234, 7)
    assert got is not None and (got.source, got.icmp_type) == ("33.0.0.2", 0)
    udp_quoted = ipv4("192.168.1.2", "33.0.0.2", b"\0" * 8, proto=17)[:28]
    other = ipv4("10.0.1.1", "192.168.1.2", struct.pack("!BBH4x", 11, 0, 0) + udp_quoted)
    assert parse_icmp_datagram(other, 0x1234, 7) is None
    for cut in range(len(exceeded)):
        parse_icmp_datagram(exceeded[:cut], 0x1234, 7)  # never raises


# -- pure helpers ----------------------------------------------------------------------------


def test_subnet_gateway_candidates() -> None:
    assert subnet_gateway_candidates("10.64.0.2") == ["10.64.0.1", "10.64.0.254"]
    assert subnet_gateway_candidates("100.64.7.254") == ["100.64.7.1"]
    assert subnet_gateway_candidates("192.168.1.1") == ["192.168.1.254"]
    assert subnet_gateway_candidates("33.0.0.44") == []  # global: an ISP's /24
    assert subnet_gateway_candidates(None) == []
    assert subnet_gateway_candidates("fe80::1") == []


def test_order_routes_main_table_first_then_metric_deduplicated() -> None:
    routes = [
        Route(4, "10.0.0.1", "wg0", 0, 100),
        Route(4, "192.168.1.1", "eth0", 600, 254),
        Route(4, "192.168.1.1", "eth0", 100, 254),
        Route(4, "172.16.0.1", "eth1", 100, 254),
    ]
    assert [r.gateway for r in order_routes(routes)] == ["192.168.1.1", "172.16.0.1", "10.0.0.1"]
