"""Typed codecs for IGD actions: Python values → SOAP arguments → typed results.

Every out argument from a gateway is validated here (ports in range, leases
non-negative and bounded, IP literals real), so a lying gateway gives a
:class:`RemoteProtocolError` instead of a wrong value further up.
"""

from __future__ import annotations

import ipaddress

from ..errors import ExternalIPUnavailable, RemoteProtocolError
from ..models import ConnectionTypeInfo, NATRSIPStatus, PortMappingEntry, StatusInfo, Transport
from . import values as v
from .values import parse_bool, parse_uint
from .xmlsafe import child, child_text, local_name, parse_xml

__all__ = [
    "MAX_LEASE",
    "MAX_DESCRIPTION",
    "port_mapping_args",
    "mapping_key_args",
    "generic_entry_args",
    "delete_range_args",
    "list_mappings_args",
    "parse_external_ip",
    "parse_reserved_port",
    "parse_port_mapping_entry",
    "parse_port_listing",
    "parse_list_of_port_mappings",
    "parse_status_info",
    "parse_nat_rsip_status",
    "parse_connection_type_info",
    "parse_uint",
    "parse_total_bytes_sent",
    "parse_total_bytes_received",
    "parse_total_packets_sent",
    "parse_total_packets_received",
    "parse_bool",
]

#: WANIPConnection v2 caps leases at one week; larger values are clamped by gateways.
MAX_LEASE = 604800
#: Longest NewPortMappingDescription we send (longer text gets 605 from gateways).
MAX_DESCRIPTION = 256
_MAX_LISTING_ENTRIES = 4096
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
#: Reasons kept for skipped malformed entries (the count of entries is bounded elsewhere).
_MAX_SKIPPED = 64


def _remote_host(remote_host: str | None) -> str:
    return "" if remote_host is None else v.string(remote_host, "remote_host")


def mapping_key_args(
    external_port: int, protocol: Transport, remote_host: str | None = None
) -> list[tuple[str, str]]:
    """NewRemoteHost, NewExternalPort, NewProtocol (the key of a mapping)."""
    return [
        ("NewRemoteHost", _remote_host(remote_host)),
        ("NewExternalPort", v.port(external_port, "external_port", allow_zero=True)),
        ("NewProtocol", v.protocol(protocol).value),
    ]


def port_mapping_args(
    *,
    external_port: int,
    protocol: Transport,
    internal_port: int,
    internal_client: str,
    description: str,
    lease: int,
    remote_host: str | None = None,
    enabled: bool = True,
) -> list[tuple[str, str]]:
    """The eight in arguments of AddPortMapping / AddAnyPortMapping, in SCPD order.

    ``lease`` may be any ui4 (v1 gateways take large values; v2 ones clamp to
    :data:`MAX_LEASE`); ``external_port`` 0 is the wildcard AddAnyPortMapping allows.
    """
    return [
        *mapping_key_args(external_port, protocol, remote_host),
        ("NewInternalPort", v.port(internal_port, "internal_port")),
        ("NewInternalClient", v.ipv4(internal_client, "internal_client")),
        ("NewEnabled", v.boolean(enabled, "enabled")),
        (
            "NewPortMappingDescription",
            v.string(description, "description", max_length=MAX_DESCRIPTION),
        ),
        ("NewLeaseDuration", v.lease(lease, "lease")),
    ]


def generic_entry_args(index: int) -> list[tuple[str, str]]:
    """The NewPortMappingIndex of GetGenericPortMappingEntry (0..65535)."""
    return [("NewPortMappingIndex", v.uint(index, "index", v.UI2_MAX))]


def _port_range(
    start_port: int, end_port: int, protocol: Transport | str, *, allow_zero: bool
) -> list[tuple[str, str]]:
    start = v.port(start_port, "start_port", allow_zero=allow_zero)
    end = v.port(end_port, "end_port", allow_zero=allow_zero)
    if start_port > end_port:
        raise ValueError(f"start_port {start_port} is above end_port {end_port}")
    return [
        ("NewStartPort", start),
        ("NewEndPort", end),
        ("NewProtocol", v.protocol(protocol).value),
    ]


def delete_range_args(
    start_port: int, end_port: int, protocol: Transport | str, *, manage: bool = False
) -> list[tuple[str, str]]:
    """In arguments of DeletePortMappingRange (v2): ports 1..65535, start <= end.

    ``manage`` True also deletes other clients' entries (when authorized).
    """
    return [
        *_port_range(start_port, end_port, protocol, allow_zero=False),
        ("NewManage", v.boolean(manage, "manage")),
    ]


