"""FakePcpServer: an in-process PCP (RFC 6887) and NAT-PMP (RFC 6886) gateway on loopback.

It keeps a mapping table shared by both protocols (as miniupnpd does), checks
the nonce on renewals and deletes, answers ADDRESS_MISMATCH when the PCP
client address is not the sender's, counts its epoch from its (re)start, and
records every request. :class:`PcpQuirks` switch on the misbehaviours a client
must survive: lost requests, answers from another port, wrong nonces, garbage,
oversized datagrams, a NAT-PMP-only or a PCP-only server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["FakePcpServer", "PcpQuirks", "PcpEntry"]

_PROTO_BY_NUMBER = {6: "TCP", 17: "UDP"}
_NATPMP_OPS = {1: "UDP", 2: "TCP"}


@dataclass
class PcpQuirks:
    """Misbehaviours of a :class:`FakePcpServer` (changeable at any time)."""

    #: Drop this many requests before answering (counts down).
    drop: int = 0
    #: Answer PCP with NAT-PMP's UNSUPPORTED_VERSION (a NAT-PMP-only gateway).
    natpmp_only: bool = False
    #: Ignore NAT-PMP requests (a PCP-only gateway).
    pcp_only: bool = False
    #: Send each answer first from another port (a spoofer), then from the right one.
    spoof_first: bool = False
    #: Send each answer first with another nonce, then the right one.
    wrong_nonce_first: bool = False
    #: Send this datagram before each real answer.
    garbage_first: bytes = b""
    #: Grant at most this lifetime (0: what was asked).
    max_lifetime: int = 0
    #: Refuse every MAP with this PCP result code / NAT-PMP result code.
    refuse: int = 0
    #: Accept a PCP client address that is not the sender's (on loopback a test cannot
    #: put a real NAT in between: the fake plays an upper layer behind one).
    ignore_source: bool = False
    #: Honour THIRD_PARTY (miniupnpd: ``pcp_allow_thirdparty=yes``); else UNSUPP_OPTION.
    allow_third_party: bool = False


@dataclass
class PcpEntry:
    """One mapping in the fake's table."""

    protocol: str
    internal_client: str
    internal_port: int
    external_port: int
    nonce: bytes
    lifetime: int
    via: str  # "pcp" / "natpmp"


@dataclass
class _Recorded:
    protocol: str  # "pcp" / "natpmp"
    opcode: int
    lifetime: int
    sender: tuple[str, int]
    data: bytes = field(repr=False)


class _Server(asyncio.DatagramProtocol):
    def __init__(self, owner: FakePcpServer) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self.transport is not None
        sender = (str(addr[0]), int(addr[1]))
        for reply in self.owner._handle(data, sender):
            self.transport.sendto(reply, sender)


