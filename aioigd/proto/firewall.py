"""Typed codecs for WANIPv6FirewallControl:1 (wanipv6firewallcontrol.md).

Argument names there are not ``New``-prefixed (except UpdatePinhole's
``NewLeaseTime``); the protocol is an IANA number; leases are 1..86400 s.
"""

from __future__ import annotations

from ..models import FirewallStatus, Transport
from . import values as v
from .values import parse_bool, parse_uint

__all__ = [
    "MIN_PINHOLE_LEASE",
    "MAX_PINHOLE_LEASE",
    "canonical_ipv6",
    "pinhole_args",
    "outbound_timeout_args",
    "parse_firewall_status",
    "parse_unique_id",
    "parse_pinhole_packets",
    "parse_is_working",
    "parse_outbound_timeout",
    "update_args",
    "id_args",
]

MIN_PINHOLE_LEASE = 1
MAX_PINHOLE_LEASE = 86400


def canonical_ipv6(address: str, name: str = "address") -> str:
    """RFC 5952 form of an IPv6 literal (miniupnpd compares strings); ``ValueError`` otherwise."""
    return v.ipv6(address, name)


def _lease(lease: int) -> str:
    return v.lease(lease, "lease", minimum=MIN_PINHOLE_LEASE, maximum=MAX_PINHOLE_LEASE)


def _remote_host(remote_host: str | None) -> str:
    """``None`` or ``""`` is the wildcard (any peer); anything else must be an IPv6 literal."""
    return "" if remote_host is None or remote_host == "" else v.ipv6(remote_host, "remote_host")


def _unique_id(unique_id: int) -> str:
    return v.uint(unique_id, "unique_id", v.UI2_MAX)


def outbound_timeout_args(
    *,
    internal_client: str,
    internal_port: int,
    protocol: Transport,
    remote_host: str | None = None,
    remote_port: int = 0,
) -> list[tuple[str, str]]:
    """In arguments of GetOutboundPinholeTimeout, in SCPD order."""
    return [
        ("RemoteHost", _remote_host(remote_host)),
        ("RemotePort", v.port(remote_port, "remote_port", allow_zero=True)),
        ("InternalClient", v.ipv6(internal_client, "internal_client")),
        ("InternalPort", v.port(internal_port, "internal_port")),
        ("Protocol", str(v.protocol(protocol).number)),
    ]


def pinhole_args(
    *,
    internal_client: str,
    internal_port: int,
    protocol: Transport,
    lease: int,
    remote_host: str | None = None,
    remote_port: int = 0,
) -> list[tuple[str, str]]:
    """In arguments of AddPinhole, in SCPD order."""
    return [
        *outbound_timeout_args(
            internal_client=internal_client,
            internal_port=internal_port,
            protocol=protocol,
            remote_host=remote_host,
            remote_port=remote_port,
        ),
        ("LeaseTime", _lease(lease)),
    ]


def update_args(unique_id: int, lease: int) -> list[tuple[str, str]]:
    """In arguments of UpdatePinhole: UniqueID (0..65535), NewLeaseTime (1..86400 s)."""
    return [("UniqueID", _unique_id(unique_id)), ("NewLeaseTime", _lease(lease))]


def id_args(unique_id: int) -> list[tuple[str, str]]:
    """The single UniqueID argument of Delete/GetPinholePackets/CheckPinholeWorking."""
    return [("UniqueID", _unique_id(unique_id))]


def parse_firewall_status(out: dict[str, str]) -> FirewallStatus:
    """``GetFirewallStatus`` → :class:`FirewallStatus`."""
    return FirewallStatus(
        firewall_enabled=parse_bool(out.get("FirewallEnabled", ""), "FirewallEnabled"),
        inbound_pinhole_allowed=parse_bool(
            out.get("InboundPinholeAllowed", ""), "InboundPinholeAllowed"
        ),
    )


def parse_unique_id(out: dict[str, str]) -> int:
    """``AddPinhole`` → the gateway's UniqueID."""
    return parse_uint(out.get("UniqueID", ""), "UniqueID", v.UI2_MAX)


def parse_pinhole_packets(out: dict[str, str]) -> int:
    """``GetPinholePackets`` → packet count."""
    return parse_uint(out.get("PinholePackets", ""), "PinholePackets")


def parse_is_working(out: dict[str, str]) -> bool:
    """``CheckPinholeWorking`` → IsWorking."""
    return parse_bool(out.get("IsWorking", ""), "IsWorking")


def parse_outbound_timeout(out: dict[str, str]) -> int:
    """``GetOutboundPinholeTimeout`` → seconds."""
    return parse_uint(out.get("OutboundPinholeTimeout", ""), "OutboundPinholeTimeout")
