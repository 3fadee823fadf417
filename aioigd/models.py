"""Values shared by every layer: frozen dataclasses and protocol enums (no I/O)."""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "MappingProtocol",
    "DEFAULT_PROTOCOLS",
    "parse_protocols",
    "StopReason",
    "Transport",
    "TransportLike",
    "ServiceKind",
    "SearchResponse",
    "Service",
    "Device",
    "DeviceDescription",
    "PortMappingEntry",
    "StatusInfo",
    "TrafficCounters",
    "NATRSIPStatus",
    "ConnectionTypeInfo",
    "PortMapping",
    "FirewallStatus",
    "Pinhole",
    "is_global_address",
]


class Transport(enum.StrEnum):
    """Transport protocol of a port mapping (WANIPConnection ``PortMappingProtocol``)."""

    #: TCP, IANA protocol number 6.
    TCP = "TCP"
    #: UDP, IANA protocol number 17.
    UDP = "UDP"

    @property
    def number(self) -> int:
        """IANA protocol number, as WANIPv6FirewallControl wants it."""
        return 6 if self is Transport.TCP else 17

    @classmethod
    def parse(cls, value: str | Transport) -> Transport:
        """Accept ``"tcp"``, ``"UDP"`` or a member; raise ``ValueError`` otherwise."""
        if isinstance(value, Transport):
            return value
        if not isinstance(value, str):
            raise ValueError(f"protocol must be TCP or UDP, not {value!r}")
        try:
            return cls(value.strip().upper())
        except ValueError:
            raise ValueError(f"protocol must be TCP or UDP, not {value!r}") from None


#: What a ``protocol=`` parameter takes: a member, or its name (checked at run time
#: too: anything else raises ``ValueError``).
TransportLike: TypeAlias = Transport | Literal["TCP", "UDP"]


class ServiceKind(enum.Enum):
    """The IGD services aioigd controls (igd-description.md)."""

    #: ``WANIPConnection`` (v1 or v2).
    WAN_IP = "WANIPConnection"
    #: ``WANPPPConnection`` (v1 only exists).
    WAN_PPP = "WANPPPConnection"
    #: ``WANIPv6FirewallControl`` v1 (IPv6 pinholes).
    FIREWALL = "WANIPv6FirewallControl"
    #: ``WANCommonInterfaceConfig`` v1 (the WAN link: traffic counters).
    COMMON_INTERFACE = "WANCommonInterfaceConfig"


@dataclass(frozen=True)
class SearchResponse:
    """One SSDP search answer (or NOTIFY), with the address it came from."""

    location: str
    st: str
    usn: str
    server: str = ""
    max_age: int | None = None
    boot_id: int | None = None
    #: The IP address the datagram came from (not from the datagram itself).
    sender: str = ""
    is_notify: bool = False
    nts: str = ""


@dataclass(frozen=True)
class Service:
    """A ``<service>`` of a device description, with absolute URLs."""

    service_type: str
    service_id: str
    control_url: str
    scpd_url: str = ""
    event_sub_url: str = ""

    @functools.cached_property  # asked on every request (the action check)
    def kind(self) -> ServiceKind | None:
        """Which known service this is, or ``None``."""
        for kind in ServiceKind:
            if f":service:{kind.value}:" in self.service_type:
                return kind
        return None

    @functools.cached_property
    def version(self) -> int:
        """The version number after the last colon of the type (0 when absent)."""
        tail = self.service_type.rsplit(":", 1)[-1]
        # isascii(): str.isdigit() is also true for "²", which int() refuses.
        return int(tail) if tail.isascii() and tail.isdigit() and len(tail) < 4 else 0


@dataclass(frozen=True)
class Device:
    """A ``<device>`` of a description, with its embedded devices."""

    device_type: str
    friendly_name: str = ""
    udn: str = ""
    manufacturer: str = ""
    model_name: str = ""
    services: tuple[Service, ...] = ()
    devices: tuple[Device, ...] = ()

    def walk(self) -> list[Device]:
        """This device and every embedded device, depth first."""
        out: list[Device] = []
        stack: list[Device] = [self]
        while stack:
            dev = stack.pop()
            out.append(dev)
            stack.extend(reversed(dev.devices))
        return out


@dataclass(frozen=True)
class DeviceDescription:
    """A parsed root device description."""

    location: str
    root: Device
    url_base: str = ""

    def services(self) -> list[Service]:
        """Every service of every device in the tree."""
        return [svc for dev in self.root.walk() for svc in dev.services]

    def connection_services(self) -> list[Service]:
        """WAN connection services, best first: WANIPConnection v2, v1, WANPPPConnection."""
        found = [s for s in self.services() if s.kind in (ServiceKind.WAN_IP, ServiceKind.WAN_PPP)]
        return sorted(found, key=lambda s: (s.kind is not ServiceKind.WAN_IP, -s.version))

    def firewall_service(self, preferred: Service | None = None) -> Service | None:
        """The WANIPv6FirewallControl service, if the gateway has one.

        The one in the same device as the ``preferred`` connection service (default:
        the best by type) wins (igd-description.md, service selection recipe).
        """
        connections = self.connection_services()
        devices = self.root.walk()
        if preferred is None and connections:
            preferred = connections[0]
        if preferred is not None:
            chosen = preferred
            devices.sort(key=lambda d: chosen not in d.services)
        for dev in devices:
            for svc in dev.services:
                if svc.kind is ServiceKind.FIREWALL:
                    return svc
        return None


@dataclass(frozen=True)
class PortMappingEntry:
    """One entry of the gateway's mapping table.

    ``remote_host`` is ``None`` for the wildcard (any remote peer); ``lease`` is
    the remaining lease in seconds, 0 meaning permanent.
    """

    external_port: int
    protocol: Transport
    internal_port: int
    internal_client: str
    enabled: bool = True
    description: str = ""
    lease: int = 0
    remote_host: str | None = None