class FakePcpServer:
    """A PCP + NAT-PMP gateway on ``host``:``port`` (``port`` 0: any free one).

    Args:
        external_ip: the external address it maps on.
        taken: external ports another host holds (a MAP for one gets another port).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        external_ip: str = "203.0.113.7",
        taken: set[tuple[str, int]] | None = None,
        quirks: PcpQuirks | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.external_ip = external_ip
        self.taken = set(taken or ())
        self.quirks = quirks or PcpQuirks()
        self.table: dict[tuple[str, str, int], PcpEntry] = {}
        self.requests: list[_Recorded] = []
        self._started = time.monotonic()
        self._epoch_offset = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._spoofer: asyncio.DatagramTransport | None = None

    # -- life -----------------------------------------------------------------
    async def start(self) -> FakePcpServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Server(self), local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        self._spoofer, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(self.host, 0)
        )
        return self

    async def stop(self) -> None:
        for t in (self._transport, self._spoofer):
            if t is not None:
                t.close()
        self._transport = self._spoofer = None
        await asyncio.sleep(0)

    def restart(self, *, epoch_offset: int = 0) -> None:
        """A reboot: the table is empty and the epoch starts again from ``epoch_offset``."""
        self.table.clear()
        self._started = time.monotonic()
        self._epoch_offset = epoch_offset

    def advance_epoch(self, seconds: int) -> None:
        """Make the epoch jump ahead (a gateway whose clock runs fast)."""
        self._epoch_offset += seconds

    async def __aenter__(self) -> FakePcpServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def epoch(self) -> int:
        return int(time.monotonic() - self._started) + self._epoch_offset

    # -- protocol ---------------------------------------------------------------
    def _handle(self, data: bytes, sender: tuple[str, int]) -> list[bytes]:
        q = self.quirks
        if not data:
            return []
        version = data[0]
        if version == 0 and q.pcp_only:
            return []
        if q.drop > 0:
            q.drop -= 1
            self._record(data, sender)
            return []
        if version == 2 and q.natpmp_only:
            self._record(data, sender)
            return [struct.pack("!BBHI", 0, 128 + (data[1] & 0x7F), 1, self.epoch)]
        replies = self._natpmp(data, sender) if version == 0 else self._pcp(data, sender)
        if not replies:
            return []
        real = replies[0]
        out: list[bytes] = []
        if q.garbage_first:
            out.append(q.garbage_first)
        if q.wrong_nonce_first and version == 2 and len(real) >= 36:
            out.append(real[:24] + bytes(12) + real[36:])
        if q.spoof_first and self._spoofer is not None:
            self._spoofer.sendto(real, sender)
        out.append(real)
        return out

    def _record(self, data: bytes, sender: tuple[str, int]) -> None:
        version = data[0]
        opcode = data[1] & 0x7F if len(data) > 1 else -1
        lifetime = 0
        if version == 2 and len(data) >= 8:
            lifetime = int.from_bytes(data[4:8], "big")
        elif version == 0 and len(data) >= 12:
            lifetime = int.from_bytes(data[8:12], "big")
        self.requests.append(
            _Recorded("pcp" if version == 2 else "natpmp", opcode, lifetime, sender, data)
        )

    def _grant(self, lifetime: int) -> int:
        cap = self.quirks.max_lifetime
        return min(lifetime, cap) if cap else lifetime

    def _free_port(self, protocol: str, wanted: int, key: tuple[str, str, int]) -> int:
        used = {(e.protocol, e.external_port) for k, e in self.table.items() if k != key}
        port = wanted or 40000
        while (protocol, port) in used or (protocol, port) in self.taken:
            port = port + 1 if port < 65535 else 1024
        return port

    def _map(
        self, protocol: str, client: str, iport: int, eport: int, lifetime: int, nonce: bytes,
        via: str,
    ) -> tuple[int, PcpEntry | None]:  # fmt: skip
        """(result, entry): 0 success, 2 not authorized (another nonce)."""
        key = (protocol, client, iport)
        old = self.table.get(key)
        if old is not None and via == "pcp" and old.via == "pcp" and old.nonce != nonce:
            return 2, None
        if lifetime == 0:
            self.table.pop(key, None)
            return 0, None
        port = old.external_port if old is not None else self._free_port(protocol, eport, key)
        entry = PcpEntry(protocol, client, iport, port, nonce, self._grant(lifetime), via)
        self.table[key] = entry
        return 0, entry

    def _natpmp(self, data: bytes, sender: tuple[str, int]) -> list[bytes]:
        self._record(data, sender)
        if len(data) == 2 and data[1] == 0:
            ip = ipaddress.IPv4Address(self.external_ip).packed
            return [struct.pack("!BBHI4s", 0, 128, 0, self.epoch, ip)]
        if len(data) != 12 or data[1] not in _NATPMP_OPS:
            return [struct.pack("!BBHI", 0, 128 + data[1] if len(data) > 1 else 128, 5, self.epoch)]
        _, op, _, iport, eport, lifetime = struct.unpack("!BBHHHI", data)
        if self.quirks.refuse:
            return [struct.pack("!BBHIHHI", 0, 128 + op, self.quirks.refuse, self.epoch, iport,
                                0, 0)]  # fmt: skip
        result, entry = self._map(_NATPMP_OPS[op], sender[0], iport, eport, lifetime, b"", "natpmp")
        ext = entry.external_port if entry else 0
        granted = entry.lifetime if entry else 0
        return [struct.pack("!BBHIHHI", 0, 128 + op, result, self.epoch, iport, ext, granted)]

    def _pcp(self, data: bytes, sender: tuple[str, int]) -> list[bytes]:
        self._record(data, sender)
        if len(data) < 24 or len(data) % 4:
            return []
        opcode = data[1] & 0x7F
        lifetime = int.from_bytes(data[4:8], "big")
        client = _address(data[8:24])

        def header(result: int, granted: int) -> bytes:
            return struct.pack("!BBBBII12x", 2, 0x80 | opcode, 0, result, granted, self.epoch)

        if opcode == 0:
            return [header(0, 0)]
        if opcode != 1 or len(data) < 60:
            return [header(4 if opcode != 1 else 3, 0) + data[24:]]
        body = data[24:60]
        nonce, number, iport, eport, _ = struct.unpack("!12sB3xHH16s", body)
        if client != sender[0] and not self.quirks.ignore_source:
            return [header(12, 30) + body]  # ADDRESS_MISMATCH
        third = _option(data[60:], 1)
        if third is not None:
            if not self.quirks.allow_third_party:
                return [header(5, 30) + body]  # UNSUPP_OPTION
            client = _address(third[:16])
        if self.quirks.refuse:
            return [header(self.quirks.refuse, 30) + body]
        protocol = _PROTO_BY_NUMBER.get(number)
        if protocol is None:
            return [header(9, 30) + body]
        key = (protocol, client, iport)
        if lifetime and _has_option(data[60:], 2) and eport:
            old = self.table.get(key)
            if (old.external_port if old else self._free_port(protocol, eport, key)) != eport:
                return [header(11, 30) + body]  # CANNOT_PROVIDE_EXTERNAL
        result, entry = self._map(protocol, client, iport, eport, lifetime, nonce, "pcp")
        if entry is None:
            return [header(result, 0) + body]
        ext_ip = ipaddress.IPv6Address(f"::ffff:{self.external_ip}").packed
        reply = struct.pack("!12sB3xHH16s", nonce, number, iport, entry.external_port, ext_ip)
        return [header(0, entry.lifetime) + reply]


def _option(options: bytes, code: int) -> bytes | None:
    at = 0
    while at + 4 <= len(options):
        length = int.from_bytes(options[at + 2 : at + 4], "big")
        if options[at] == code:
            return options[at + 4 : at + 4 + length]
        at += 4 + length + (-length % 4)
    return None


def _has_option(options: bytes, code: int) -> bool:
    return _option(options, code) is not None


def _address(raw: bytes) -> str:
    ip = ipaddress.IPv6Address(raw)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)
