"""One call for "make this port reachable": an IPv4 mapping (through every NAT
layer that needs it) and an IPv6 pinhole, opened concurrently, each reported
on its own — one failing does not undo the other.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from .anymapper import DEFAULT_PROTOCOLS, MappingProtocol, parse_protocols
from .discovery import SearchOptions, discover
from .errors import IGDError
from .firewall import DEFAULT_PINHOLE_LEASE, FirewallControl, KeptPinhole
from .gateway import Gateway
from .keeper import Leftover
from .mapper import KeptMapping
from .models import Pinhole, PortMapping, Transport, TransportLike
from .multilayer import LayeredMapping, MultiLayerMapper
from .netutil import default_gateways_v6
from .pmp import PcpClient
from .pmpmapper import PmpMapper
from .traceroute import DEFAULT_PROBE_TARGET

__all__ = ["Reachability", "ReachablePort"]


@dataclass(frozen=True)
class Reachability:
    """What :class:`ReachablePort` achieved, per address family.

    ``ipv6`` is a WANIPv6FirewallControl :class:`Pinhole`, or — where that service
    is missing and PCP answers — a PCP :class:`PortMapping` of the IPv6 address
    (``mechanism`` ``"pcp"``; PCP MAP on IPv6 opens the firewall for it).
    """

    ipv4: LayeredMapping | None = None
    ipv6: Pinhole | PortMapping | None = None
    ipv4_error: str | None = None
    ipv6_error: str | None = None
    #: The exceptions behind ``ipv4_error`` / ``ipv6_error`` (for their type and code).
    ipv4_exception: BaseException | None = field(default=None, compare=False, repr=False)
    ipv6_exception: BaseException | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the multi-layer result's keys plus ``ipv6`` (or ``*_error``)."""
        out: dict[str, Any] = self.ipv4.as_dict() if self.ipv4 else {}
        if self.ipv4_error:
            out["ipv4_error"] = self.ipv4_error
        out["ipv6"] = self.ipv6.as_dict() if self.ipv6 else None
        if self.ipv6_error:
            out["ipv6_error"] = self.ipv6_error
        return out


