"""PCP (RFC 6887) version 2: build ANNOUNCE and MAP requests, check and decode answers.

Addresses travel as 16 bytes (IPv4 as ``::ffff:a.b.c.d``); integers are big-endian.
An answer is accepted only when it is a response (R bit) to the same opcode, a
multiple of 4 bytes between 24 and 1100, and — for MAP — carries our nonce,
protocol and internal port. A NAT-PMP-only gateway answers a PCP request with
a version-0 packet and result 1: :func:`decode_response` reports that as
``UNSUPP_VERSION`` with ``version`` 0, the caller's cue to fall back to NAT-PMP.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from ..errors import RemoteProtocolError
from ..models import Transport

__all__ = [
    "VERSION",
    "MAX_MESSAGE",
    "NONCE_SIZE",
    "Opcode",
    "PcpResult",
    "OptionCode",
    "Filter",
    "PcpResponse",
    "encode_announce",
    "encode_map",
    "decode_response",
    "result_name",
    "to_pcp_address",
    "from_pcp_address",
]

VERSION = 2
#: RFC 6887 section 7: no PCP message is longer.
MAX_MESSAGE = 1100
NONCE_SIZE = 12
_HEADER = struct.Struct("!BBHI16s")  # request: version, R|opcode, reserved, lifetime, client IP
_RESPONSE = struct.Struct("!BBBBII12x")  # version, R|opcode, reserved, result, lifetime, epoch
_MAP = struct.Struct("!12sB3xHH16s")  # nonce, protocol, internal port, external port, IP
_OPTION = struct.Struct("!BBH")  # code, reserved, length
_FILTER = struct.Struct("!xBH16s")  # prefix length, remote port, remote IP
_RESPONSE_BIT = 0x80
_MAX_U32 = 0xFFFFFFFF
_PROTOCOL_NUMBERS = {Transport.TCP: 6, Transport.UDP: 17}


class Opcode(enum.IntEnum):
    """PCP opcodes aioigd sends."""

    ANNOUNCE = 0
    MAP = 1


class OptionCode(enum.IntEnum):
    """PCP options aioigd sends."""

    THIRD_PARTY = 1
    PREFER_FAILURE = 2
    FILTER = 3


class PcpResult(enum.IntEnum):
    """PCP result codes (8 bits)."""

    SUCCESS = 0
    UNSUPP_VERSION = 1
    NOT_AUTHORIZED = 2
    MALFORMED_REQUEST = 3
    UNSUPP_OPCODE = 4
    UNSUPP_OPTION = 5
    MALFORMED_OPTION = 6
    NETWORK_FAILURE = 7
    NO_RESOURCES = 8
    UNSUPP_PROTOCOL = 9
    USER_EX_QUOTA = 10
    CANNOT_PROVIDE_EXTERNAL = 11
    ADDRESS_MISMATCH = 12
    EXCESSIVE_REMOTE_PEERS = 13


def result_name(code: int) -> str:
    """``ADDRESS_MISMATCH`` for 12; ``result 99`` for a code the RFC does not define."""
    try:
        return PcpResult(code).name
    except ValueError:
        return f"result {code}"


@dataclass(frozen=True)
class Filter:
    """A FILTER option: only ``remote_ip``/prefix and ``remote_port`` (0: any) may connect."""

    remote_ip: str
    prefix_length: int = 128
    remote_port: int = 0


@dataclass(frozen=True)
class PcpResponse:
    """A decoded PCP answer; the MAP fields are zero / empty for ANNOUNCE.

    ``version`` is 0 when a NAT-PMP-only gateway answered (``result`` is then
    ``UNSUPP_VERSION``). ``lifetime`` is the granted lifetime on success and how
    long the error holds otherwise.
    """

    version: int
    opcode: int
    result: int
    lifetime: int
    epoch: int
    protocol: Transport | None = None
    internal_port: int = 0
    external_port: int = 0
    external_ip: str = ""


def to_pcp_address(address: str) -> bytes:
    """16 bytes for ``address``: IPv6 as is, IPv4 mapped (``::ffff:a.b.c.d``)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


def from_pcp_address(raw: bytes) -> str:
    """The text form of a 16-byte PCP address (an IPv4-mapped one as IPv4)."""
    ip = ipaddress.IPv6Address(raw)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


def _header(opcode: Opcode, lifetime: int, client_ip: str) -> bytes:
    if not 0 <= lifetime <= _MAX_U32:
        raise ValueError(f"lifetime must be 0..{_MAX_U32}, not {lifetime}")
    return _HEADER.pack(VERSION, opcode, 0, lifetime, to_pcp_address(client_ip))


def _option(code: OptionCode, data: bytes = b"") -> bytes:
    return _OPTION.pack(code, 0, len(data)) + data + b"\x00" * (-len(data) % 4)


def encode_announce(client_ip: str) -> bytes:
    """An ANNOUNCE request (24 bytes): does the gateway speak PCP, and its epoch."""
    return _header(Opcode.ANNOUNCE, 0, client_ip)


