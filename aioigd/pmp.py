"""PCP and NAT-PMP clients: one connected UDP socket per gateway, over the codecs.

A request is sent, then sent again on a schedule (foreground: 250 ms doubling
until the call's deadline; background renewals: 3 s doubling, RFC 6887 8.1.1)
until an answer that decodes as the answer to *this* request arrives from the
gateway's address and port. Every answer's epoch goes through an
:class:`~aioigd.proto.epoch.EpochTracker`; :attr:`PmpClient.restarts` counts
the times it showed that the gateway lost its state, so the mapper can map
everything on it again. An ICMP port-unreachable (nothing listens on 5351)
ends a request at once.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

from .deadlines import current_deadline
from .errors import (
    IGDConnectionError,
    IGDError,
    IGDTimeoutError,
    MappingRefused,
    PmpAddressMismatch,
    PmpError,
    PmpNoResources,
    PmpNotAuthorized,
    PmpUnsupportedVersion,
    PortInUse,
    RemoteProtocolError,
)
from .models import Transport
from .netguard import check_destination
from .proto import natpmp, pcp
from .proto.epoch import EpochTracker

__all__ = [
    "Mechanism",
    "PmpGrant",
    "PmpClient",
    "PcpClient",
    "NatPmpClient",
    "FOREGROUND_TIMEOUT",
    "BACKGROUND_TIMEOUT",
    "retransmit_delays",
]

log = logging.getLogger("aioigd")

Mechanism = Literal["pcp", "natpmp"]
R = TypeVar("R")

#: Seconds a foreground call (map, delete, probe) waits for an answer.
FOREGROUND_TIMEOUT = 2.0
#: Seconds a background renewal waits (three sends: at 0, 3 and 9 s).
BACKGROUND_TIMEOUT = 20.0
_FOREGROUND_FIRST = 0.25
_BACKGROUND_FIRST = 3.0
_MAX_INTERVAL = 1024.0


def retransmit_delays(first: float, total: float, cap: float = _MAX_INTERVAL) -> list[float]:
    """Offsets from the first send at which to send again, doubling from ``first``
    (capped at ``cap``), all before ``total``."""
    out: list[float] = []
    at, step = 0.0, first
    while at + step < total:
        at += step
        out.append(at)
        step = min(step * 2, cap)
    return out


@dataclass(frozen=True)
class PmpGrant:
    """What the gateway granted for one MAP request."""

    external_ip: str | None
    external_port: int
    lifetime: int


class _Endpoint(asyncio.DatagramProtocol):
    """Hands each datagram from the server to the pending request that accepts it."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.waiters: list[tuple[Callable[[bytes], object], asyncio.Future[object]]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if (str(addr[0]), int(addr[1])) != self.server:
            log.debug("PCP/NAT-PMP: ignored a datagram from %s (not %s)", addr, self.server)
            return
        if len(data) > pcp.MAX_MESSAGE:
            log.debug("PCP/NAT-PMP: ignored a %d-byte datagram from %s", len(data), addr)
            return
        for decode, future in list(self.waiters):
            if future.done():
                continue
            try:
                value = decode(data)
            except RemoteProtocolError as exc:
                log.debug("PCP/NAT-PMP: %s sent a non-matching answer: %s", addr[0], exc)
                continue
            future.set_result(value)
            return

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: nothing listens there.
        for _, future in self.waiters:
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        for _, future in self.waiters:
            if not future.done():
                future.set_exception(exc or ConnectionError("socket closed"))