def list_mappings_args(
    start_port: int,
    end_port: int,
    protocol: Transport | str,
    *,
    manage: bool = True,
    number: int = 0,
) -> list[tuple[str, str]]:
    """In arguments of GetListOfPortMappings (v2); ``number`` 0 asks for every entry."""
    return [
        *_port_range(start_port, end_port, protocol, allow_zero=True),
        ("NewManage", v.boolean(manage, "manage")),
        ("NewNumberOfPorts", v.uint(number, "number", v.UI2_MAX)),
    ]


def parse_external_ip(out: dict[str, str]) -> str:
    """``GetExternalIPAddress`` → dotted IPv4 string.

    Raises:
        ExternalIPUnavailable: empty or ``0.0.0.0`` (the gateway has no WAN address).
        RemoteProtocolError: anything that is not an IPv4 literal.
    """
    text = out.get("NewExternalIPAddress", "").strip()
    if not text or text == "0.0.0.0":  # noqa: S104 - a value from the wire, not a bind
        raise ExternalIPUnavailable("the gateway reports no external IP address")
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise RemoteProtocolError(
            f"GetExternalIPAddress returned {text[:40]!r}, not an IPv4 address"
        ) from None
    if address.is_unspecified:
        raise ExternalIPUnavailable("the gateway reports no external IP address")
    # Private and shared (CGNAT) addresses are real external addresses behind another
    # NAT; these are not an address anyone outside could reach the gateway at.
    if address.is_loopback or address.is_multicast or address == _BROADCAST:
        raise RemoteProtocolError(
            f"GetExternalIPAddress returned {address}, which is not a usable external address"
        )
    return str(address)


def _client(text: str) -> str:
    text = text.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        # Some gateways store host names; keep them, bounded and printable.
        if len(text) > 255 or not text.isprintable():
            raise RemoteProtocolError(f"internal client {text[:40]!r} is not valid") from None
        return text


def parse_port_mapping_entry(
    out: dict[str, str],
    *,
    external_port: int | None = None,
    protocol: Transport | None = None,
    remote_host: str | None = None,
) -> PortMappingEntry | None:
    """Decode a Generic/Specific port mapping entry.

    GetSpecificPortMappingEntry does not echo the key, so pass it in. Returns
    ``None`` for the empty placeholder entries some routers answer with 200 OK
    (the seed's Broadcom router at index 0).
    """
    ext_text = out.get("NewExternalPort")
    proto_text = out.get("NewProtocol")
    client_text = out.get("NewInternalClient", "")
    ext = (
        external_port
        if ext_text is None
        else parse_uint(ext_text.strip() or "0", "NewExternalPort", 65535)
    )
    internal = parse_uint(out.get("NewInternalPort", "0") or "0", "NewInternalPort", 65535)
    if proto_text is None:
        proto = protocol
    elif not proto_text.strip():
        proto = None
    else:
        try:
            proto = Transport.parse(proto_text)
        except ValueError:
            raise RemoteProtocolError(f"NewProtocol {proto_text[:20]!r} is not TCP/UDP") from None
    if not ext or proto is None or not internal or not client_text.strip():
        return None
    rhost = out.get("NewRemoteHost", remote_host or "") or ""
    return PortMappingEntry(
        external_port=ext,
        protocol=proto,
        internal_port=internal,
        internal_client=_client(client_text),
        enabled=parse_bool(out.get("NewEnabled", "1"), "NewEnabled"),
        description=out.get("NewPortMappingDescription", "")[:MAX_DESCRIPTION],
        lease=parse_uint(out.get("NewLeaseDuration", "0") or "0", "NewLeaseDuration"),
        remote_host=rhost.strip() or None,
    )