def encode_map(
    *,
    nonce: bytes,
    protocol: Transport,
    internal_port: int,
    lifetime: int,
    client_ip: str,
    suggested_port: int = 0,
    suggested_ip: str | None = None,
    third_party: str | None = None,
    prefer_failure: bool = False,
    filters: tuple[Filter, ...] = (),
) -> bytes:
    """A MAP request; ``lifetime`` 0 deletes the mapping with this ``nonce``.

    ``client_ip`` is the source address the gateway sees (behind another NAT:
    that NAT's external address). ``third_party`` maps for another internal
    host; ``prefer_failure`` asks for an error rather than another port.
    """
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"a PCP nonce is {NONCE_SIZE} bytes, not {len(nonce)}")
    if not 1 <= internal_port <= 0xFFFF:
        # Port 0 means "all ports": never asked for, it would map (or delete) everything.
        raise ValueError(f"internal port must be 1..65535, not {internal_port}")
    if not 0 <= suggested_port <= 0xFFFF:
        raise ValueError(f"external port must be 0..65535, not {suggested_port}")
    family = ipaddress.ip_address(client_ip).version
    if suggested_ip is None:
        suggested = "0.0.0.0" if family == 4 else "::"  # noqa: S104 - "any", not a bind
    else:
        suggested = suggested_ip
    body = _MAP.pack(
        nonce,
        _PROTOCOL_NUMBERS[protocol],
        internal_port,
        suggested_port,
        to_pcp_address(suggested),
    )
    options = b""
    if third_party is not None:
        options += _option(OptionCode.THIRD_PARTY, to_pcp_address(third_party))
    if prefer_failure:
        options += _option(OptionCode.PREFER_FAILURE)
    for f in filters:
        if not 0 <= f.remote_port <= 0xFFFF:
            raise ValueError(f"filter port must be 0..65535, not {f.remote_port}")
        ip = ipaddress.ip_address(f.remote_ip)
        prefix = f.prefix_length + (96 if ip.version == 4 and f.prefix_length <= 32 else 0)
        if not 0 <= prefix <= 128:
            raise ValueError(f"filter prefix length {f.prefix_length} is out of range")
        options += _option(
            OptionCode.FILTER, _FILTER.pack(prefix, f.remote_port, to_pcp_address(f.remote_ip))
        )
    message = _header(Opcode.MAP, lifetime, client_ip) + body + options
    if len(message) > MAX_MESSAGE:
        raise ValueError(f"PCP request of {len(message)} bytes exceeds {MAX_MESSAGE}")
    return message


def decode_response(
    data: bytes,
    opcode: Opcode,
    *,
    nonce: bytes | None = None,
    protocol: Transport | None = None,
    internal_port: int | None = None,
) -> PcpResponse:
    """Check and decode the answer to a request with ``opcode`` (and, for MAP, these fields).

    Raises:
        RemoteProtocolError: the datagram is not an answer to that request.
    """
    if len(data) >= 4 and data[0] == 0:
        # NAT-PMP framing: a NAT-PMP-only gateway refusing version 2.
        code = int.from_bytes(data[2:4], "big")
        if code != PcpResult.UNSUPP_VERSION:
            raise RemoteProtocolError(f"version-0 answer to PCP with result {code}")
        epoch = int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0
        return PcpResponse(0, opcode, PcpResult.UNSUPP_VERSION, 0, epoch)
    if not _RESPONSE.size <= len(data) <= MAX_MESSAGE or len(data) % 4:
        raise RemoteProtocolError(f"PCP response of {len(data)} bytes is malformed")
    version, r_opcode, _, result, lifetime, epoch = _RESPONSE.unpack_from(data)
    if not r_opcode & _RESPONSE_BIT:
        raise RemoteProtocolError("PCP packet is a request, not a response")
    if r_opcode & 0x7F != opcode:
        raise RemoteProtocolError(f"PCP response opcode {r_opcode & 0x7F} does not answer {opcode}")
    if result == PcpResult.UNSUPP_VERSION:
        return PcpResponse(version, opcode, result, lifetime, epoch)
    if version != VERSION:
        raise RemoteProtocolError(f"PCP response has version {version}, not {VERSION}")
    if opcode is not Opcode.MAP:
        return PcpResponse(version, opcode, result, lifetime, epoch)
    if len(data) < _RESPONSE.size + _MAP.size:
        if result == PcpResult.SUCCESS:
            raise RemoteProtocolError("PCP MAP success without its opcode data")
        return PcpResponse(version, opcode, result, lifetime, epoch)
    r_nonce, number, r_internal, external, raw_ip = _MAP.unpack_from(data, _RESPONSE.size)
    if nonce is not None and r_nonce != nonce:
        raise RemoteProtocolError("PCP MAP response carries another mapping's nonce")
    r_protocol = next((p for p, n in _PROTOCOL_NUMBERS.items() if n == number), None)
    if protocol is not None and r_protocol is not protocol:
        raise RemoteProtocolError(f"PCP MAP response is for protocol {number}")
    if internal_port is not None and r_internal != internal_port:
        raise RemoteProtocolError(
            f"PCP MAP response is for internal port {r_internal}, not {internal_port}"
        )
    _check_options(data, _RESPONSE.size + _MAP.size)
    ext_ip = from_pcp_address(raw_ip)
    if result == PcpResult.SUCCESS and lifetime and (not external or _is_unspecified(ext_ip)):
        raise RemoteProtocolError("PCP MAP success without an external port and address")
    return PcpResponse(
        version, opcode, result, lifetime, epoch, r_protocol, r_internal, external, ext_ip
    )


def _is_unspecified(address: str) -> bool:
    return ipaddress.ip_address(address).is_unspecified


def _check_options(data: bytes, offset: int) -> None:
    """Options must tile the rest of the packet exactly (each padded to 4 bytes)."""
    while offset < len(data):
        if offset + _OPTION.size > len(data):
            raise RemoteProtocolError("PCP response ends inside an option header")
        _, _, length = _OPTION.unpack_from(data, offset)
        offset += _OPTION.size + length + (-length % 4)
        if offset > len(data):
            raise RemoteProtocolError("PCP option runs past the end of the response")
