"""ICMP echo bytes: build a request, and read what an ICMP socket receives (no I/O).

macOS/BSD ICMP datagram sockets (and raw ICMP sockets everywhere) receive every
ICMP message with its IPv4 header in front (RFC 791 IHL; RFC 792 layouts). An
answer is ours when it is the echo reply with our identifier and sequence, or a
time-exceeded / unreachable message quoting our echo request (its IPv4 header
and first 8 bytes, RFC 792).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = [
    "ICMP_ECHO_REPLY",
    "ICMP_DEST_UNREACH",
    "ICMP_ECHO_REQUEST",
    "ICMP_TIME_EXCEEDED",
    "ICMPAnswer",
    "checksum",
    "echo_request",
    "parse_icmp_datagram",
]

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
_ECHO = struct.Struct("!BBHHH")
_PAYLOAD = b"aioigd-probe"


@dataclass(frozen=True)
class ICMPAnswer:
    """An ICMP message that answers our echo: who sent it and of which type."""

    source: str
    icmp_type: int
    icmp_code: int


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def echo_request(ident: int, seq: int, payload: bytes = _PAYLOAD) -> bytes:
    """An ICMP echo request with a valid checksum."""
    head = _ECHO.pack(ICMP_ECHO_REQUEST, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    return (
        _ECHO.pack(ICMP_ECHO_REQUEST, 0, checksum(head + payload), ident & 0xFFFF, seq & 0xFFFF)
        + payload
    )


def _ip_header(data: bytes, pos: int) -> tuple[int, int, str] | None:
    """(header length, protocol, source) of the IPv4 header at ``pos``."""
    if len(data) < pos + 20 or data[pos] >> 4 != 4:
        return None
    ihl = (data[pos] & 0x0F) * 4
    if ihl < 20 or len(data) < pos + ihl:
        return None
    return ihl, data[pos + 9], str(ipaddress.IPv4Address(data[pos + 12 : pos + 16]))


def parse_icmp_datagram(data: bytes, ident: int, seq: int) -> ICMPAnswer | None:
    """The answer to our echo (``ident``, ``seq``) in ``data`` (IPv4 header + ICMP), or None.

    ``ident`` < 0 matches any identifier (where the kernel chose it).
    """
    outer = _ip_header(data, 0)
    if outer is None or outer[1] != 1 or len(data) < outer[0] + 8:
        return None
    ihl, _, source = outer
    icmp_type, code, _, got_id, got_seq = _ECHO.unpack_from(data, ihl)
    if icmp_type == ICMP_ECHO_REPLY:
        ok = got_seq == seq and ident in (-1, got_id)
        return ICMPAnswer(source, icmp_type, code) if ok else None
    if icmp_type not in (ICMP_TIME_EXCEEDED, ICMP_DEST_UNREACH):
        return None
    inner = _ip_header(data, ihl + 8)
    if inner is None or inner[1] != 1:
        return None
    quoted = ihl + 8 + inner[0]
    if len(data) < quoted + 8:
        return None
    q_type, _, _, q_id, q_seq = _ECHO.unpack_from(data, quoted)
    if q_type != ICMP_ECHO_REQUEST or q_seq != seq or ident not in (-1, q_id):
        return None
    return ICMPAnswer(source, icmp_type, code)
