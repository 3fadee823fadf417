"""NAT-PMP (RFC 6886): build requests and check and decode responses (natpmp-pcp.md).

Every integer is big-endian. A response is accepted only when its version is 0,
its opcode is 128 + the request's opcode and its length is the one the RFC
gives; anything else is a :class:`~aioigd.errors.RemoteProtocolError`. The
result code is returned, not raised: the caller decides what a refusal means.
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
    "SERVER_PORT",
    "CLIENT_PORT",
    "OP_EXTERNAL_ADDRESS",
    "NatPmpResult",
    "ExternalAddressResponse",
    "MapResponse",
    "encode_external_address_request",
    "encode_map_request",
    "decode_external_address_response",
    "decode_map_response",
    "map_opcode",
]

VERSION = 0
#: The gateway listens here (shared with PCP).
SERVER_PORT = 5351
#: Where a gateway multicasts its announcements (224.0.0.1).
CLIENT_PORT = 5350
OP_EXTERNAL_ADDRESS = 0
_OP_UDP = 1
_OP_TCP = 2
_RESPONSE_BIT = 128
_EXTERNAL_RESPONSE = struct.Struct("!BBHI4s")  # 12 bytes
_MAP_REQUEST = struct.Struct("!BBHHHI")  # 12 bytes
_MAP_RESPONSE = struct.Struct("!BBHIHHI")  # 16 bytes
_MAX_U32 = 0xFFFFFFFF


class NatPmpResult(enum.IntEnum):
    """NAT-PMP result codes (16 bits)."""

    SUCCESS = 0
    UNSUPPORTED_VERSION = 1
    NOT_AUTHORIZED = 2
    NETWORK_FAILURE = 3
    OUT_OF_RESOURCES = 4
    UNSUPPORTED_OPCODE = 5


def result_name(code: int) -> str:
    """``NOT_AUTHORIZED`` for 2; ``result 77`` for a code the RFC does not define."""
    try:
        return NatPmpResult(code).name
    except ValueError:
        return f"result {code}"


@dataclass(frozen=True)
class ExternalAddressResponse:
    """Answer to opcode 0. ``epoch`` is the gateway's seconds since its start."""

    result: int
    epoch: int
    external_ip: str


@dataclass(frozen=True)
class MapResponse:
    """Answer to a MAP request; the gateway may change the port and shorten the lifetime."""

    result: int
    epoch: int
    internal_port: int
    external_port: int
    lifetime: int


def map_opcode(protocol: Transport) -> int:
    """1 for UDP, 2 for TCP."""
    return _OP_UDP if protocol is Transport.UDP else _OP_TCP


def encode_external_address_request() -> bytes:
    """The 2-byte request for the gateway's external address."""
    return bytes((VERSION, OP_EXTERNAL_ADDRESS))


def encode_map_request(
    protocol: Transport, internal_port: int, suggested_external_port: int, lifetime: int
) -> bytes:
    """A MAP request. ``lifetime`` 0 with ``suggested_external_port`` 0 deletes.

    ``internal_port`` 0 would delete *every* mapping of the sender (and, behind
    another NAT, of every host sharing its address), so it is refused here.
    """
    if not 1 <= internal_port <= 0xFFFF:
        raise ValueError(f"internal port must be 1..65535, not {internal_port}")
    if not 0 <= suggested_external_port <= 0xFFFF:
        raise ValueError(f"external port must be 0..65535, not {suggested_external_port}")
    if not 0 <= lifetime <= _MAX_U32:
        raise ValueError(f"lifetime must be 0..{_MAX_U32}, not {lifetime}")
    return _MAP_REQUEST.pack(
        VERSION, map_opcode(protocol), 0, internal_port, suggested_external_port, lifetime
    )


def _check_header(data: bytes, opcode: int, size: int) -> None:
    if len(data) < 4:
        raise RemoteProtocolError(f"NAT-PMP response of {len(data)} bytes is too short")
    if data[0] != VERSION:
        raise RemoteProtocolError(f"NAT-PMP response has version {data[0]}, not 0")
    if data[1] != _RESPONSE_BIT + opcode:
        raise RemoteProtocolError(
            f"NAT-PMP response opcode {data[1]} does not answer opcode {opcode}"
        )
    result = int.from_bytes(data[2:4], "big")
    # An error answer may be cut short (RFC 6886 3.5: at least the 8-byte header).
    if result != NatPmpResult.SUCCESS and len(data) >= 8:
        return
    if len(data) != size:
        raise RemoteProtocolError(f"NAT-PMP response of {len(data)} bytes, expected {size}")


def decode_external_address_response(data: bytes) -> ExternalAddressResponse:
    """Check and decode the answer to :func:`encode_external_address_request`."""
    _check_header(data, OP_EXTERNAL_ADDRESS, _EXTERNAL_RESPONSE.size)
    if len(data) < _EXTERNAL_RESPONSE.size:
        result, epoch = struct.unpack_from("!HI", data, 2)
        return ExternalAddressResponse(result, epoch, "")
    _, _, result, epoch, raw = _EXTERNAL_RESPONSE.unpack(data)
    address = str(ipaddress.IPv4Address(raw)) if result == NatPmpResult.SUCCESS else ""
    return ExternalAddressResponse(result, epoch, address)


def decode_map_response(data: bytes, protocol: Transport, internal_port: int) -> MapResponse:
    """Check and decode the answer to a MAP request for ``internal_port``.

    A success for another internal port does not answer our request.
    """
    _check_header(data, map_opcode(protocol), _MAP_RESPONSE.size)
    if len(data) < _MAP_RESPONSE.size:
        result, epoch = struct.unpack_from("!HI", data, 2)
        return MapResponse(result, epoch, internal_port, 0, 0)
    _, _, result, epoch, internal, external, lifetime = _MAP_RESPONSE.unpack(data)
    if result == NatPmpResult.SUCCESS:
        if internal != internal_port:
            raise RemoteProtocolError(
                f"NAT-PMP response is for internal port {internal}, not {internal_port}"
            )
        if lifetime and not external:
            raise RemoteProtocolError("NAT-PMP response maps to external port 0")
    return MapResponse(result, epoch, internal, external, lifetime)