class PmpClient(abc.ABC):
    """Talks to one PCP / NAT-PMP server (``host``:5351) over one UDP socket."""

    mechanism: Mechanism

    def __init__(self, host: str, *, port: int = natpmp.SERVER_PORT) -> None:
        ipaddress.ip_address(host)  # a literal address: nothing is resolved
        self.host = host
        self.port = port
        self.epoch = EpochTracker()
        #: How often an answer's epoch showed that the gateway lost its mappings.
        self.restarts = 0
        self._endpoint: _Endpoint | None = None
        self._lock = asyncio.Lock()

    @property
    def location(self) -> str:
        """``pcp://host:port`` / ``natpmp://host:port`` (what mappings name as their gateway)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.mechanism}://{host}:{self.port}"

    @property
    def local_address(self) -> str:
        """This host's address towards the gateway (the socket's source address)."""
        return str(self._transport().get_extra_info("sockname")[0])

    async def open(self) -> None:
        """Open the socket (once); later calls do nothing."""
        async with self._lock:
            if self._endpoint is not None:
                return
            check_destination(self.host, self.mechanism)
            loop = asyncio.get_running_loop()
            server = (self.host, self.port)
            try:
                _, endpoint = await loop.create_datagram_endpoint(
                    lambda: _Endpoint(server), remote_addr=server
                )
            except OSError as exc:
                raise IGDConnectionError(f"cannot open a UDP socket to {self.host}: {exc}") from exc
            self._endpoint = endpoint

    async def close(self) -> None:
        """Close the socket."""
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None and endpoint.transport is not None:
            endpoint.transport.close()
            # The socket is closed on the next loop turn: wait for it (bounded).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(endpoint.closed), 1.0)

    async def __aenter__(self) -> PmpClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _transport(self) -> asyncio.DatagramTransport:
        if self._endpoint is None or self._endpoint.transport is None:
            raise RuntimeError(f"{type(self).__name__} for {self.host} is not open")
        return self._endpoint.transport

    async def _request(
        self,
        payload: bytes,
        decode: Callable[[bytes], R],
        *,
        timeout: float,
        background: bool = False,
    ) -> R:
        """Send ``payload`` until ``decode`` accepts an answer or ``timeout`` passes
        (or the command's :func:`~aioigd.deadlines.deadline`, if sooner)."""
        loop = asyncio.get_running_loop()
        end = current_deadline()
        if end is not None:
            if end - loop.time() <= 0:
                raise IGDTimeoutError(f"{self.mechanism}: the command's deadline has passed")
            timeout = min(timeout, end - loop.time())
        await self.open()
        assert self._endpoint is not None
        endpoint = self._endpoint
        future: asyncio.Future[object] = loop.create_future()
        waiter = (decode, future)
        endpoint.waiters.append(waiter)
        first = _BACKGROUND_FIRST if background else _FOREGROUND_FIRST
        started = loop.time()
        try:
            async with asyncio.timeout(timeout):
                for at in [0.0, *retransmit_delays(first, timeout)]:
                    delay = started + at - loop.time()
                    if delay > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(future), delay)
                    if future.done():
                        break
                    self._transport().sendto(payload)
                value = await future
        except TimeoutError:
            raise IGDTimeoutError(
                f"no {self.mechanism} answer from {self.host} within {timeout:g} s"
            ) from None
        except OSError as exc:
            raise IGDConnectionError(f"{self.mechanism} to {self.host}: {exc}") from exc
        finally:
            endpoint.waiters.remove(waiter)
            if not future.done():
                future.cancel()
        return value  # type: ignore[return-value]  # decode's result

    def _saw_epoch(self, epoch: int) -> None:
        if self.epoch.observe(epoch, asyncio.get_running_loop().time()):
            self.restarts += 1
            log.info(
                "%s at %s restarted (epoch %d): its mappings are gone",
                self.mechanism,
                self.host,
                epoch,
            )

    @abc.abstractmethod
    async def probe(self, *, request_timeout: float = FOREGROUND_TIMEOUT) -> None:
        """Does the gateway speak this protocol? Raises when it does not answer so."""

    @abc.abstractmethod
    async def map(
        self,
        protocol: Transport,
        internal_port: int,
        *,
        lifetime: int,
        nonce: bytes,
        suggested_port: int = 0,
        client_ip: str | None = None,
        third_party: str | None = None,
        prefer_failure: bool = False,
        request_timeout: float = FOREGROUND_TIMEOUT,
        background: bool = False,
    ) -> PmpGrant:
        """Map ``internal_port`` (of ``client_ip``: this host, or behind another NAT
        that NAT's external address; or, PCP only, of another host: ``third_party``);
        lifetime 0 deletes."""

    async def external_ip(self, *, request_timeout: float = FOREGROUND_TIMEOUT) -> str | None:
        """The gateway's external address (``None``: the protocol does not say apart
        from a mapping)."""
        return None


def _pcp_error(result: int, lifetime: int, what: str) -> PmpError:
    name = pcp.result_name(result)
    message = f"PCP {what}: {name}"
    cls: type[PmpError] = PmpError
    if result == pcp.PcpResult.UNSUPP_VERSION:
        cls = PmpUnsupportedVersion
    elif result == pcp.PcpResult.NOT_AUTHORIZED:
        cls = PmpNotAuthorized
    elif result == pcp.PcpResult.ADDRESS_MISMATCH:
        cls = PmpAddressMismatch
    elif result in (pcp.PcpResult.NO_RESOURCES, pcp.PcpResult.USER_EX_QUOTA):
        cls = PmpNoResources
    return cls(message, protocol="pcp", result=result, lifetime=lifetime)


