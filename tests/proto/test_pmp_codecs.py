"""NAT-PMP and PCP codecs and the epoch check: byte layouts from RFC 6886 / 6887."""

from __future__ import annotations

import struct

import pytest

from aioigd.errors import RemoteProtocolError
from aioigd.models import Transport
from aioigd.proto import natpmp, pcp
from aioigd.proto.epoch import EpochTracker

TCP, UDP = Transport.TCP, Transport.UDP
NONCE = bytes(range(1, 13))


# -- NAT-PMP ------------------------------------------------------------------------
def test_natpmp_requests_are_byte_exact() -> None:
    assert natpmp.encode_external_address_request() == b"\x00\x00"
    assert natpmp.encode_map_request(TCP, 7000, 7001, 7200) == bytes.fromhex(
        "00 02 0000 1b58 1b59 00001c20"
    )
    assert natpmp.encode_map_request(UDP, 7000, 0, 0)[1] == 1


@pytest.mark.parametrize("internal_port", [0, 65536, -1])
def test_natpmp_never_sends_internal_port_zero(internal_port: int) -> None:
    # Internal port 0 with lifetime 0 deletes every mapping of the sender's address.
    with pytest.raises(ValueError):
        natpmp.encode_map_request(TCP, internal_port, 0, 0)


def test_natpmp_decodes_answers() -> None:
    data = struct.pack("!BBHI4s", 0, 128, 0, 77, bytes([203, 0, 113, 7]))
    assert natpmp.decode_external_address_response(data) == natpmp.ExternalAddressResponse(
        0, 77, "203.0.113.7"
    )
    data = struct.pack("!BBHIHHI", 0, 130, 0, 78, 7000, 7001, 3600)
    assert natpmp.decode_map_response(data, TCP, 7000) == natpmp.MapResponse(
        0, 78, 7000, 7001, 3600
    )
    refused = struct.pack("!BBHI", 0, 130, 2, 79)  # an error may be the 8-byte header
    assert natpmp.decode_map_response(refused, TCP, 7000).result == 2


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        struct.pack("!BBHIHHI", 1, 130, 0, 1, 7000, 7000, 60),  # version
        struct.pack("!BBHIHHI", 0, 129, 0, 1, 7000, 7000, 60),  # UDP answer to TCP
        struct.pack("!BBHIHHI", 0, 2, 0, 1, 7000, 7000, 60),  # a request
        struct.pack("!BBHIHHI", 0, 130, 0, 1, 7000, 7000, 60) + b"\x00",  # length
        struct.pack("!BBHIHHI", 0, 130, 0, 1, 7001, 7000, 60),  # another internal port
        struct.pack("!BBHIHHI", 0, 130, 0, 1, 7000, 0, 60),  # success on port 0
    ],
)
def test_natpmp_refuses_what_does_not_answer_the_request(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        natpmp.decode_map_response(data, TCP, 7000)


# -- PCP ------------------------------------------------------------------------------
def test_pcp_map_request_layout() -> None:
    data = pcp.encode_map(
        nonce=NONCE,
        protocol=TCP,
        internal_port=7000,
        lifetime=7200,
        client_ip="192.168.1.2",
        suggested_port=7001,
    )
    assert len(data) == 60
    assert data[:4] == b"\x02\x01\x00\x00"
    assert int.from_bytes(data[4:8], "big") == 7200
    assert data[8:24] == bytes(10) + b"\xff\xff" + bytes([192, 168, 1, 2])
    assert data[24:36] == NONCE
    assert data[36] == 6 and data[37:40] == bytes(3)
    assert struct.unpack("!HH", data[40:44]) == (7000, 7001)
    assert data[44:60] == bytes(10) + b"\xff\xff" + bytes(4)  # any IPv4 external address


def test_pcp_options_are_padded_to_four_bytes() -> None:
    data = pcp.encode_map(
        nonce=NONCE,
        protocol=UDP,
        internal_port=7000,
        lifetime=60,
        client_ip="10.0.0.2",
        third_party="10.0.0.9",
        prefer_failure=True,
        filters=(pcp.Filter("198.51.100.0", 24, 443),),
    )
    options = data[60:]
    assert options[:4] == b"\x01\x00\x00\x10" and options[4:20] == pcp.to_pcp_address("10.0.0.9")
    assert options[20:24] == b"\x02\x00\x00\x00"
    assert options[24:28] == b"\x03\x00\x00\x14"
    assert options[29] == 96 + 24 and options[30:32] == (443).to_bytes(2, "big")
    assert len(data) % 4 == 0


def test_pcp_refuses_bad_requests() -> None:
    with pytest.raises(ValueError):
        pcp.encode_map(nonce=b"short", protocol=TCP, internal_port=1, lifetime=1, client_ip="::1")
    with pytest.raises(ValueError):  # port 0 means every port
        pcp.encode_map(nonce=NONCE, protocol=TCP, internal_port=0, lifetime=0, client_ip="::1")
    with pytest.raises(ValueError):
        pcp.encode_map(nonce=NONCE, protocol=TCP, internal_port=1, lifetime=-1, client_ip="::1")


def _answer(result: int = 0, *, nonce: bytes = NONCE, number: int = 6, iport: int = 7000,
            eport: int = 7001, ip: str = "203.0.113.7", opcode: int = 1, lifetime: int = 60,
            extra: bytes = b"") -> bytes:  # fmt: skip
    header = struct.pack("!BBBBII12x", 2, 0x80 | opcode, 0, result, lifetime, 99)
    if opcode == 0:
        return header + extra
    body = struct.pack("!12sB3xHH16s", nonce, number, iport, eport, pcp.to_pcp_address(ip))
    return header + body + extra


def test_pcp_decodes_a_map_answer() -> None:
    answer = pcp.decode_response(
        _answer(), pcp.Opcode.MAP, nonce=NONCE, protocol=TCP, internal_port=7000
    )
    assert (answer.result, answer.epoch, answer.lifetime) == (0, 99, 60)
    assert (answer.external_ip, answer.external_port, answer.protocol) == ("203.0.113.7", 7001, TCP)
    announce = pcp.decode_response(_answer(opcode=0), pcp.Opcode.ANNOUNCE)
    assert announce.result == 0 and announce.epoch == 99


def test_pcp_reports_a_natpmp_only_gateway() -> None:
    answer = pcp.decode_response(struct.pack("!BBHI", 0, 129, 1, 5), pcp.Opcode.MAP)
    assert (answer.version, answer.result) == (0, pcp.PcpResult.UNSUPP_VERSION)


@pytest.mark.parametrize(
    "data",
    [
        _answer(nonce=bytes(12)),  # another mapping's nonce
        _answer(number=17),  # UDP answer to TCP
        _answer(iport=7002),
        _answer(opcode=2),
        _answer()[:-1],  # not a multiple of 4
        _answer(extra=b"\x00" * 1100),  # longer than any PCP message
        bytes([2, 0x01]) + _answer()[2:],  # the R bit is off: a request
        _answer(eport=0),  # success without a port
        _answer(ip="0.0.0.0"),  # success without an address
        _answer(extra=b"\x01\x00\x00\x20"),  # an option running past the end
        struct.pack("!BBHI", 0, 129, 0, 5),  # version 0 claiming success
    ],
    ids=[
        "nonce", "protocol", "internal-port", "opcode", "length", "oversized",
        "request", "no-port", "no-address", "option-overrun", "v0-success",
    ],
)  # fmt: skip
def test_pcp_refuses_what_does_not_answer_the_request(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        pcp.decode_response(data, pcp.Opcode.MAP, nonce=NONCE, protocol=TCP, internal_port=7000)


def test_pcp_error_answers_are_decoded_not_raised() -> None:
    answer = pcp.decode_response(
        _answer(12, eport=0, ip="0.0.0.0", lifetime=30), pcp.Opcode.MAP, nonce=NONCE
    )
    assert answer.result == pcp.PcpResult.ADDRESS_MISMATCH and answer.lifetime == 30
    assert pcp.result_name(12) == "ADDRESS_MISMATCH" and pcp.result_name(200) == "result 200"


def test_pcp_addresses_round_trip() -> None:
    for address in ("192.168.1.2", "2001:db8::5"):
        assert pcp.from_pcp_address(pcp.to_pcp_address(address)) == address


# -- epoch --------------------------------------------------------------------------
def test_epoch_in_step_with_our_clock_is_no_restart() -> None:
    e = EpochTracker()
    assert not e.observe(1000, now=50.0)
    assert not e.observe(1100, now=150.0)
    assert not e.observe(1100, now=151.0)  # within the 2 s slack
    assert e.last == 1100


@pytest.mark.parametrize(
    ("epoch", "now"),
    [
        (5, 150.0),  # went back: a restart
        (1010, 150.0),  # 10 s passed on its clock, 100 on ours: it restarted meanwhile
        (5000, 150.0),  # far ahead of ours: its state is not what we knew
    ],
)
def test_epoch_out_of_step_means_lost_state(epoch: int, now: float) -> None:
    e = EpochTracker()
    e.observe(1000, now=50.0)
    assert e.observe(epoch, now=now)