def parse_port_listing(text: str, skipped: list[str] | None = None) -> list[PortMappingEntry]:
    """Decode ``NewPortListing`` (the XML document GetListOfPortMappings returns).

    One malformed entry (a port out of range, a bad address …) does not spoil the
    listing: it is left out, and the reason is appended to ``skipped`` when given.
    """
    if not text.strip():
        return []
    root = parse_xml(text.encode("utf-8"), limit=1 << 20, what="NewPortListing")
    if local_name(root.tag) != "PortMappingList":
        raise RemoteProtocolError("NewPortListing is not a PortMappingList")
    entries: list[PortMappingEntry] = []
    for elem in root:
        if not isinstance(elem.tag, str) or local_name(elem.tag) != "PortMappingEntry":
            continue
        if len(entries) >= _MAX_LISTING_ENTRIES:
            raise RemoteProtocolError(f"NewPortListing has over {_MAX_LISTING_ENTRIES} entries")
        fields = {
            "NewRemoteHost": child_text(elem, "NewRemoteHost"),
            "NewExternalPort": child_text(elem, "NewExternalPort"),
            "NewProtocol": child_text(elem, "NewProtocol"),
            "NewInternalPort": child_text(elem, "NewInternalPort"),
            "NewInternalClient": child_text(elem, "NewInternalClient"),
            "NewEnabled": child_text(elem, "NewEnabled", "1"),
            "NewPortMappingDescription": child_text(elem, "NewDescription"),
            "NewLeaseDuration": child_text(elem, "NewLeaseTime", "0"),
        }
        try:
            if child(elem, "NewExternalPort") is None:
                raise RemoteProtocolError("PortMappingEntry without NewExternalPort")
            entry = parse_port_mapping_entry(fields)
        except RemoteProtocolError as exc:
            if skipped is not None and len(skipped) < _MAX_SKIPPED:
                skipped.append(f"listing entry {len(entries) + 1}: {exc}")
            continue
        if entry is not None:
            entries.append(entry)
    return entries


def parse_list_of_port_mappings(
    out: dict[str, str], skipped: list[str] | None = None
) -> list[PortMappingEntry]:
    """``GetListOfPortMappings`` → its entries (decodes ``NewPortListing``; malformed
    entries are left out and described in ``skipped``)."""
    return parse_port_listing(out.get("NewPortListing", ""), skipped)


def parse_reserved_port(out: dict[str, str]) -> int:
    """``AddAnyPortMapping`` → ``NewReservedPort``, the external port the gateway chose."""
    port = parse_uint(out.get("NewReservedPort", ""), "NewReservedPort", v.UI2_MAX)
    if port == 0:
        raise RemoteProtocolError("AddAnyPortMapping reserved port 0")
    return port


def parse_total_bytes_sent(out: dict[str, str]) -> int:
    """``GetTotalBytesSent`` → ui4."""
    return parse_uint(out.get("NewTotalBytesSent", ""), "NewTotalBytesSent")


def parse_total_bytes_received(out: dict[str, str]) -> int:
    """``GetTotalBytesReceived`` → ui4."""
    return parse_uint(out.get("NewTotalBytesReceived", ""), "NewTotalBytesReceived")


def parse_total_packets_sent(out: dict[str, str]) -> int:
    """``GetTotalPacketsSent`` → ui4."""
    return parse_uint(out.get("NewTotalPacketsSent", ""), "NewTotalPacketsSent")


def parse_total_packets_received(out: dict[str, str]) -> int:
    """``GetTotalPacketsReceived`` → ui4."""
    return parse_uint(out.get("NewTotalPacketsReceived", ""), "NewTotalPacketsReceived")


def parse_status_info(out: dict[str, str]) -> StatusInfo:
    """``GetStatusInfo`` → :class:`StatusInfo`."""
    return StatusInfo(
        connection_status=out.get("NewConnectionStatus", "")[:64],
        last_connection_error=out.get("NewLastConnectionError", "")[:64],
        uptime=parse_uint(out.get("NewUptime", "0") or "0", "NewUptime"),
    )


def parse_nat_rsip_status(out: dict[str, str]) -> NATRSIPStatus:
    """``GetNATRSIPStatus`` → :class:`NATRSIPStatus`."""
    return NATRSIPStatus(
        rsip_available=parse_bool(out.get("NewRSIPAvailable", "0"), "NewRSIPAvailable"),
        nat_enabled=parse_bool(out.get("NewNATEnabled", "0"), "NewNATEnabled"),
    )


def parse_connection_type_info(out: dict[str, str]) -> ConnectionTypeInfo:
    """``GetConnectionTypeInfo`` → :class:`ConnectionTypeInfo`."""
    possible = out.get("NewPossibleConnectionTypes", "")
    return ConnectionTypeInfo(
        connection_type=out.get("NewConnectionType", "")[:64],
        possible_connection_types=tuple(p.strip()[:64] for p in possible.split(",") if p.strip())[
            :16
        ],
    )