class PcpClient(PmpClient):
    """PCP version 2 (RFC 6887)."""

    mechanism: Mechanism = "pcp"

    async def probe(self, *, request_timeout: float = FOREGROUND_TIMEOUT) -> None:
        await self.open()
        answer = await self._request(
            pcp.encode_announce(self.local_address),
            lambda data: pcp.decode_response(data, pcp.Opcode.ANNOUNCE),
            timeout=request_timeout,
        )
        if answer.version == 0 or answer.result == pcp.PcpResult.UNSUPP_VERSION:
            raise _pcp_error(answer.result, 0, "ANNOUNCE")
        self._saw_epoch(answer.epoch)
        # An ANNOUNCE error other than a version problem still shows a PCP server.

    async def map(
        self,
        protocol: Transport,
        internal_port: int,
        *,
        lifetime: int,
        nonce: bytes,
        suggested_port: int = 0,
        client_ip: str | None = None,
        third_party: str | None = None,
        prefer_failure: bool = False,
        request_timeout: float = FOREGROUND_TIMEOUT,
        background: bool = False,
    ) -> PmpGrant:
        await self.open()
        source = client_ip or self.local_address
        request = pcp.encode_map(
            nonce=nonce,
            protocol=protocol,
            internal_port=internal_port,
            lifetime=lifetime,
            client_ip=source,
            suggested_port=suggested_port if lifetime else 0,
            third_party=third_party,
            prefer_failure=prefer_failure and lifetime > 0,
        )
        answer = await self._request(
            request,
            # A NAT-PMP-only gateway's version-0 refusal is decoded before the MAP fields.
            lambda data: pcp.decode_response(
                data, pcp.Opcode.MAP, nonce=nonce, protocol=protocol, internal_port=internal_port
            ),
            timeout=request_timeout,
            background=background,
        )
        if answer.version != 0:
            self._saw_epoch(answer.epoch)
        what = f"MAP {protocol.value} {source}:{internal_port}"
        if answer.result == pcp.PcpResult.CANNOT_PROVIDE_EXTERNAL and prefer_failure:
            raise PortInUse(f"PCP: {protocol.value} port {suggested_port} is not available")
        if answer.result != pcp.PcpResult.SUCCESS:
            raise _pcp_error(answer.result, answer.lifetime, what)
        return PmpGrant(answer.external_ip or None, answer.external_port, answer.lifetime)


def _natpmp_error(result: int, what: str) -> PmpError:
    message = f"NAT-PMP {what}: {natpmp.result_name(result)}"
    cls: type[PmpError] = PmpError
    if result == natpmp.NatPmpResult.UNSUPPORTED_VERSION:
        cls = PmpUnsupportedVersion
    elif result == natpmp.NatPmpResult.NOT_AUTHORIZED:
        cls = PmpNotAuthorized
    elif result == natpmp.NatPmpResult.OUT_OF_RESOURCES:
        cls = PmpNoResources
    return cls(message, protocol="natpmp", result=result)


class NatPmpClient(PmpClient):
    """NAT-PMP (RFC 6886): IPv4 only; the mapping is always for the sender's address."""

    mechanism: Mechanism = "natpmp"

    async def external_ip(self, *, request_timeout: float = FOREGROUND_TIMEOUT) -> str | None:
        answer = await self._request(
            natpmp.encode_external_address_request(),
            natpmp.decode_external_address_response,
            timeout=request_timeout,
        )
        self._saw_epoch(answer.epoch)
        if answer.result != natpmp.NatPmpResult.SUCCESS:
            raise _natpmp_error(answer.result, "external address")
        ip = answer.external_ip
        return ip if ip and not ipaddress.ip_address(ip).is_unspecified else None

    async def probe(self, *, request_timeout: float = FOREGROUND_TIMEOUT) -> None:
        await self.external_ip(request_timeout=request_timeout)

    async def map(
        self,
        protocol: Transport,
        internal_port: int,
        *,
        lifetime: int,
        nonce: bytes,
        suggested_port: int = 0,
        client_ip: str | None = None,
        third_party: str | None = None,
        prefer_failure: bool = False,
        request_timeout: float = FOREGROUND_TIMEOUT,
        background: bool = False,
    ) -> PmpGrant:
        del nonce  # NAT-PMP has none: a mapping is its sender's internal port
        if third_party is not None:
            raise MappingRefused(
                f"NAT-PMP cannot map for {third_party}: it maps only for the host that asks "
                "(use PCP or UPnP)"
            )
        answer = await self._request(
            natpmp.encode_map_request(
                protocol, internal_port, suggested_port if lifetime else 0, lifetime
            ),
            lambda data: natpmp.decode_map_response(data, protocol, internal_port),
            timeout=request_timeout,
            background=background,
        )
        self._saw_epoch(answer.epoch)
        if answer.result != natpmp.NatPmpResult.SUCCESS:
            raise _natpmp_error(answer.result, f"map {protocol.value} {internal_port}")
        if (
            lifetime
            and prefer_failure
            and suggested_port
            and answer.external_port != suggested_port
        ):
            # NAT-PMP cannot refuse another port: give it back and say so.
            with contextlib.suppress(IGDError):
                await self.map(
                    protocol, internal_port, lifetime=0, nonce=b"", request_timeout=request_timeout
                )
            raise PortInUse(f"NAT-PMP: {protocol.value} port {suggested_port} is not available")
        external_ip: str | None = None
        if lifetime:
            with contextlib.suppress(IGDError):
                external_ip = await self.external_ip(request_timeout=request_timeout)
        return PmpGrant(external_ip, answer.external_port, answer.lifetime)


def client_for(mechanism: Mechanism, host: str, port: int = natpmp.SERVER_PORT) -> PmpClient:
    """A client of ``mechanism`` for the gateway at ``host``."""
    cls = PcpClient if mechanism == "pcp" else NatPmpClient
    return cls(host, port=port)
