"""Typed action codecs: argument building and validation of every out argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aioigd.errors import ExternalIPUnavailable, IGDError, RemoteProtocolError
from aioigd.models import (
    ConnectionTypeInfo,
    NATRSIPStatus,
    PortMapping,
    PortMappingEntry,
    StatusInfo,
    Transport,
    is_global_address,
)
from aioigd.proto.actions import (
    MAX_LEASE,
    mapping_key_args,
    parse_bool,
    parse_connection_type_info,
    parse_external_ip,
    parse_nat_rsip_status,
    parse_port_listing,
    parse_port_mapping_entry,
    parse_status_info,
    parse_uint,
    port_mapping_args,
)
from aioigd.proto.soap import parse_response

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = FIXTURES / "broadcom_seed"
MINI = FIXTURES / "miniupnpd"
PPP1 = "urn:schemas-upnp-org:service:WANPPPConnection:1"
WANIP2 = "urn:schemas-upnp-org:service:WANIPConnection:2"

TCP, UDP = Transport.TCP, Transport.UDP


def _reply(path: Path, action: str, service_type: str = WANIP2) -> dict[str, str]:
    return parse_response(200, path.read_bytes(), service_type, action)


# -- port_mapping_args / mapping_key_args ------------------------------------------------------

GOOD: dict[str, Any] = {
    "external_port": 1872,
    "protocol": TCP,
    "internal_port": 1872,
    "internal_client": "192.168.1.4",
    "description": "yftest_1.0.36_1753696326",
    "lease": 60,
}


def test_port_mapping_args_order_matches_the_seed_request() -> None:
    # The seed's AddPortMapping request, argument for argument.
    assert port_mapping_args(**GOOD) == [
        ("NewRemoteHost", ""),
        ("NewExternalPort", "1872"),
        ("NewProtocol", "TCP"),
        ("NewInternalPort", "1872"),
        ("NewInternalClient", "192.168.1.4"),
        ("NewEnabled", "1"),
        ("NewPortMappingDescription", "yftest_1.0.36_1753696326"),
        ("NewLeaseDuration", "60"),
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"protocol": "udp"}, {"NewProtocol": "UDP"}),
        ({"protocol": " Tcp "}, {"NewProtocol": "TCP"}),
        ({"remote_host": "203.0.113.7"}, {"NewRemoteHost": "203.0.113.7"}),
        ({"remote_host": None}, {"NewRemoteHost": ""}),
        ({"enabled": False}, {"NewEnabled": "0"}),
        ({"lease": 0}, {"NewLeaseDuration": "0"}),
        ({"lease": MAX_LEASE}, {"NewLeaseDuration": "604800"}),
        ({"lease": 0xFFFFFFFF}, {"NewLeaseDuration": "4294967295"}),
        ({"external_port": 0}, {"NewExternalPort": "0"}),  # wildcard, for AddAnyPortMapping
        ({"external_port": 65535, "internal_port": 1}, {"NewExternalPort": "65535"}),
        ({"description": ""}, {"NewPortMappingDescription": ""}),
        ({"description": "d" * 256}, {"NewPortMappingDescription": "d" * 256}),
        ({"description": "<&>\"'"}, {"NewPortMappingDescription": "<&>\"'"}),  # soap escapes
    ],
)
def test_port_mapping_args_variants(changes: dict[str, Any], expected: dict[str, str]) -> None:
    args = port_mapping_args(**{**GOOD, **changes})
    assert [name for name, _ in args] == [
        "NewRemoteHost",
        "NewExternalPort",
        "NewProtocol",
        "NewInternalPort",
        "NewInternalClient",
        "NewEnabled",
        "NewPortMappingDescription",
        "NewLeaseDuration",
    ]
    for name, value in expected.items():
        assert dict(args)[name] == value


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"internal_port": 0}, id="internal-0"),
        pytest.param({"internal_port": 65536}, id="internal-65536"),
        pytest.param({"internal_port": -1}, id="internal-negative"),
        pytest.param({"external_port": 65536}, id="external-65536"),
        pytest.param({"external_port": -1}, id="external-negative"),
        pytest.param({"external_port": 80.0}, id="external-float"),
        pytest.param({"external_port": "80"}, id="external-str"),
        pytest.param({"external_port": True}, id="external-bool"),
        pytest.param({"internal_port": True}, id="internal-bool"),
        pytest.param({"lease": -1}, id="lease-negative"),
        pytest.param({"lease": 0x100000000}, id="lease-over-ui4"),
        pytest.param({"lease": 1.5}, id="lease-float"),
        pytest.param({"lease": "60"}, id="lease-str"),
        pytest.param({"lease": True}, id="lease-bool"),
        pytest.param({"internal_client": "::1"}, id="client-ipv6"),
        pytest.param({"internal_client": "fe80::1"}, id="client-link-local-v6"),
        pytest.param({"internal_client": "host.lan"}, id="client-name"),
        pytest.param({"internal_client": ""}, id="client-empty"),
        pytest.param({"internal_client": "192.168.1.256"}, id="client-octet"),
        pytest.param({"internal_client": "192.168.1.4/24"}, id="client-cidr"),
        pytest.param({"internal_client": "192.168.001.004"}, id="client-leading-zeros"),
        pytest.param({"description": "d" * 257}, id="description-257"),
        pytest.param({"protocol": "ICMP"}, id="protocol-icmp"),
        pytest.param({"protocol": ""}, id="protocol-empty"),
    ],
)
def test_port_mapping_args_refuses(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        port_mapping_args(**{**GOOD, **changes})


@pytest.mark.parametrize(
    ("port", "protocol", "remote", "expected"),
    [
        (
            1872,
            TCP,
            None,
            [("NewRemoteHost", ""), ("NewExternalPort", "1872"), ("NewProtocol", "TCP")],
        ),
        (
            53,
            "udp",
            "198.51.100.1",
            [("NewRemoteHost", "198.51.100.1"), ("NewExternalPort", "53"), ("NewProtocol", "UDP")],
        ),
        (0, TCP, "", [("NewRemoteHost", ""), ("NewExternalPort", "0"), ("NewProtocol", "TCP")]),
    ],
)
def test_mapping_key_args(
    port: int, protocol: Any, remote: str | None, expected: list[tuple[str, str]]
) -> None:
    assert mapping_key_args(port, protocol, remote) == expected


@pytest.mark.parametrize(("port", "protocol"), [(65536, TCP), (-1, TCP), (True, TCP), (80, "sctp")])
def test_mapping_key_args_refuses(port: Any, protocol: Any) -> None:
    with pytest.raises(ValueError):
        mapping_key_args(port, protocol)


# -- parse_external_ip ---------------------------------------------------------------------------


def test_parse_external_ip_seed_and_miniupnpd() -> None:
    seed = _reply(SEED / "GetExternalIPAddress_200.xml", "GetExternalIPAddress", PPP1)
    assert parse_external_ip(seed) == "100.81.111.102"  # CGNAT: the seed router is double-NATed
    assert parse_external_ip(
        _reply(MINI / "GetExternalIPAddress_200.xml", "GetExternalIPAddress")
    ) == ("33.0.0.1")


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("  203.0.113.7\n", "203.0.113.7"),
        ("100.64.0.1", "100.64.0.1"),
        ("10.0.1.2", "10.0.1.2"),
        ("192.168.1.2", "192.168.1.2"),  # behind another NAT: real, the mapper climbs
        ("169.254.3.4", "169.254.3.4"),
        # Not an address anyone could reach the gateway at (issue 10: these were accepted).
        ("255.255.255.255", RemoteProtocolError),
        ("127.0.0.1", RemoteProtocolError),
        ("127.1.2.3", RemoteProtocolError),
        ("224.0.0.1", RemoteProtocolError),
        ("239.255.255.250", RemoteProtocolError),
        ("", ExternalIPUnavailable),
        ("   ", ExternalIPUnavailable),
        ("0.0.0.0", ExternalIPUnavailable),
        (None, ExternalIPUnavailable),  # argument missing
        ("999.1.1.1", RemoteProtocolError),
        ("1.2.3", RemoteProtocolError),
        ("1.2.3.4.5", RemoteProtocolError),
        ("01.2.3.4", RemoteProtocolError),
        ("<b>1.2.3.4</b>", RemoteProtocolError),
        ("1.2.3.4<script>", RemoteProtocolError),
        ("1.2.3.4 extra", RemoteProtocolError),
        ("::1", RemoteProtocolError),
        ("2001:db8::1", RemoteProtocolError),
        ("::ffff:1.2.3.4", RemoteProtocolError),
        ("router.example", RemoteProtocolError),
        ("0x01020304", RemoteProtocolError),
        ("\u0661.\u0662.\u0663.\u0664", RemoteProtocolError),
        ("x" * 10_000, RemoteProtocolError),
    ],
)
def test_parse_external_ip(text: str | None, result: str | type[Exception]) -> None:
    out = {} if text is None else {"NewExternalIPAddress": text}
    if isinstance(result, str):
        assert parse_external_ip(out) == result
    else:
        with pytest.raises(result) as info:
            parse_external_ip(out)
        assert len(str(info.value)) < 200


def test_external_ip_in_nested_markup_is_not_an_address() -> None:
    body = (
        b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>"
        b"<u:GetExternalIPAddressResponse xmlns:u='urn:x'><NewExternalIPAddress><b>1.2.3.4</b>"
        b"</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>"
    )
    with pytest.raises(IGDError):
        parse_external_ip(parse_response(200, body, WANIP2, "GetExternalIPAddress"))


# -- parse_port_mapping_entry -------------------------------------------------------------------


def test_seed_empty_placeholder_entry_is_none() -> None:
    out = _reply(
        SEED / "GetGenericPortMappingEntry_empty_200.xml", "GetGenericPortMappingEntry", PPP1
    )
    assert parse_port_mapping_entry(out) is None


def test_seed_real_entry() -> None:
    out = _reply(SEED / "GetGenericPortMappingEntry_200.xml", "GetGenericPortMappingEntry", PPP1)
    assert parse_port_mapping_entry(out) == PortMappingEntry(
        external_port=3,
        protocol=TCP,
        internal_port=7851,
        internal_client="192.168.1.4",
        enabled=True,
        description="KCG-UPNP",
        lease=16905,
        remote_host=None,
    )


def test_miniupnpd_entry() -> None:
    out = _reply(MINI / "GetGenericPortMappingEntry_200.xml", "GetGenericPortMappingEntry")
    assert parse_port_mapping_entry(out) == PortMappingEntry(
        5353, UDP, 5354, "192.168.1.2", True, "udp one", 604800, None
    )


def _entry(**changes: str) -> dict[str, str]:
    out = {
        "NewRemoteHost": "",
        "NewExternalPort": "3",
        "NewProtocol": "TCP",
        "NewInternalPort": "7851",
        "NewInternalClient": "192.168.1.4",
        "NewEnabled": "1",
        "NewPortMappingDescription": "KCG-UPNP",
        "NewLeaseDuration": "16905",
    }
    out.update(changes)
    return {k: v for k, v in out.items() if v != "<absent>"}


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"NewRemoteHost": "203.0.113.9"}, "remote_host", "203.0.113.9"),
        ({"NewRemoteHost": "  "}, "remote_host", None),
        ({"NewExternalPort": "65535"}, "external_port", 65535),
        ({"NewExternalPort": " 80 "}, "external_port", 80),
        ({"NewInternalPort": "1"}, "internal_port", 1),
        ({"NewProtocol": "udp"}, "protocol", UDP),
        ({"NewProtocol": " TCP "}, "protocol", TCP),
        ({"NewEnabled": "0"}, "enabled", False),
        ({"NewEnabled": "false"}, "enabled", False),
        ({"NewEnabled": "true"}, "enabled", True),
        ({"NewEnabled": "yes"}, "enabled", True),
        ({"NewEnabled": "<absent>"}, "enabled", True),
        ({"NewLeaseDuration": "0"}, "lease", 0),
        ({"NewLeaseDuration": ""}, "lease", 0),
        ({"NewLeaseDuration": "<absent>"}, "lease", 0),
        ({"NewLeaseDuration": "4294967295"}, "lease", 4294967295),
        ({"NewLeaseDuration": "604801"}, "lease", 604801),  # v1 leases are not capped
        ({"NewPortMappingDescription": "<absent>"}, "description", ""),
        ({"NewPortMappingDescription": "d" * 1000}, "description", "d" * 256),
        ({"NewInternalClient": "2001:DB8::1"}, "internal_client", "2001:db8::1"),
        ({"NewInternalClient": "printer.lan"}, "internal_client", "printer.lan"),
        ({"NewInternalClient": " 192.168.1.4 "}, "internal_client", "192.168.1.4"),
    ],
)
def test_entry_fields(changes: dict[str, str], field: str, value: object) -> None:
    entry = parse_port_mapping_entry(_entry(**changes))
    assert entry is not None
    assert getattr(entry, field) == value


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"NewExternalPort": "0"}, id="external-0"),
        pytest.param({"NewExternalPort": ""}, id="external-empty"),
        pytest.param({"NewInternalPort": "0"}, id="internal-0"),
        pytest.param({"NewInternalPort": ""}, id="internal-empty"),
        pytest.param({"NewInternalPort": "<absent>"}, id="internal-absent"),
        pytest.param({"NewProtocol": ""}, id="protocol-empty"),
        pytest.param({"NewProtocol": "<absent>"}, id="protocol-absent"),
        pytest.param({"NewInternalClient": ""}, id="client-empty"),
        pytest.param({"NewInternalClient": "<absent>"}, id="client-absent"),
        pytest.param({"NewExternalPort": "<absent>"}, id="external-absent"),
    ],
)
def test_placeholder_entries_are_none(changes: dict[str, str]) -> None:
    assert parse_port_mapping_entry(_entry(**changes)) is None


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"NewExternalPort": "65536"}, id="external-65536"),
        pytest.param({"NewExternalPort": "-1"}, id="external-negative"),
        pytest.param({"NewExternalPort": "80a"}, id="external-junk"),
        pytest.param({"NewExternalPort": "8.0"}, id="external-float"),
        pytest.param({"NewExternalPort": "\u00b2"}, id="external-superscript"),
        pytest.param({"NewExternalPort": "\u0668\u0660"}, id="external-arabic-indic"),
        pytest.param({"NewInternalPort": "70000"}, id="internal-70000"),
        pytest.param({"NewInternalPort": "-5"}, id="internal-negative"),
        pytest.param({"NewLeaseDuration": "-1"}, id="lease-negative"),
        pytest.param({"NewLeaseDuration": "4294967296"}, id="lease-over-ui4"),
        pytest.param({"NewLeaseDuration": "99999999999999999999"}, id="lease-huge"),
        pytest.param({"NewLeaseDuration": "1e3"}, id="lease-exponent"),
        pytest.param({"NewProtocol": "ICMP"}, id="protocol-icmp"),
        pytest.param({"NewProtocol": "6"}, id="protocol-number"),
        pytest.param({"NewProtocol": "TCP/UDP"}, id="protocol-both"),
        pytest.param({"NewEnabled": "maybe"}, id="enabled-junk"),
        pytest.param({"NewEnabled": "2"}, id="enabled-2"),
        pytest.param({"NewInternalClient": "bad\x01host"}, id="client-control-char"),
        pytest.param({"NewInternalClient": "h" * 300}, id="client-too-long"),
    ],
)
def test_lying_gateway_entries_are_refused(changes: dict[str, str]) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_port_mapping_entry(_entry(**changes))


def test_specific_entry_takes_the_key_from_the_caller() -> None:
    # GetSpecificPortMappingEntry echoes neither the port nor the protocol nor the remote host.
    out = {
        "NewInternalPort": "1872",
        "NewInternalClient": "192.168.1.4",
        "NewEnabled": "1",
        "NewPortMappingDescription": "yftest",
        "NewLeaseDuration": "55",
    }
    assert parse_port_mapping_entry(out) is None
    entry = parse_port_mapping_entry(
        out, external_port=1872, protocol=UDP, remote_host="198.51.100.2"
    )
    assert entry == PortMappingEntry(
        1872, UDP, 1872, "192.168.1.4", True, "yftest", 55, "198.51.100.2"
    )
    # An echoed key wins over the caller's.
    echoed = parse_port_mapping_entry(
        {**out, "NewExternalPort": "2000", "NewProtocol": "TCP", "NewRemoteHost": ""},
        external_port=1872,
        protocol=UDP,
        remote_host="198.51.100.2",
    )
    assert echoed is not None
    assert (echoed.external_port, echoed.protocol, echoed.remote_host) == (2000, TCP, None)


# -- parse_port_listing (GetListOfPortMappings) --------------------------------------------------

LISTED = [
    PortMappingEntry(2346, TCP, 2346, "192.168.1.2", True, 'a &amp; b <x> "q"', 3600, None),
    PortMappingEntry(2345, TCP, 2345, "192.168.1.2", True, "aioigd test", 3600, None),
]


@pytest.mark.parametrize(
    "fixture", ["GetListOfPortMappings_cdata_200.xml", "GetListOfPortMappings_escaped_200.xml"]
)
def test_port_listing_cdata_and_escaped(fixture: str) -> None:
    out = _reply(MINI / fixture, "GetListOfPortMappings")
    assert list(out) == ["NewPortListing"]
    assert parse_port_listing(out["NewPortListing"]) == LISTED


def test_port_listing_empty_list() -> None:
    out = _reply(MINI / "GetListOfPortMappings_cdata_empty_200.xml", "GetListOfPortMappings")
    assert parse_port_listing(out["NewPortListing"]) == []


def _listing(*entries: str, root: str = "p:PortMappingList", decl: str = "") -> str:
    ns = ' xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection"' if root.startswith("p:") else ""
    return f"{decl}<{root}{ns}>{''.join(entries)}</{root}>"


def _listed(p: str = "p:", **fields: str) -> str:
    values = {
        "NewRemoteHost": "",
        "NewExternalPort": "2345",
        "NewProtocol": "TCP",
        "NewInternalPort": "2345",
        "NewInternalClient": "192.168.1.137",
        "NewEnabled": "1",
        "NewDescription": "text",
        "NewLeaseTime": "345",
    }
    values.update(fields)
    inner = "".join(f"<{p}{k}>{v}</{p}{k}>" for k, v in values.items() if v != "<absent>")
    return f"<{p}PortMappingEntry>{inner}</{p}PortMappingEntry>"


SPEC_ENTRY = PortMappingEntry(2345, TCP, 2345, "192.168.1.137", True, "text", 345, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("  \n ", [], id="blank"),
        pytest.param(_listing(_listed()), [SPEC_ENTRY], id="spec-example"),
        pytest.param(
            _listing(_listed(), decl='<?xml version="1.0" encoding="UTF-8"?>'),
            [SPEC_ENTRY],
            id="with-declaration",
        ),
        pytest.param(_listing(_listed(p=""), root="PortMappingList"), [SPEC_ENTRY], id="no-prefix"),
        pytest.param(
            _listing(_listed(NewEnabled="0", NewRemoteHost="203.0.113.5", NewProtocol="UDP")),
            [PortMappingEntry(2345, UDP, 2345, "192.168.1.137", False, "text", 345, "203.0.113.5")],
            id="fields",
        ),
        pytest.param(
            # The v2 listing names: NewDescription / NewLeaseTime. The single-entry names are not
            # read here, so an entry that uses them has no description and lease 0.
            _listing(
                _listed(NewDescription="<absent>", NewLeaseTime="<absent>").replace(
                    "</p:PortMappingEntry>",
                    "<p:NewPortMappingDescription>wrong</p:NewPortMappingDescription>"
                    "<p:NewLeaseDuration>99</p:NewLeaseDuration></p:PortMappingEntry>",
                )
            ),
            [PortMappingEntry(2345, TCP, 2345, "192.168.1.137", True, "", 0, None)],
            id="single-entry-names-are-not-listing-names",
        ),
        pytest.param(
            _listing(_listed(NewEnabled="<absent>", NewLeaseTime="<absent>")),
            [PortMappingEntry(2345, TCP, 2345, "192.168.1.137", True, "text", 0, None)],
            id="defaults",
        ),
        pytest.param(
            _listing(_listed(NewInternalClient=""), _listed(NewExternalPort="0"), _listed()),
            [SPEC_ENTRY],
            id="placeholders-skipped",
        ),
        pytest.param(
            _listing("<p:Other/>", "<!-- c -->", _listed()), [SPEC_ENTRY], id="other-elements"
        ),
    ],
)
def test_port_listing(text: str, expected: list[PortMappingEntry]) -> None:
    assert parse_port_listing(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("not xml", id="text"),
        pytest.param("<p:PortMappingList xmlns:p='urn:x'>", id="unclosed"),
        pytest.param(_listing(_listed(), root="p:Other"), id="wrong-root"),
        pytest.param("<PortMappingEntry/>", id="entry-as-root"),
        pytest.param(
            _listing(_listed(NewDescription="a & b")), id="raw-ampersand-from-a-non-escaping-client"
        ),
        pytest.param(
            '<!DOCTYPE l [<!ENTITY x "y">]>' + _listing(_listed(NewDescription="&x;")), id="dtd"
        ),
        pytest.param("<a>" * 100 + "</a>" * 100, id="deep"),
    ],
)
def test_port_listing_refuses(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_port_listing(text)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"NewExternalPort": "<absent>"}, id="no-external-port"),
        pytest.param({"NewExternalPort": "99999"}, id="external-out-of-range"),
        pytest.param({"NewLeaseTime": "-4"}, id="lease-negative"),
        pytest.param({"NewProtocol": "GRE"}, id="bad-protocol"),
        pytest.param({"NewInternalClient": "h" * 300}, id="client-too-long"),
    ],
)
def test_one_malformed_listing_entry_is_skipped_and_said(bad: dict[str, str]) -> None:
    """Issue 10: one bad entry (ExternalPort 99999) made the whole table unreadable."""
    skipped: list[str] = []
    entries = parse_port_listing(_listing(_listed(), _listed(**bad), _listed()), skipped)
    assert entries == [SPEC_ENTRY, SPEC_ENTRY]
    assert len(skipped) == 1 and skipped[0].startswith("listing entry 2: ")
    assert parse_port_listing(_listing(_listed(**bad))) == []  # no list given: still no raise


@pytest.mark.parametrize("prefix", ["\n", "  \r\n", "\ufeff", "\ufeff\n "])
def test_port_listing_with_whitespace_or_bom_before_the_declaration(prefix: str) -> None:
    """Real firmware emits these; XML forbids them, the document after them is fine."""
    assert parse_port_listing(prefix + "<?xml version='1.0'?>" + _listing(_listed())) == [
        SPEC_ENTRY
    ]


def test_port_listing_entry_cap() -> None:
    entry = (
        "<PortMappingEntry><NewExternalPort>1</NewExternalPort><NewProtocol>TCP</NewProtocol>"
        "<NewInternalPort>1</NewInternalPort><NewInternalClient>10.0.0.1</NewInternalClient>"
        "</PortMappingEntry>"
    )
    full = _listing(*([entry] * 4096), root="PortMappingList")
    assert len(parse_port_listing(full)) == 4096
    with pytest.raises(RemoteProtocolError, match="4096"):
        parse_port_listing(_listing(*([entry] * 4097), root="PortMappingList"))


# -- status / NAT / connection type ---------------------------------------------------------------


def test_status_parsers_on_miniupnpd_replies() -> None:
    status = parse_status_info(_reply(MINI / "GetStatusInfo_200.xml", "GetStatusInfo"))
    assert status == StatusInfo("Connected", "ERROR_NONE", 0)
    nat = parse_nat_rsip_status(_reply(MINI / "GetNATRSIPStatus_200.xml", "GetNATRSIPStatus"))
    assert nat == NATRSIPStatus(rsip_available=False, nat_enabled=True)
    ctype = parse_connection_type_info(
        _reply(MINI / "GetConnectionTypeInfo_200.xml", "GetConnectionTypeInfo")
    )
    assert ctype == ConnectionTypeInfo("IP_Routed", ("IP_Routed",))


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ({}, StatusInfo("", "", 0)),
        (
            {
                "NewConnectionStatus": "Disconnected",
                "NewLastConnectionError": "ERROR_NO_CARRIER",
                "NewUptime": "",
            },
            StatusInfo("Disconnected", "ERROR_NO_CARRIER", 0),
        ),
        ({"NewUptime": "4294967295"}, StatusInfo("", "", 4294967295)),
        ({"NewConnectionStatus": "C" * 100}, StatusInfo("C" * 64, "", 0)),
    ],
)
def test_parse_status_info(out: dict[str, str], expected: StatusInfo) -> None:
    assert parse_status_info(out) == expected


@pytest.mark.parametrize("uptime", ["-1", "abc", "4294967296", "1.5"])
def test_parse_status_info_refuses_bad_uptime(uptime: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_status_info({"NewConnectionStatus": "Connected", "NewUptime": uptime})


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ({}, NATRSIPStatus(False, False)),
        ({"NewRSIPAvailable": "1", "NewNATEnabled": "0"}, NATRSIPStatus(True, False)),
        ({"NewRSIPAvailable": "false", "NewNATEnabled": "TRUE"}, NATRSIPStatus(False, True)),
        ({"NewRSIPAvailable": "no", "NewNATEnabled": "Yes"}, NATRSIPStatus(False, True)),
    ],
)
def test_parse_nat_rsip_status(out: dict[str, str], expected: NATRSIPStatus) -> None:
    assert parse_nat_rsip_status(out) == expected


def test_parse_nat_rsip_status_refuses_junk() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_nat_rsip_status({"NewNATEnabled": "enabled"})


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ({}, ConnectionTypeInfo("", ())),
        (
            {
                "NewConnectionType": "IP_Routed",
                "NewPossibleConnectionTypes": "Unconfigured, IP_Routed,IP_Bridged,",
            },
            ConnectionTypeInfo("IP_Routed", ("Unconfigured", "IP_Routed", "IP_Bridged")),
        ),
        (
            {"NewPossibleConnectionTypes": ",".join(f"T{i}" for i in range(40))},
            ConnectionTypeInfo("", tuple(f"T{i}" for i in range(16))),
        ),
        (
            {"NewConnectionType": "x" * 100, "NewPossibleConnectionTypes": "y" * 100},
            ConnectionTypeInfo("x" * 64, ("y" * 64,)),
        ),
    ],
)
def test_parse_connection_type_info(out: dict[str, str], expected: ConnectionTypeInfo) -> None:
    assert parse_connection_type_info(out) == expected


# -- scalar decoders ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "maximum", "result"),
    [
        ("0", 65535, 0),
        ("65535", 65535, 65535),
        (" 42 ", 65535, 42),
        ("0042", 65535, 42),
        ("4294967295", 0xFFFFFFFF, 4294967295),
        ("65536", 65535, None),
        ("4294967296", 0xFFFFFFFF, None),
        ("00000000001", 0xFFFFFFFF, None),  # 11 digits
        ("", 65535, None),
        ("-0", 65535, None),
        ("+1", 65535, None),
        ("1_000", 65535, None),
        ("0x10", 65535, None),
        ("\u00b2", 65535, None),
        ("\uff11", 65535, None),  # fullwidth 1
    ],
)
def test_parse_uint(text: str, maximum: int, result: int | None) -> None:
    if result is None:
        with pytest.raises(RemoteProtocolError, match="Arg"):
            parse_uint(text, "Arg", maximum)
    else:
        assert parse_uint(text, "Arg", maximum) == result


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("", False),
        ("2", None),
        ("on", None),
        ("off", None),
        ("y", None),
        ("\u0661", None),
    ],
)
def test_parse_bool(text: str, result: bool | None) -> None:
    if result is None:
        with pytest.raises(RemoteProtocolError):
            parse_bool(text, "NewEnabled")
    else:
        assert parse_bool(text, "NewEnabled") is result


# -- models used by the codecs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ("TCP", TCP),
        ("tcp", TCP),
        (" udp\n", UDP),
        (TCP, TCP),
        (UDP, UDP),
        ("", None),
        ("icmp", None),
        ("6", None),
        ("TCP ", TCP),
    ],
)
def test_protocol_parse(value: Any, result: Transport | None) -> None:
    if result is None:
        with pytest.raises(ValueError, match="TCP or UDP"):
            Transport.parse(value)
    else:
        assert Transport.parse(value) is result


def test_protocol_numbers() -> None:
    assert (TCP.number, UDP.number) == (6, 17)
    assert str(TCP) == "TCP"


def test_mapping_as_dict() -> None:
    m = PortMapping("203.0.113.7", 1872, "192.168.1.4", 1872, TCP, 60, "d", "http://gw/", True)
    assert m.as_dict() == {
        "external_ip": "203.0.113.7",
        "external_port": 1872,
        "internal_client": "192.168.1.4",
        "internal_port": 1872,
        "protocol": "TCP",
        "lease": 60,
        "description": "d",
        "gateway": "http://gw/",
        "permanent_only": True,
        "wanted_port": 1872,  # not recorded: the port it got
        "mechanism": "upnp",
    }
    moved = PortMapping("203.0.113.7", 1873, "192.168.1.4", 1872, TCP, 60, wanted_port=1872)
    assert moved.as_dict()["wanted_port"] == 1872 and moved.external_port == 1873
    # permanent_only is informative: it does not take part in equality.
    assert m == PortMapping(
        "203.0.113.7", 1872, "192.168.1.4", 1872, TCP, 60, "d", "http://gw/", False
    )


@pytest.mark.parametrize(
    ("address", "is_global"),
    [
        ("8.8.8.8", True),
        ("33.0.0.1", True),
        ("2001:4860:4860::8888", True),
        ("100.81.111.102", False),  # the seed router's external address: CGNAT
        ("100.64.0.1", False),
        ("192.168.1.1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("127.0.0.1", False),
        ("169.254.1.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.1", False),
        ("ff0e::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("192.0.2.1", False),
        ("", False),
        (None, False),
        ("garbage", False),
    ],
)
def test_is_global_address(address: str | None, is_global: bool) -> None:
    assert is_global_address(address) is is_global