@dataclass(frozen=True)
class TrafficCounters:
    """WANCommonInterfaceConfig's totals (ui4, they wrap at 2**32); ``None`` where the
    gateway does not implement that action."""

    bytes_sent: int | None
    bytes_received: int | None
    packets_sent: int | None
    packets_received: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict with snake_case keys named after the fields."""
        return {
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "packets_sent": self.packets_sent,
            "packets_received": self.packets_received,
        }


@dataclass(frozen=True)
class StatusInfo:
    """``GetStatusInfo`` result."""

    connection_status: str
    last_connection_error: str
    uptime: int


@dataclass(frozen=True)
class NATRSIPStatus:
    """``GetNATRSIPStatus`` result."""

    rsip_available: bool
    nat_enabled: bool


@dataclass(frozen=True)
class ConnectionTypeInfo:
    """``GetConnectionTypeInfo`` result."""

    connection_type: str
    possible_connection_types: tuple[str, ...]


@dataclass(frozen=True)
class PortMapping:
    """A port mapping that aioigd created and verified on one gateway.

    ``external_ip`` is ``None`` when the gateway reported no usable external
    address. ``lease`` is what the gateway granted (0 = permanent).
    """

    external_ip: str | None
    external_port: int
    internal_client: str
    internal_port: int
    protocol: Transport
    lease: int
    description: str = ""
    #: The LOCATION URL of the gateway that holds the mapping.
    gateway: str = ""
    #: True when the gateway only accepted a permanent lease (fault 725).
    permanent_only: bool = field(default=False, compare=False)
    #: The external port that was asked for (0: not recorded); differs from
    #: ``external_port`` when it was taken and another one was mapped.
    wanted_port: int = field(default=0, compare=False)
    #: What holds it: ``"upnp"`` (IGD port mapping), ``"pcp"`` or ``"natpmp"``.
    mechanism: str = "upnp"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict with snake_case keys named after the fields."""
        return {
            "external_ip": self.external_ip,
            "external_port": self.external_port,
            "internal_client": self.internal_client,
            "internal_port": self.internal_port,
            "protocol": self.protocol.value,
            "lease": self.lease,
            "description": self.description,
            "gateway": self.gateway,
            "permanent_only": self.permanent_only,
            "wanted_port": self.wanted_port or self.external_port,
            "mechanism": self.mechanism,
        }


def is_global_address(address: str | None) -> bool:
    """True when ``address`` is a globally routable IP (not private, CGNAT, reserved ...)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # ipaddress treats 100.64.0.0/10 (RFC 6598 shared space) as neither global nor private.
    return ip.is_global and not ip.is_multicast


#: How a mapping is made: UPnP IGD, PCP (RFC 6887) or NAT-PMP (RFC 6886).
MappingProtocol = Literal["upnp", "pcp", "natpmp"]
DEFAULT_PROTOCOLS: tuple[MappingProtocol, ...] = ("upnp", "pcp", "natpmp")


def parse_protocols(value: str | Sequence[str]) -> tuple[MappingProtocol, ...]:
    """``"upnp,pcp"`` or ``["pcp"]`` → a checked tuple without repeats."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[MappingProtocol] = []
    for raw in items:
        name = raw.strip().lower().replace("-", "")
        if name not in DEFAULT_PROTOCOLS:
            raise ValueError(f"unknown mapping protocol {raw!r} (use upnp, pcp, natpmp)")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("no mapping protocol given")
    return tuple(out)


@dataclass(frozen=True)
class FirewallStatus:
    """``GetFirewallStatus`` result (WANIPv6FirewallControl)."""

    firewall_enabled: bool
    inbound_pinhole_allowed: bool


@dataclass(frozen=True)
class Pinhole:
    """An IPv6 inbound pinhole aioigd opened.

    ``remote_host`` ``None`` and ``remote_port`` 0 are wildcards (any peer);
    ``lease`` is in seconds (1..86400, pinholes are never permanent).
    """

    unique_id: int
    internal_client: str
    internal_port: int
    protocol: Transport
    lease: int
    remote_host: str | None = None
    remote_port: int = 0
    #: The LOCATION URL of the gateway that holds the pinhole.
    gateway: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict with snake_case keys named after the fields."""
        return {
            "unique_id": self.unique_id,
            "internal_client": self.internal_client,
            "internal_port": self.internal_port,
            "protocol": self.protocol.value,
            "lease": self.lease,
            "remote_host": self.remote_host,
            "remote_port": self.remote_port,
            "gateway": self.gateway,
        }


class StopReason(enum.StrEnum):
    """Why a multi-layer mapping stopped below the layer it climbed to
    (:attr:`aioigd.LayeredMapping.stop_reason`)."""

    #: The layer below reports no external address to forward from.
    NO_EXTERNAL_ADDRESS = "no_external_address"
    #: No gateway was given for the layer and tracing is off (``probe_target=None``).
    TRACING_OFF = "tracing_off"
    #: This platform or event loop cannot discover the routers on the path.
    HOPS_UNAVAILABLE = "hops_unavailable"
    #: The routers on the path were probed and no further one answered.
    NO_FURTHER_ROUTER = "no_further_router"
    #: Routers (or the given hint) were found, but no further IGD answered there.
    NO_GATEWAY = "no_gateway"
    #: The next layer's IGD answered but refused or failed the mapping.
    MAPPING_FAILED = "mapping_failed"
    #: A layer that moved could not be mapped again above it.
    REMAP_FAILED = "remap_failed"
