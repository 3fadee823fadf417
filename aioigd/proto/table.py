"""The actions aioigd implements: one typed table, and the check before sending one.

Argument names and order follow the spec digests (``wanipconnection.md``,
``wanipv6firewallcontrol.md``), which follow the UPnP Forum SCPDs. The codecs in
:mod:`.actions` and :mod:`.firewall` build the in arguments; a test checks that
their names match :attr:`ActionSpec.in_args`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import ActionNotSupported
from ..models import Service, ServiceKind
from . import actions, firewall

__all__ = ["ActionSpec", "ACTIONS", "check_action"]

#: A decoder of one action's out arguments (the dict :func:`.soap.parse_response` gives).
OutParser = Callable[[dict[str, str]], object]


@dataclass(frozen=True)
class ActionSpec:
    """One SOAP action: where it exists and what goes in and out."""

    #: The action name, e.g. ``"AddPortMapping"``.
    name: str
    #: The services that define it.
    kinds: tuple[ServiceKind, ...]
    #: The lowest service version that has it (WANIPConnection:2 for the v2 actions).
    min_version: int
    #: In-argument names, in SCPD order (the order they must be sent in).
    in_args: tuple[str, ...]
    #: Out-argument names, in SCPD order.
    out_args: tuple[str, ...]
    #: Decodes the out arguments; ``None`` when the action has none.
    parser: OutParser | None
    #: One line on what the action does.
    doc: str

    def supported_by(self, service: Service) -> bool:
        """True when ``service`` (by kind and version) offers this action."""
        return service.kind in self.kinds and _version(service) >= self.min_version

    def requirement(self) -> str:
        """The services that offer the action, e.g. ``"WANIPConnection:2 or later"``."""
        names = " or ".join(f"{kind.value}:{self.min_version}" for kind in self.kinds)
        return f"{names} or later" if self.min_version > 1 else names


def _version(service: Service) -> int:
    # A type whose version is not a number ("...:WANIPConnection:x") counts as version 1.
    return service.version or 1


_WAN = (ServiceKind.WAN_IP, ServiceKind.WAN_PPP)
_WAN_V2 = (ServiceKind.WAN_IP,)
_FIREWALL = (ServiceKind.FIREWALL,)
_COMMON = (ServiceKind.COMMON_INTERFACE,)

_KEY = ("NewRemoteHost", "NewExternalPort", "NewProtocol")
_MAPPING = (
    *_KEY,
    "NewInternalPort",
    "NewInternalClient",
    "NewEnabled",
    "NewPortMappingDescription",
    "NewLeaseDuration",
)
_FIVE_TUPLE = ("RemoteHost", "RemotePort", "InternalClient", "InternalPort", "Protocol")


def _spec(
    name: str,
    kinds: tuple[ServiceKind, ...],
    min_version: int,
    in_args: tuple[str, ...],
    out_args: tuple[str, ...],
    parser: OutParser | None,
    doc: str,
) -> tuple[str, ActionSpec]:
    return name, ActionSpec(name, kinds, min_version, in_args, out_args, parser, doc)


#: Every action aioigd sends, by name.
ACTIONS: Mapping[str, ActionSpec] = MappingProxyType(
    dict(
        [
            # -- WANIPConnection:1/2 and WANPPPConnection:1 ------------------------------------
            _spec(
                "GetExternalIPAddress",
                _WAN,
                1,
                (),
                ("NewExternalIPAddress",),
                actions.parse_external_ip,
                "The gateway's WAN-side IPv4 address.",
            ),
            _spec(
                "GetStatusInfo",
                _WAN,
                1,
                (),
                ("NewConnectionStatus", "NewLastConnectionError", "NewUptime"),
                actions.parse_status_info,
                "Connection status, last connection error and uptime.",
            ),
            _spec(
                "GetConnectionTypeInfo",
                _WAN,
                1,
                (),
                ("NewConnectionType", "NewPossibleConnectionTypes"),
                actions.parse_connection_type_info,
                "Current and possible connection types (IP_Routed, ...).",
            ),
            _spec(
                "GetNATRSIPStatus",
                _WAN,
                1,
                (),
                ("NewRSIPAvailable", "NewNATEnabled"),
                actions.parse_nat_rsip_status,
                "Whether NAT and RSIP are enabled.",
            ),
            _spec(
                "AddPortMapping",
                _WAN,
                1,
                _MAPPING,
                (),
                None,
                "Create (or renew: same key and client overwrite) a port mapping.",
            ),
            _spec(
                "DeletePortMapping",
                _WAN,
                1,
                _KEY,
                (),
                None,
                "Delete the mapping with this remote host, external port and protocol.",
            ),
            _spec(
                "GetGenericPortMappingEntry",
                _WAN,
                1,
                ("NewPortMappingIndex",),
                _MAPPING,
                actions.parse_port_mapping_entry,
                "The mapping at an index of the table (713 past the end).",
            ),
            _spec(
                "GetSpecificPortMappingEntry",
                _WAN,
                1,
                _KEY,
                _MAPPING[len(_KEY) :],
                # The reply does not echo the key: call the parser with it as keywords.
                actions.parse_port_mapping_entry,
                "The mapping with this key (714 when absent); the lease is what remains.",
            ),
            _spec(
                "AddAnyPortMapping",
                _WAN_V2,
                2,
                _MAPPING,
                ("NewReservedPort",),
                actions.parse_reserved_port,
                "Create a mapping; the gateway picks a free external port if needed.",
            ),
            _spec(
                "DeletePortMappingRange",
                _WAN_V2,
                2,
                ("NewStartPort", "NewEndPort", "NewProtocol", "NewManage"),
                (),
                None,
                "Delete the mappings whose external port is in a range (730 if none).",
            ),
            _spec(
                "GetListOfPortMappings",
                _WAN_V2,
                2,
                ("NewStartPort", "NewEndPort", "NewProtocol", "NewManage", "NewNumberOfPorts"),
                ("NewPortListing",),
                actions.parse_list_of_port_mappings,
                "The mappings in an external port range, as one XML listing.",
            ),
            # -- WANCommonInterfaceConfig:1 ----------------------------------------------------
            _spec(
                "GetTotalBytesSent",
                _COMMON,
                1,
                (),
                ("NewTotalBytesSent",),
                actions.parse_total_bytes_sent,
                "Bytes sent on the WAN link (ui4, wraps).",
            ),
            _spec(
                "GetTotalBytesReceived",
                _COMMON,
                1,
                (),
                ("NewTotalBytesReceived",),
                actions.parse_total_bytes_received,
                "Bytes received on the WAN link (ui4, wraps).",
            ),
            _spec(
                "GetTotalPacketsSent",
                _COMMON,
                1,
                (),
                ("NewTotalPacketsSent",),
                actions.parse_total_packets_sent,
                "Packets sent on the WAN link (ui4, wraps).",
            ),
            _spec(
                "GetTotalPacketsReceived",
                _COMMON,
                1,
                (),
                ("NewTotalPacketsReceived",),
                actions.parse_total_packets_received,
                "Packets received on the WAN link (ui4, wraps).",
            ),
            # -- WANIPv6FirewallControl:1 -------------------------------------------------------
            _spec(
                "GetFirewallStatus",
                _FIREWALL,
                1,
                (),
                ("FirewallEnabled", "InboundPinholeAllowed"),
                firewall.parse_firewall_status,
                "Whether the IPv6 firewall is on and inbound pinholes are allowed.",
            ),
            _spec(
                "GetOutboundPinholeTimeout",
                _FIREWALL,
                1,
                _FIVE_TUPLE,
                ("OutboundPinholeTimeout",),
                firewall.parse_outbound_timeout,
                "How long outbound traffic keeps an automatic pinhole open (optional).",
            ),
            _spec(
                "AddPinhole",
                _FIREWALL,
                1,
                (*_FIVE_TUPLE, "LeaseTime"),
                ("UniqueID",),
                firewall.parse_unique_id,
                "Open (or extend) an inbound IPv6 pinhole; returns its UniqueID.",
            ),
            _spec(
                "UpdatePinhole",
                _FIREWALL,
                1,
                ("UniqueID", "NewLeaseTime"),
                (),
                None,
                "Set a new lease on a pinhole (704 when it is gone).",
            ),
            _spec(
                "DeletePinhole",
                _FIREWALL,
                1,
                ("UniqueID",),
                (),
                None,
                "Close a pinhole.",
            ),
            _spec(
                "GetPinholePackets",
                _FIREWALL,
                1,
                ("UniqueID",),
                ("PinholePackets",),
                firewall.parse_pinhole_packets,
                "Packets that went through a pinhole.",
            ),
            _spec(
                "CheckPinholeWorking",
                _FIREWALL,
                1,
                ("UniqueID",),
                ("IsWorking",),
                firewall.parse_is_working,
                "Whether traffic has passed a pinhole (optional; 709 when none yet).",
            ),
        ]
    )
)


def check_action(name: str, service: Service) -> ActionSpec:
    """The spec of ``name`` if ``service`` offers it.

    A service type whose version is not a number counts as version 1.

    Raises:
        ActionNotSupported: aioigd does not implement ``name``, or it belongs to
            another service kind, or it needs a higher version (the v2 actions
            need WANIPConnection:2; WANPPPConnection has no v2).
    """
    spec = ACTIONS.get(name)
    if spec is None:
        raise ActionNotSupported(f"aioigd does not implement the action {name[:64]!r}")
    if not spec.supported_by(service):
        raise ActionNotSupported(
            f"{name} needs {spec.requirement()}, the service is {service.service_type[:200]}"
        )
    return spec
