"""Gateway: one IGD's description plus a SOAP session, with typed action coroutines.

Action methods map 1:1 to WANIPConnection / WANPPPConnection actions
(``add_port_mapping`` ↔ ``AddPortMapping``) on the best connection service the
description offers (WANIPConnection v2 > v1 > WANPPPConnection). A Gateway is
a pure action client: it keeps nothing alive. The safe mapping flow and the
mappings kept alive live in :class:`aioigd.mapper.PortMapper`, above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from .errors import (
    ActionNotSupported,
    IGDError,
    InvalidAction,
    NoSuchEntryInArray,
    OptionalActionNotImplemented,
    PortMappingNotFound,
    RemoteProtocolError,
    ResponseTooLarge,
    SpecifiedArrayIndexInvalid,
    UPnPError,
)
from .models import (
    ConnectionTypeInfo,
    DeviceDescription,
    NATRSIPStatus,
    PortMappingEntry,
    SearchResponse,
    Service,
    ServiceKind,
    StatusInfo,
    TrafficCounters,
    Transport,
    TransportLike,
)
from .netutil import local_address_for
from .proto import actions
from .proto.description import parse_description
from .proto.table import ACTIONS, check_action
from .proto.urls import check_url, url_host
from .session import DEFAULT_TIMEOUT, SoapSession

log = logging.getLogger("aioigd")
_traffic = logging.getLogger("aioigd.traffic")

__all__ = [
    "Gateway",
    "MAX_ENUMERATED_ENTRIES",
    "RANGE_DELETE_CHUNK",
    "SAFE_LIST_ENTRIES",
    "ENUMERATION_WINDOW",
]

#: Enumeration stops here even if the gateway never answers 713 (upnpc loops forever).
MAX_ENUMERATED_ENTRIES = 1024
#: miniupnpd 2.3.1 corrupts its heap when one DeletePortMappingRange covers >= 133
#: mappings (peer-baseline.md §7), so ranges are sent in chunks of at most this many ports.
RANGE_DELETE_CHUNK = 100
#: A GetListOfPortMappings is only sent when the whole table is smaller than this:
#: miniupnpd 2.3.1 crashes when one listing covers 134 or more mappings.
SAFE_LIST_ENTRIES = 100
#: GetGenericPortMappingEntry indexes in flight at once: with GetExternalIPAddress
#: alongside, that fills the session's MAX_CONNECTIONS (miniupnpd's backlog is 5).
ENUMERATION_WINDOW = 3
#: Reasons kept for malformed entries left out of one enumeration.
_MAX_SKIPPED = 64
#: Consecutive placeholder entries after which enumeration gives up.
_MAX_EMPTY_RUN = 64
#: The description every mapping gets unless the caller says otherwise.
DEFAULT_DESCRIPTION = "aioigd"
#: One hour: long enough to survive a missed renewal, short enough to expire after a crash.
DEFAULT_LEASE = 3600


class Gateway:
    """A UPnP Internet Gateway Device.

    Create one with :meth:`from_location` or :func:`aioigd.discover`; use it as
    an async context manager so its session closes.
    """

    def __init__(
        self,
        description: DeviceDescription,
        session: SoapSession,
        *,
        search: SearchResponse | None = None,
    ) -> None:
        services = description.connection_services()
        if not services:
            raise ActionNotSupported(
                f"{description.location} offers no WANIPConnection or WANPPPConnection service"
            )
        self.description = description
        self.session = session
        self.search = search
        #: The connection service every action goes to.
        self.service: Service = services[0]
        #: The IPv6 firewall-control service, if any.
        self.firewall: Service | None = description.firewall_service()
        #: The WANCommonInterfaceConfig service (traffic counters), if any.
        self.common_interface: Service | None = next(
            (s for s in description.services() if s.kind is ServiceKind.COMMON_INTERFACE), None
        )
        #: Why discovery chose this device (several IGDs may answer; empty: not discovered).
        self.discovery_reason = ""
        #: Why :attr:`service` was chosen (several WAN connections: see :meth:`choose_connection`).
        self.choice = "the first WAN connection service"
        self._local_address: str | None = None
        #: Why entries of the last :meth:`port_mappings` were left out (malformed).
        self.skipped_entries: list[str] = []

    @classmethod
    async def from_location(
        cls,
        location: str,
        *,
        http_timeout: float = DEFAULT_TIMEOUT,
        allow_foreign_urls: bool = False,
        search: SearchResponse | None = None,
    ) -> Gateway:
        """Fetch and parse the description at ``location`` (like ``upnpc -u``).

        Raises:
            UnsafeURLError: ``location`` is not a plain http URL.
            RemoteProtocolError: the description is hostile, oversized or not an IGD's.
            IGDConnectionError / IGDTimeoutError: the gateway did not answer.
            ActionNotSupported: no WAN connection service in the description.
        """
        check_url(location)
        session = SoapSession(
            None if allow_foreign_urls else url_host(location), timeout=http_timeout
        )
        try:
            data = await session.get(location)
            description = parse_description(data, location, allow_foreign_urls=allow_foreign_urls)
            gateway = cls(description, session, search=search)
            await gateway.choose_connection()
            return gateway
        except BaseException:
            await session.close()
            raise

    async def choose_connection(self) -> str:
        """Among several WAN connection services, choose a connected one with a usable
        external address (as miniupnpc's UPNP_GetValidIGD and Tailscale's portmapper do);
        returns, and keeps in :attr:`choice`, why. One service: nothing is asked.

        Each is asked GetStatusInfo and GetExternalIPAddress at once; ties go to the
        preferred type (WANIPConnection v2 > v1 > WANPPPConnection).
        """
        services = self.description.connection_services()
        if len(services) < 2:
            self.choice = "the only WAN connection service"
            return self.choice
        probes = await asyncio.gather(*(self._probe_connection(s) for s in services))
        rank, index = min((p[0], i) for i, p in enumerate(probes))
        self.service = services[index]
        self.firewall = self.description.firewall_service(preferred=self.service)
        others = ", ".join(
            f"{s.service_type.rsplit(':', 2)[-2]} {probes[i][1]}"
            for i, s in enumerate(services)
            if i != index
        )
        self.choice = f"{probes[index][1]} (of {len(services)}; others: {others})"
        log.info("%s: using %s: %s", self.location, self.service.control_url, self.choice)
        return self.choice

    async def _probe_connection(self, service: Service) -> tuple[int, str]:
        """(rank, description): 0 connected with an address, 1 connected, 2 unknown, 3 down."""

        async def ask(action: str) -> dict[str, str] | None:
            try:
                return await self.session.call(
                    service.control_url, service.service_type, action, []
                )
            except IGDError:
                return None

        status_out, ip_out = await asyncio.gather(ask("GetStatusInfo"), ask("GetExternalIPAddress"))
        status = ""
        if status_out is not None:
            with contextlib.suppress(RemoteProtocolError):
                status = actions.parse_status_info(status_out).connection_status
        address = None
        if ip_out is not None:
            with contextlib.suppress(IGDError):
                address = actions.parse_external_ip(ip_out)
        if status == "Connected" and address:
            return 0, f"connected, external address {address}"
        if status == "Connected":
            return 1, "connected, no external address"
        if status:
            return 3, status.lower()
        return (1 if address else 2), (f"external address {address}" if address else "no answer")

    # -- identity ---------------------------------------------------------
    @property
    def location(self) -> str:
        """The description URL."""
        return self.description.location

    @property
    def host(self) -> str:
        """The gateway's address, as in its LOCATION."""
        return url_host(self.location)

    @property
    def udn(self) -> str:
        """The root device's UDN (``uuid:...``)."""
        return self.description.root.udn

    @property
    def friendly_name(self) -> str:
        """The root device's friendlyName."""
        return self.description.root.friendly_name

    @property
    def is_v2(self) -> bool:
        """True when the connection service is WANIPConnection:2 (has the v2 actions)."""
        return self.service.kind is ServiceKind.WAN_IP and self.service.version >= 2

    def local_address(self) -> str:
        """The host's address on the route to this gateway (the default internal client)."""
        if self._local_address is None:
            self._local_address = local_address_for(self.host)
        return self._local_address

    def __repr__(self) -> str:
        return f"<Gateway {self.location} {self.service.service_type}>"

    # -- raw actions --------------------------------------------------------
    async def call(self, action: str, args: list[tuple[str, str]] | None = None) -> dict[str, str]:
        """Send ``action`` to the connection service; return its out arguments."""
        if action in ACTIONS:  # other names (vendor actions) go out unchecked
            check_action(action, self.service)
        try:
            return await self.session.call(
                self.service.control_url, self.service.service_type, action, args or []
            )
        except UPnPError as exc:
            # The traffic log's "HTTP 500 n bytes" line says that it failed; this, why.
            _traffic.debug("<- %s fault: %s", self.service.control_url, exc)
            raise

    async def get_external_ip_address(self) -> str:
        """GetExternalIPAddress → dotted IPv4 string.

        Raises:
            ExternalIPUnavailable: the gateway has no external address.
            RemoteProtocolError: the gateway returned something that is not IPv4.
        """
        return actions.parse_external_ip(await self.call("GetExternalIPAddress"))

    async def get_status_info(self) -> StatusInfo:
        """GetStatusInfo."""
        return actions.parse_status_info(await self.call("GetStatusInfo"))

    async def get_traffic_counters(self) -> TrafficCounters:
        """GetTotalBytesSent/Received and GetTotalPacketsSent/Received of the
        WANCommonInterfaceConfig service (like ``upnpc -s``); a counter the gateway does
        not implement (401, 602) is ``None``.

        Raises:
            ActionNotSupported: the gateway has no WANCommonInterfaceConfig service.
        """
        service = self.common_interface
        if service is None:
            raise ActionNotSupported(f"{self.location} has no WANCommonInterfaceConfig service")
        values: list[int | None] = []
        for action in (
            "GetTotalBytesSent",
            "GetTotalBytesReceived",
            "GetTotalPacketsSent",
            "GetTotalPacketsReceived",
        ):
            spec = check_action(action, service)
            assert spec.parser is not None
            try:
                out = await self.session.call(service.control_url, service.service_type, action, [])
            except (InvalidAction, OptionalActionNotImplemented):
                values.append(None)
                continue
            value = spec.parser(out)
            assert isinstance(value, int)
            values.append(value)
        return TrafficCounters(*values)

    async def get_connection_type_info(self) -> ConnectionTypeInfo:
        """GetConnectionTypeInfo."""
        return actions.parse_connection_type_info(await self.call("GetConnectionTypeInfo"))

    async def get_nat_rsip_status(self) -> NATRSIPStatus:
        """GetNATRSIPStatus."""
        return actions.parse_nat_rsip_status(await self.call("GetNATRSIPStatus"))

    async def add_port_mapping(
        self,
        external_port: int,
        *,
        protocol: TransportLike,
        internal_port: int,
        internal_client: str,
        description: str = DEFAULT_DESCRIPTION,
        lease: int = DEFAULT_LEASE,
        remote_host: str | None = None,
        enabled: bool = True,
    ) -> None:
        """AddPortMapping (also renews: the same key and client overwrite)."""
        await self.call(
            "AddPortMapping",
            actions.port_mapping_args(
                external_port=external_port,
                protocol=Transport.parse(protocol),
                internal_port=internal_port,
                internal_client=internal_client,
                description=description,
                lease=lease,
                remote_host=remote_host,
                enabled=enabled,
            ),
        )

    async def add_any_port_mapping(
        self,
        external_port: int,
        *,
        protocol: TransportLike,
        internal_port: int,
        internal_client: str,
        description: str = DEFAULT_DESCRIPTION,
        lease: int = DEFAULT_LEASE,
        remote_host: str | None = None,
        enabled: bool = True,
    ) -> int:
        """AddAnyPortMapping (v2): returns the port the gateway reserved."""
        out = await self.call(
            "AddAnyPortMapping",
            actions.port_mapping_args(
                external_port=external_port,
                protocol=Transport.parse(protocol),
                internal_port=internal_port,
                internal_client=internal_client,
                description=description,
                lease=lease,
                remote_host=remote_host,
                enabled=enabled,
            ),
        )
        return actions.parse_reserved_port(out)

    async def delete_port_mapping(
        self, external_port: int, protocol: TransportLike, *, remote_host: str | None = None
    ) -> None:
        """DeletePortMapping (miniupnpd answers 200 even when nothing was there)."""
        await self.call(
            "DeletePortMapping",
            actions.mapping_key_args(external_port, Transport.parse(protocol), remote_host),
        )

    async def delete_port_mapping_range(
        self, start_port: int, end_port: int, protocol: TransportLike, *, manage: bool = False
    ) -> None:
        """DeletePortMappingRange (v2), sent in chunks of at most :data:`RANGE_DELETE_CHUNK`.

        A chunk that matches nothing (730) is not an error.
        """
        actions.delete_range_args(start_port, end_port, protocol, manage=manage)  # validate
        for lo in range(start_port, end_port + 1, RANGE_DELETE_CHUNK):
            hi = min(lo + RANGE_DELETE_CHUNK - 1, end_port)
            with contextlib.suppress(PortMappingNotFound):
                await self.call(
                    "DeletePortMappingRange",
                    actions.delete_range_args(lo, hi, protocol, manage=manage),
                )

    async def get_generic_port_mapping_entry(self, index: int) -> PortMappingEntry | None:
        """GetGenericPortMappingEntry; ``None`` for a placeholder (empty) entry.

        Raises:
            SpecifiedArrayIndexInvalid: past the end of the table (713).
        """
        out = await self.call("GetGenericPortMappingEntry", actions.generic_entry_args(index))
        return actions.parse_port_mapping_entry(out)

    async def get_specific_port_mapping_entry(
        self, external_port: int, protocol: TransportLike, *, remote_host: str | None = None
    ) -> PortMappingEntry:
        """GetSpecificPortMappingEntry.

        Raises:
            NoSuchEntryInArray: no such mapping (714).
        """
        proto = Transport.parse(protocol)
        out = await self.call(
            "GetSpecificPortMappingEntry",
            actions.mapping_key_args(external_port, proto, remote_host),
        )
        entry = actions.parse_port_mapping_entry(
            out, external_port=external_port, protocol=proto, remote_host=remote_host
        )
        if entry is None:
            raise NoSuchEntryInArray(
                714, "empty entry", "GetSpecificPortMappingEntry", self.service.service_type
            )
        return entry

    async def get_list_of_port_mappings(
        self,
        protocol: TransportLike,
        *,
        start_port: int = 1,
        end_port: int = 65535,
        manage: bool = True,
        number: int = 0,
    ) -> list[PortMappingEntry]:
        """GetListOfPortMappings (v2); no match (730) is an empty list."""
        try:
            out = await self.call(
                "GetListOfPortMappings",
                actions.list_mappings_args(
                    start_port, end_port, protocol, manage=manage, number=number
                ),
            )
        except PortMappingNotFound:
            return []
        return actions.parse_list_of_port_mappings(out, self.skipped_entries)

    async def port_mappings(
        self, *, max_entries: int = MAX_ENUMERATED_ENTRIES
    ) -> list[PortMappingEntry]:
        """The whole mapping table, bounded by ``max_entries``.

        On v2 a small table (see :meth:`small_table`) is listed; otherwise it is read
        with GetGenericPortMappingEntry from index 0 until 713/714 (a few indexes in flight
        at once), skipping empty placeholder entries, stopping at ``max_entries``
        indexes or after a long run of placeholders (a router that never says 713).
        A malformed entry is left out (its reason in :attr:`skipped_entries`).
        """
        if self.is_v2:  # v1 has no listing action: the size probe would be wasted
            small = await self.small_table(max_entries=max_entries)
            if small is not None:
                return small
        self.skipped_entries = []
        return await self._enumerate(max_entries)

    async def small_table(
        self, *, max_entries: int = SAFE_LIST_ENTRIES
    ) -> list[PortMappingEntry] | None:
        """The whole table when it holds fewer than :data:`SAFE_LIST_ENTRIES` entries,
        else ``None`` — in a bounded number of requests, whatever the table's size.

        One GetGenericPortMappingEntry at index :data:`SAFE_LIST_ENTRIES` tells; then
        on v2 two GetListOfPortMappings (TCP and UDP, concurrently), on v1 (or when
        listing fails) at most that many indexes one by one.
        """
        self.skipped_entries = []
        if not await self._table_is_small():
            return None
        if self.is_v2:
            try:
                tcp, udp = await asyncio.gather(
                    self.get_list_of_port_mappings(Transport.TCP),
                    self.get_list_of_port_mappings(Transport.UDP),
                )
                return (tcp + udp)[:max_entries]
            except (UPnPError, ActionNotSupported, RemoteProtocolError):
                # 401/602; 606 when listing other clients is not authorized; or a
                # listing one unescaped description broke (miniupnpd copies it raw).
                self.skipped_entries = []
        return await self._enumerate(min(max_entries, SAFE_LIST_ENTRIES))

    async def _table_is_small(self) -> bool:
        """True when index :data:`SAFE_LIST_ENTRIES` is past the end of the table.

        miniupnpd 2.3.1 crashes (heap corruption) when one GetListOfPortMappings
        covers 134 or more mappings, so a range is only listed whole when it cannot.
        """
        try:
            await self.get_generic_port_mapping_entry(SAFE_LIST_ENTRIES)
        except (SpecifiedArrayIndexInvalid, NoSuchEntryInArray):
            return True
        except UPnPError:
            return False
        return False

    async def _enumerate(self, max_entries: int) -> list[PortMappingEntry]:
        entries: list[PortMappingEntry] = []
        empty_run = 0
        for start in range(0, max_entries, ENUMERATION_WINDOW):
            indexes = range(start, min(start + ENUMERATION_WINDOW, max_entries))
            results = await asyncio.gather(
                *(self.get_generic_port_mapping_entry(i) for i in indexes), return_exceptions=True
            )
            for index, result in zip(indexes, results, strict=True):
                if isinstance(result, SpecifiedArrayIndexInvalid | NoSuchEntryInArray):
                    return entries  # the end of the table
                if isinstance(result, RemoteProtocolError) and not isinstance(
                    result, ResponseTooLarge
                ):
                    if len(self.skipped_entries) < _MAX_SKIPPED:
                        self.skipped_entries.append(f"entry {index}: {result}")
                    empty_run += 1  # a router that only ever sends garbage ends like one
                    if empty_run >= _MAX_EMPTY_RUN:  # that never says 713
                        return entries
                    continue
                if isinstance(result, BaseException):
                    raise result
                if result is None:
                    empty_run += 1
                    if empty_run >= _MAX_EMPTY_RUN:
                        return entries
                    continue
                empty_run = 0
                entries.append(result)
        return entries

    async def close(self) -> None:
        """Close the SOAP session (idempotent)."""
        await self.session.close()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