class ReachablePort:
    """Open ``port`` over IPv4 (multi-layer mapping) and IPv6 (pinhole) at once.

    ``async with ReachablePort(8000) as r:`` keeps both renewed and removes
    both on exit. Arguments are those of :class:`MultiLayerMapper` plus
    ``ipv6_search`` (discovery for the IPv6 gateway) and ``ipv6_client``. With
    ``"pcp"`` in ``protocols``, an IPv6 gateway without WANIPv6FirewallControl
    (or without UPnP) is asked for a PCP MAP of the IPv6 address instead.
    """

    def __init__(
        self,
        port: int,
        protocol: TransportLike = Transport.TCP,
        *,
        ipv4: bool = True,
        ipv6: bool = True,
        layers: Literal["auto"] | int = "auto",
        external_port: int | None = None,
        lease: int = 3600,
        description: str = "aioigd",
        via: list[str | None] | None = None,
        probe_target: str | None = DEFAULT_PROBE_TARGET,
        search: SearchOptions | None = None,
        ipv6_search: SearchOptions | None = None,
        ipv6_gateway: str | None = None,
        ipv6_client: str | None = None,
        search_timeout: float = 2.0,
        http_timeout: float = 5.0,
        protocols: Sequence[MappingProtocol] | str = DEFAULT_PROTOCOLS,
    ) -> None:
        self.port = port
        self.protocols = parse_protocols(protocols)
        self.protocol = Transport.parse(protocol)
        self.ipv6_search = ipv6_search or SearchOptions(
            ipv4=False, ipv6=True, timeout=search_timeout, http_timeout=http_timeout
        )
        self.ipv6_gateway = ipv6_gateway
        self.ipv6_client = ipv6_client
        self.lease = lease
        self.http_timeout = http_timeout
        self.want_ipv4 = ipv4
        self.want_ipv6 = ipv6
        self.mapper = MultiLayerMapper(
            port,
            self.protocol,
            layers=layers,
            external_port=external_port,
            lease=lease,
            description=description,
            via=via or (),
            probe_target=probe_target,
            search=search,
            search_timeout=search_timeout,
            http_timeout=http_timeout,
            protocols=self.protocols,
        )
        self.search_timeout = search_timeout
        self._gateway6: Gateway | None = None
        self._pcp6: PmpMapper | None = None
        self._firewall: FirewallControl | None = None
        #: The kept IPv6 pinhole (or PCP IPv6 mapping) once opened.
        self.pinhole: KeptPinhole | KeptMapping | None = None

    async def _open_ipv6(self) -> Pinhole | PortMapping:
        lease = min(max(self.lease, 1), 86400) if self.lease else DEFAULT_PINHOLE_LEASE
        gw: Gateway | None = None
        try:
            if "upnp" not in self.protocols:
                raise IGDError("UPnP is not among the protocols")
            if self.ipv6_gateway:
                gw = await Gateway.from_location(self.ipv6_gateway, http_timeout=self.http_timeout)
            else:
                gw = await discover(self.ipv6_search)
            self._gateway6 = gw
            self._firewall = FirewallControl.from_gateway(gw, internal_client=self.ipv6_client)
            self.pinhole = await self._firewall.keep_pinhole(self.port, self.protocol, lease=lease)
            return self.pinhole.current
        except IGDError as exc:
            host = self._pcp6_host(gw)
            if "pcp" not in self.protocols or host is None:
                raise
            upnp_error = exc
        try:
            self._pcp6 = PmpMapper(PcpClient(host), request_timeout=self.search_timeout)
            self.pinhole = await self._pcp6.keep(
                self.port,
                external_port=self.port,
                protocol=self.protocol,
                lease=lease,
                internal_client=self.ipv6_client,
            )
        except IGDError as exc:
            raise IGDError(f"UPnP: {upnp_error}; PCP at {host}: {exc}") from exc
        return self.pinhole.current

    @staticmethod
    def _pcp6_host(gw: Gateway | None) -> str | None:
        """Where to ask PCP over IPv6: the UPnP gateway's IPv6 address, else the default
        IPv6 router."""
        candidates = ([gw.host.strip("[]")] if gw is not None else []) + default_gateways_v6()
        for host in candidates:
            try:
                if ipaddress.ip_address(host.split("%", 1)[0]).version == 6:
                    return host
            except ValueError:
                continue
        return None

    async def open(self) -> Reachability:
        """Open both parts concurrently; an error in one is reported, not raised."""

        async def none() -> None:
            return None

        try:
            v4, v6 = await asyncio.gather(
                self.mapper.map() if self.want_ipv4 else none(),
                self._open_ipv6() if self.want_ipv6 else none(),
                return_exceptions=True,
            )
        except BaseException:  # cancelled: the part that did open must not stay
            await self.close()
            raise
        for result in (v4, v6):
            if isinstance(result, BaseException) and not isinstance(result, IGDError | OSError):
                await self.close()
                raise result
        return Reachability(
            ipv4=v4 if isinstance(v4, LayeredMapping) else None,
            ipv6=v6 if isinstance(v6, Pinhole | PortMapping) else None,
            ipv4_error=str(v4) if isinstance(v4, BaseException) else None,
            ipv6_error=str(v6) if isinstance(v6, BaseException) else None,
            ipv4_exception=v4 if isinstance(v4, BaseException) else None,
            ipv6_exception=v6 if isinstance(v6, BaseException) else None,
        )

    async def close(
        self, *, release: bool = True
    ) -> list[Leftover[PortMapping] | Leftover[Pinhole]]:
        """Stop renewing; remove both parts unless ``release=False``.

        Returns what could not be removed, with the reason.
        """
        failed: list[Leftover[PortMapping] | Leftover[Pinhole]] = []
        failed += await self.mapper.close(release=release)
        if self._firewall is not None:
            failed += await self._firewall.close(release=release)
            self._firewall = None
        if self._pcp6 is not None:
            failed += await self._pcp6.close(release=release)
            self._pcp6 = None
        if self._gateway6 is not None:
            await self._gateway6.close()
            self._gateway6 = None
        return failed

    async def __aenter__(self) -> Reachability:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
