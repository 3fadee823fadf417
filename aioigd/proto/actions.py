"""Typed codecs for IGD actions: Python values → SOAP arguments → typed results.

Every out argument from a gateway is validated here (ports in range, leases
non-negative and bounded, IP literals real), so a lying gateway gives a
:class:`RemoteProtocolError` instead of a wrong value further up.
"""

from __future__ import annotations

import ipaddress

from ..errors import ExternalIPUnavailable, RemoteProtocolError
from ..models import ConnectionTypeInfo, NATRSIPStatus, PortMappingEntry, Protocol, StatusInfo
from .xmlsafe import child, child_text, local_name, parse_xml

__all__ = [
    "MAX_LEASE",
    "port_mapping_args",
    "mapping_key_args",
    "parse_external_ip",
    "parse_port_mapping_entry",
    "parse_port_listing",
    "parse_status_info",
    "parse_nat_rsip_status",
    "parse_connection_type_info",
    "parse_uint",
    "parse_bool",
]

#: WANIPConnection v2 caps leases at one week; larger values are clamped by gateways.
MAX_LEASE = 604800
_UI4_MAX = 0xFFFFFFFF
_MAX_LISTING_ENTRIES = 4096


def parse_uint(text: str, name: str, maximum: int = _UI4_MAX) -> int:
    """Parse an unsigned decimal out argument, bounded by ``maximum``."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) > maximum:
        raise RemoteProtocolError(f"{name}: {text[:40]!r} is not an integer in 0..{maximum}")
    return int(text)


def parse_bool(text: str, name: str) -> bool:
    """Parse a UPnP boolean (``0/1``, also ``true/false/yes/no``)."""
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise RemoteProtocolError(f"{name}: {text[:40]!r} is not a boolean")


def _check_port(port: int, name: str, *, allow_zero: bool = False) -> str:
    # bool is an int subclass: True would go out as the string "True".
    if (
        not isinstance(port, int)
        or isinstance(port, bool)
        or not (0 if allow_zero else 1) <= port <= 65535
    ):
        raise ValueError(f"{name} must be an integer port in 1..65535, not {port!r}")
    return str(port)


def mapping_key_args(
    external_port: int, protocol: Protocol, remote_host: str | None = None
) -> list[tuple[str, str]]:
    """NewRemoteHost, NewExternalPort, NewProtocol (the key of a mapping)."""
    return [
        ("NewRemoteHost", remote_host or ""),
        ("NewExternalPort", _check_port(external_port, "external_port", allow_zero=True)),
        ("NewProtocol", Protocol.parse(protocol).value),
    ]


def port_mapping_args(
    *,
    external_port: int,
    protocol: Protocol,
    internal_port: int,
    internal_client: str,
    description: str,
    lease: int,
    remote_host: str | None = None,
    enabled: bool = True,
) -> list[tuple[str, str]]:
    """The eight in arguments of AddPortMapping / AddAnyPortMapping, in SCPD order."""
    if not isinstance(lease, int) or isinstance(lease, bool) or not 0 <= lease <= _UI4_MAX:
        raise ValueError(f"lease must be whole seconds in 0..{_UI4_MAX}, not {lease!r}")
    try:
        ipaddress.IPv4Address(internal_client)
    except ValueError:
        raise ValueError(
            f"internal_client must be an IPv4 address, not {internal_client!r}"
        ) from None
    if len(description) > 256:
        raise ValueError("description is longer than 256 characters")
    return [
        *mapping_key_args(external_port, protocol, remote_host),
        ("NewInternalPort", _check_port(internal_port, "internal_port")),
        ("NewInternalClient", internal_client),
        ("NewEnabled", "1" if enabled else "0"),
        ("NewPortMappingDescription", description),
        ("NewLeaseDuration", str(lease)),
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
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise RemoteProtocolError(
            f"GetExternalIPAddress returned {text[:40]!r}, not an IPv4 address"
        ) from None


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
    protocol: Protocol | None = None,
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
            proto = Protocol.parse(proto_text)
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
        description=out.get("NewPortMappingDescription", "")[:256],
        lease=parse_uint(out.get("NewLeaseDuration", "0") or "0", "NewLeaseDuration"),
        remote_host=rhost.strip() or None,
    )


def parse_port_listing(text: str) -> list[PortMappingEntry]:
    """Decode ``NewPortListing`` (the XML document GetListOfPortMappings returns)."""
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
        if child(elem, "NewExternalPort") is None:
            raise RemoteProtocolError("PortMappingEntry without NewExternalPort")
        entry = parse_port_mapping_entry(fields)
        if entry is not None:
            entries.append(entry)
    return entries


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
