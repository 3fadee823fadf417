"""FakeIGD's data: quirk switches, recorded requests, table entries, faults."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

__all__ = [
    "Quirks",
    "Recorded",
    "FakeMapping",
    "FakePinhole",
    "Fault",
    "FAULT_NAMES",
    "fault_body",
    "canon",
]


@dataclass
class Quirks:
    """Switchable misbehaviour. Defaults give a well-behaved IGD."""

    http10: bool = False  #: answer HTTP/1.0 + Connection: close (the seed's router)
    octet_stream: bool = False  #: Content-Type application/octet-stream
    connection_close: bool = False  #: close after each response (like miniupnpd)
    chunked: bool = False  #: Transfer-Encoding: chunked bodies
    empty_entry_at_zero: bool = False  #: index 0 is a 200 OK empty entry (Broadcom)
    endless_entries: bool = False  #: never answer 713, every index an empty entry
    permanent_only: bool = False  #: 725 for any non-zero lease
    delay: float = 0.0  #: seconds before every HTTP answer
    hang_actions: frozenset[str] = frozenset()  #: actions never answered
    trickle: float = 0.0  #: seconds between body bytes
    short_body: bool = False  #: Content-Length larger than the body, then close
    garbage_http: bool = False  #: answer bytes that are not HTTP
    redirect_to: str = ""  #: answer every request with a 302 to this URL
    description_body: bytes | None = None  #: serve this instead of the description
    soap_body: bytes | None = None  #: answer every action with this body (HTTP 200)
    external_ip_value: str | None = None  #: raw NewExternalIPAddress text (lies)
    huge_body: int = 0  #: stream this many bytes of padding instead of the reply
    ssdp_location: str | None = None  #: LOCATION to announce instead of our own
    ssdp_reply: bytes | None = None  #: raw SSDP answer instead of a valid one
    ssdp_copies: int = 1  #: answers per M-SEARCH (floods, duplicates)
    fail_actions: dict[str, int] = field(default_factory=dict)  #: action → fault code
    firewall_enabled: bool = True  #: GetFirewallStatus FirewallEnabled
    inbound_pinhole_allowed: bool = True  #: GetFirewallStatus InboundPinholeAllowed
    pinhole_owner_check: bool = True  #: 606 unless InternalClient is the requester (miniupnpd)
    report_lease_zero: bool = False  #: list every entry with NewLeaseDuration 0 (leases still run)
    garbage_after: frozenset[str] = frozenset()  #: do the action, then answer 200 with garbage
    hang_after: frozenset[str] = frozenset()  #: do the action, then never answer
    delete_missing_ok: bool = False  #: DeletePortMapping of nothing answers 200 (miniupnpd)
    #: A dead WAN connection listed first ("ip" WANIPConnection:1 or "ppp" WANPPPConnection:1,
    #: in its own WANConnectionDevice): Disconnected, no address, 501 for every mapping.
    dead_wan_first: str = ""
    lose_requests: int = 0  #: reset this many SOAP connections instead of answering
    lose_action: str = ""  #: only requests for this action are dropped ("" = any)
    ignore_searches: int = 0  #: leave this many M-SEARCHes unanswered (lost datagrams)
    action_delay: dict[str, float] = field(default_factory=dict)  #: action → seconds before acting
    #: External port → client that takes it the moment an AddPortMapping for it arrives
    #: (once): the race with another host that a table read just before cannot show.
    claim_before_add: dict[int, str] = field(default_factory=dict)


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    action: str
    args: dict[str, str]
    peer: str


@dataclass
class FakeMapping:
    """One entry of the fake's table."""

    remote_host: str
    external_port: int
    protocol: str
    internal_port: int
    internal_client: str
    enabled: bool
    description: str
    lease: int
    expires: float | None

    def remaining(self, now: float) -> int:
        return 0 if self.expires is None else max(int(self.expires - now + 0.999), 0)


FAULT_NAMES = {
    401: "Invalid Action",
    402: "Invalid Args",
    501: "Action Failed",
    606: "Action not authorized",
    713: "SpecifiedArrayIndexInvalid",
    714: "NoSuchEntryInArray",
    716: "WildCardNotPermittedInExtPort",
    718: "ConflictInMappingEntry",
    602: "Optional Action Not Implemented",
    702: "FirewallDisabled",
    703: "InboundPinholeNotAllowed",
    704: "NoSuchEntry",
    705: "ProtocolNotSupported",
    706: "InternalPortWildcardingNotAllowed",
    707: "ProtocolWildcardingNotAllowed",
    708: "WildCardNotPermittedInSrcIP",
    709: "NoTrafficReceived",
    725: "OnlyPermanentLeasesSupported",
    728: "NoPortMapsAvailable",
    730: "PortMappingNotFound",
    732: "WildCardNotPermittedInIntPort",
    733: "InconsistentParameters",
}


class Fault(Exception):
    """Raised by an action handler: answer with this UPnP fault code."""

    def __init__(self, code: int) -> None:
        self.code = code


@dataclass
class FakePinhole:
    """One pinhole of the fake's firewall."""

    key: tuple[str, int, str, int, int]
    internal_client: str
    expires: float
    packets: int = 0


def canon(address: str) -> str:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).compressed
    except ValueError:
        return address


def fault_body(code: int) -> bytes:
    return (
        '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
        ' s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault>'
        "<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
        '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>{FAULT_NAMES.get(code, 'Error')}"
        "</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>\r\n"
    ).encode()
