"""Property tests: whatever a gateway sends, the core returns a value or raises an IGDError.

Three kinds of input: arbitrary bytes/text, real captures mutated byte by byte
(flips, deletions, insertions of nasty tokens, truncations), and structured documents
generated from the protocol's vocabulary with arbitrary field values.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioigd.errors import IGDError, RemoteProtocolError
from aioigd.models import Transport
from aioigd.netutil import parse_proc_net_route
from aioigd.proto.actions import (
    parse_connection_type_info,
    parse_external_ip,
    parse_nat_rsip_status,
    parse_port_listing,
    parse_port_mapping_entry,
    parse_status_info,
)
from aioigd.proto.description import parse_description
from aioigd.proto.soap import build_request, parse_response
from aioigd.proto.ssdp import MAX_DATAGRAM, parse_ssdp
from aioigd.proto.urls import check_url, url_host
from aioigd.proto.xmlsafe import MAX_DEPTH, parse_xml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = FIXTURES / "broadcom_seed"
MINI = FIXTURES / "miniupnpd"

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LOC = "http://192.168.1.1:5000/rootDesc.xml"
WANIP1 = "urn:schemas-upnp-org:service:WANIPConnection:1"
WANIP2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
PPP1 = "urn:schemas-upnp-org:service:WANPPPConnection:1"
FW1 = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
SERVICE_TYPES = [WANIP1, WANIP2, PPP1, FW1, "", "urn:example:service:Vendor:1"]
ACTIONS = [
    "GetExternalIPAddress",
    "GetGenericPortMappingEntry",
    "GetSpecificPortMappingEntry",
    "AddPortMapping",
    "GetListOfPortMappings",
]


def _read(directory: Path, pattern: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(directory.glob(pattern))]


SSDP_CAPTURES = _read(SEED, "*.txt") + _read(MINI, "*.txt")
DESCRIPTIONS = _read(MINI, "*rootDesc*.xml")
SOAP_CAPTURES = _read(SEED, "*.xml") + [
    b
    for p in sorted(MINI.glob("Get*.xml")) + [MINI / "AddPortMapping_200.xml"]
    for b in [p.read_bytes()]
]
LISTINGS = [
    parse_response(200, (MINI / name).read_bytes(), WANIP2, "GetListOfPortMappings")[
        "NewPortListing"
    ]
    for name in (
        "GetListOfPortMappings_cdata_200.xml",
        "GetListOfPortMappings_escaped_200.xml",
        "GetListOfPortMappings_cdata_empty_200.xml",
    )
]

#: Byte snippets that have broken parsers before: markup, entities, odd digits, bad URLs.
TOKENS = [
    b"<",
    b">",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&#x1F;",
    b"&lol;",
    b"]]>",
    b"<![CDATA[",
    b"</",
    b"<!DOCTYPE r [<!ENTITY lol 'x'>]>",
    b"<!ENTITY",
    b"SYSTEM 'file:///etc/passwd'",
    b"<?xml version='1.0' encoding='utf-16'?>",
    b"\x00",
    b"\r\n",
    b"\n\n",
    b"\r\n\r\n",
    b":",
    b"\xff",
    b"\xfe\xff",
    b"\xef\xbb\xbf",
    b"\xc2\xb2",
    b"\xd9\xa1",
    b"\xef\xbc\x91",
    b"-1",
    b"0",
    b"65536",
    b"99999999999",
    b"4294967296",
    b"0.0.0.0",
    b"::1",
    b"http://[::1",
    b"//evil.example/",
    b"file:///",
    b"uuid:x/",
    b"http://user@h/",
    b":0/",
    b"xmlns:p='urn:x'",
    b"p:",
    b"<s:Fault>",
    b"<errorCode>",
    b"</errorCode>",
    b"<detail>",
    b"<UPnPError>",
    b"max-age=",
    b"LOCATION:",
    b"ST:",
    b"NTS: ssdp:byebye",
    b"NOTIFY * HTTP/1.1",
    b"\t",
    b" ",
]


@st.composite
def mutated(draw: st.DrawFn, blobs: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(blobs)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate", "swap"]))
        if not data:
            data.extend(draw(st.sampled_from(TOKENS)))
            continue
        i = draw(st.integers(0, len(data) - 1))
        j = draw(st.integers(i, min(len(data), i + 64)))
        if op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif op == "delete":
            del data[i:j]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=16))
        elif op == "truncate":
            del data[i:]
        elif op == "duplicate":
            data[i:i] = data[i:j]
        else:
            data[i:j] = draw(st.sampled_from(TOKENS))
    return bytes(data)


#: Characters XML 1.0 cannot carry (st.text() already leaves out surrogates).
NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Text an XML document can carry. (Filtering a plain st.text() is much faster to generate
#: than st.characters(exclude_categories=...).)
xml_text = st.text(max_size=40).map(lambda s: NOT_XML_CHAR.sub("", s))
#: Field values: arbitrary XML text or values that sit on a parser's boundary.
field_value = st.one_of(
    xml_text,
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "1",
            "-1",
            "65535",
            "65536",
            "4294967295",
            "4294967296",
            "99999999999",
            "\u00b2",
            "\u0661\u0662",
            "\uff11",
            "1e3",
            "0x10",
            "TCP",
            "udp",
            "ICMP",
            "true",
            "no",
            "maybe",
            "0.0.0.0",
            "1.2.3.4",
            "999.1.1.1",
            "::1",
            "fe80::1%eth0",
            "host.lan",
            "http://192.168.1.1:5000/ctl",
            "/ctl/IPConn",
            "ctl",
            "//evil.example/x",
            "http://[::1",
            "file:///etc/passwd",
            "uuid:b90e/WANPPPConnection:1",
            "http://192.168.1.1:0/",
            "http://u@192.168.1.1/",
            "https://192.168.1.1/",
            WANIP1,
            WANIP2,
            PPP1,
            FW1,
            "urn:schemas-upnp-org:service:WANIPConnection:\u00b2",
            "urn:schemas-upnp-org:service:WANIPConnection:",
            "x" * 300,
        ]
    ),
)


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


# -- SSDP ----------------------------------------------------------------------------------------


def _check_ssdp(data: bytes) -> None:
    try:
        answer = parse_ssdp(data, sender="192.168.1.1")
    except RemoteProtocolError:
        return
    if answer is None:
        return
    assert len(data) <= MAX_DATAGRAM
    assert answer.location and answer.st
    assert all(0x21 <= ord(c) <= 0x7E for c in answer.location)
    assert answer.max_age is None or 0 <= answer.max_age <= 9_999_999_999
    assert answer.boot_id is None or answer.boot_id >= 0
    assert len(answer.server) <= 256


@FUZZ
@given(st.binary(max_size=MAX_DATAGRAM + 64))
def test_ssdp_any_bytes(data: bytes) -> None:
    _check_ssdp(data)


@FUZZ
@given(mutated(SSDP_CAPTURES))
def test_ssdp_mutated_captures(data: bytes) -> None:
    _check_ssdp(data)


HEADER_NAMES = [
    "LOCATION",
    "ST",
    "NT",
    "NTS",
    "USN",
    "SERVER",
    "CACHE-CONTROL",
    "EXT",
    "BOOTID.UPNP.ORG",
    "01-NLS",
    "CONFIGID.UPNP.ORG",
    "MAN",
    "MX",
    "HOST",
    "location",
    "Cache-Control",
    "",
]


#: Numbers as gateways write them, and digits from other scripts ("²", Arabic-Indic, fullwidth).
numeral = st.sampled_from(
    ["1800", "0", "-1", "99999999999", "", "\u00b2", "\u0661\u0662"]
) | st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)
#: Header values: arbitrary, numeric, or a cache directive around either.
header_value = st.one_of(
    field_value,
    numeral,
    (field_value | numeral).map(lambda v: f"max-age={v}"),
    numeral.map(lambda v: f"no-cache, max-age = {v}"),
)


@FUZZ
@given(
    st.sampled_from(
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.0 200",
            "NOTIFY * HTTP/1.1",
            "M-SEARCH * HTTP/1.1",
            "HTTP/1.1 404",
            "",
        ]
    ),
    st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value), max_size=12),
    st.sampled_from(["\r\n", "\n"]),
    st.booleans(),
)
def test_ssdp_structured(
    start: str, headers: list[tuple[str, str]], eol: str, usable: bool
) -> None:
    lines = [f"{name}: {value}" for name, value in headers]
    if usable:  # LOCATION and NT/ST present, so that parsing goes on to the other headers
        lines[:0] = [f"LOCATION: {LOC}", f"ST: {WANIP1}", f"NT: {WANIP1}", "NTS: ssdp:alive"]
    text = eol.join([start, *lines]) + eol + eol
    _check_ssdp(text.encode("utf-8", "surrogatepass"))


# -- device descriptions ----------------------------------------------------------------------


def _check_description(data: bytes, allow_foreign_urls: bool = False) -> None:
    try:
        desc = parse_description(data, LOC, allow_foreign_urls=allow_foreign_urls)
    except RemoteProtocolError:
        return
    # Whatever parsed must be usable without further surprises.
    connections = desc.connection_services()
    firewall = desc.firewall_service()
    assert len(desc.root.walk()) <= 32
    for svc in [*connections, *([firewall] if firewall else [])]:
        assert svc.version >= 0
        allowed = None if allow_foreign_urls else url_host(LOC)
        assert check_url(svc.control_url, allowed_host=allowed) == svc.control_url


@FUZZ
@given(st.binary(max_size=4096))
def test_description_any_bytes(data: bytes) -> None:
    _check_description(data)


@FUZZ
@given(mutated(DESCRIPTIONS), st.booleans())
def test_description_mutated_captures(data: bytes, allow_foreign: bool) -> None:
    _check_description(data, allow_foreign)


#: Service types around the ones aioigd uses, with odd versions.
service_type = (
    st.sampled_from(
        [
            WANIP1,
            WANIP2,
            PPP1,
            FW1,
            "urn:schemas-upnp-org:service:WANIPConnection:\u00b2",
            "urn:schemas-upnp-org:service:WANIPConnection:\u0661",
            "urn:schemas-upnp-org:service:WANIPConnection:",
            "urn:schemas-upnp-org:service:WANPPPConnection:99999",
            "urn:dslforum-org:service:WANIPConnection:1",
            "urn:schemas-upnp-org:service:Layer3Forwarding:1",
        ]
    )
    | field_value
)
#: URLs around the gateway's own, relative, foreign and malformed.
service_url = (
    st.sampled_from(
        [
            "/ctl/IPConn",
            "ctl/IPConn",
            "http://192.168.1.1:5000/ctl",
            "http://192.168.1.1:49152/x",
            "http://10.0.0.1/ctl",
            "//evil.example/x",
            "http://[::1",
            "http://[fe80::1%25eth0]/",
            "file:///etc/passwd",
            "http://192.168.1.1:0/",
            "http://192.168.1.1:99999/",
            "http://u@192.168.1.1/",
            "uuid:b90e/WANPPPConnection:1",
            " /ctl ",
            "?x",
            "#f",
            "",
        ]
    )
    | field_value
)
SERVICE_FIELDS = {
    "serviceType": service_type,
    "serviceId": field_value,
    "controlURL": service_url,
    "SCPDURL": service_url,
    "eventSubURL": service_url,
}


@st.composite
def service_xml(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(list(SERVICE_FIELDS)), max_size=6))
    prefix = draw(st.sampled_from(["", "u:"]))
    inner = "".join(f"<{prefix}{k}>{escape(draw(SERVICE_FIELDS[k]))}</{prefix}{k}>" for k in names)
    return f"<{prefix}service>{inner}</{prefix}service>"


def device_xml(depth: int) -> st.SearchStrategy[str]:
    children: st.SearchStrategy[list[str]] = (
        st.lists(device_xml(depth - 1), max_size=2) if depth > 0 else st.just([])
    )
    return st.builds(
        lambda dtype, services, devices: (
            f"<device><deviceType>{escape(dtype)}</deviceType>"
            f"<serviceList>{''.join(services)}</serviceList>"
            f"<deviceList>{''.join(devices)}</deviceList></device>"
        ),
        field_value,
        st.lists(service_xml(), max_size=2),
        children,
    )


@FUZZ
@given(
    device_xml(2),
    st.one_of(st.just(""), service_url),
    st.sampled_from(["", ' xmlns="urn:schemas-upnp-org:device-1-0"', ' xmlns:u="urn:x"']),
    st.booleans(),
)
def test_description_structured(
    device: str, url_base: str, attrs: str, allow_foreign: bool
) -> None:
    base = f"<URLBase>{escape(url_base)}</URLBase>" if url_base else ""
    data = f'<?xml version="1.0"?><root{attrs}>{base}{device}</root>'.encode()
    _check_description(data, allow_foreign)


# -- SOAP replies ------------------------------------------------------------------------------


def _check_response(status: int, body: bytes, service_type: str, action: str) -> None:
    try:
        out = parse_response(status, body, service_type, action)
    except IGDError:
        return
    assert status == 200
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())
    # And every typed decoder on top of it: a value or an IGDError.
    _check_decoders(out)


def _check_decoders(out: dict[str, str]) -> None:
    try:
        ip = parse_external_ip(out)
    except IGDError:
        pass
    else:
        assert _is_ipv4(ip) and ip != "0.0.0.0"
    try:
        entry = parse_port_mapping_entry(out, external_port=1872, protocol=Transport.TCP)
    except IGDError:
        pass
    else:
        if entry is not None:
            assert 1 <= entry.external_port <= 65535
            assert 1 <= entry.internal_port <= 65535
            assert 0 <= entry.lease <= 0xFFFFFFFF
            assert entry.internal_client
            assert len(entry.description) <= 256
    try:
        entries = parse_port_listing(out.get("NewPortListing", ""))
    except IGDError:
        pass
    else:
        assert all(1 <= e.external_port <= 65535 for e in entries)
    for decoder in (parse_status_info, parse_nat_rsip_status, parse_connection_type_info):
        try:
            decoder(out)
        except IGDError:
            pass


@FUZZ
@given(
    st.sampled_from([200, 500, 404]),
    st.binary(max_size=4096),
    st.sampled_from(SERVICE_TYPES),
    st.sampled_from(ACTIONS),
)
def test_response_any_bytes(status: int, body: bytes, service_type: str, action: str) -> None:
    _check_response(status, body, service_type, action)


@FUZZ
@given(
    st.sampled_from([200, 500]),
    mutated(SOAP_CAPTURES),
    st.sampled_from(SERVICE_TYPES),
    st.sampled_from(ACTIONS),
)
def test_response_mutated_captures(
    status: int, body: bytes, service_type: str, action: str
) -> None:
    _check_response(status, body, service_type, action)


OUT_ARGS = [
    "NewExternalIPAddress",
    "NewRemoteHost",
    "NewExternalPort",
    "NewProtocol",
    "NewInternalPort",
    "NewInternalClient",
    "NewEnabled",
    "NewPortMappingDescription",
    "NewLeaseDuration",
    "NewPortListing",
    "NewConnectionStatus",
    "NewUptime",
    "NewRSIPAvailable",
    "NewNATEnabled",
    "NewConnectionType",
    "NewPossibleConnectionTypes",
]


@FUZZ
@given(
    st.sampled_from([200, 500]),
    st.sampled_from(ACTIONS),
    st.sampled_from(SERVICE_TYPES),
    st.booleans(),
    st.lists(st.tuples(st.sampled_from(OUT_ARGS), field_value), max_size=10),
    field_value,
    field_value,
)
def test_response_structured(
    status: int,
    action: str,
    service_type: str,
    fault: bool,
    args: list[tuple[str, str]],
    code: str,
    description: str,
) -> None:
    if fault:
        inner = (
            "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
            '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
            f"<errorCode>{escape(code)}</errorCode>"
            f"<errorDescription>{escape(description)}</errorDescription></UPnPError></detail>"
            "</s:Fault>"
        )
    else:
        values = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in args)
        inner = (
            f'<u:{action}Response xmlns:u="{service_type or "urn:x"}">{values}</u:{action}Response>'
        )
    body = (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        f"<s:Body>{inner}</s:Body></s:Envelope>"
    ).encode()
    _check_response(status, body, service_type, action)


@FUZZ
@given(st.dictionaries(st.sampled_from(OUT_ARGS), field_value | numeral, max_size=10))
def test_decoders_on_arbitrary_out_arguments(out: dict[str, str]) -> None:
    _check_decoders(out)


# -- GetListOfPortMappings listing -------------------------------------------------------------


def _check_listing(text: str) -> None:
    try:
        entries = parse_port_listing(text)
    except RemoteProtocolError:
        return
    for e in entries:
        assert 1 <= e.external_port <= 65535 and 1 <= e.internal_port <= 65535
        assert e.protocol in (Transport.TCP, Transport.UDP)
        assert 0 <= e.lease <= 0xFFFFFFFF


@FUZZ
@given(st.text(max_size=2000))
def test_listing_any_text(text: str) -> None:
    _check_listing(text)


@FUZZ
@given(mutated([listing.encode() for listing in LISTINGS]))
def test_listing_mutated_captures(data: bytes) -> None:
    _check_listing(data.decode("utf-8", "replace"))


LISTING_FIELDS = [
    "NewRemoteHost",
    "NewExternalPort",
    "NewProtocol",
    "NewInternalPort",
    "NewInternalClient",
    "NewEnabled",
    "NewDescription",
    "NewLeaseTime",
]


@FUZZ
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(LISTING_FIELDS), field_value), max_size=8), max_size=3
    ),
    st.sampled_from(["p:", ""]),
)
def test_listing_structured(entries: list[list[tuple[str, str]]], p: str) -> None:
    body = "".join(
        f"<{p}PortMappingEntry>"
        + "".join(f"<{p}{k}>{escape(v)}</{p}{k}>" for k, v in fields)
        + f"</{p}PortMappingEntry>"
        for fields in entries
    )
    ns = ' xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection"' if p else ""
    _check_listing(f"<{p}PortMappingList{ns}>{body}</{p}PortMappingList>")


# -- XML and requests ----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2048), st.integers(0, 4096))
def test_parse_xml_any_bytes(data: bytes, limit: int) -> None:
    try:
        root = parse_xml(data, limit=limit)
    except RemoteProtocolError:
        return
    assert len(data) <= limit
    depth, stack = 0, [(root, 1)]
    while stack:
        elem, d = stack.pop()
        depth = max(depth, d)
        stack.extend((c, d + 1) for c in elem)
    assert depth <= MAX_DEPTH


@FUZZ
@given(st.text(max_size=200).map(lambda s: NOT_XML_CHAR.sub("", s).replace("\r", "")))
def test_request_values_round_trip(value: str) -> None:
    # "\r" is left out: XML parsers turn a literal CR into LF (end-of-line handling).
    _, body = build_request(WANIP1, "AddPortMapping", [("NewPortMappingDescription", value)])
    assert parse_response(
        200,
        body.replace(b"<u:AddPortMapping ", b"<u:AddPortMappingResponse ").replace(
            b"</u:AddPortMapping>", b"</u:AddPortMappingResponse>"
        ),
        WANIP1,
        "AddPortMapping",
    ) == {"NewPortMappingDescription": value.strip()}


@FUZZ
@given(st.text(max_size=100))
def test_request_values_are_escaped_or_refused(value: str) -> None:
    try:
        _, body = build_request(WANIP1, "AddPortMapping", [("NewPortMappingDescription", value)])
    except ValueError:
        return
    parse_xml(body, limit=1 << 20)  # always well-formed


# -- /proc/net/route -----------------------------------------------------------------------------


def _hex_field(*interesting: str) -> st.SearchStrategy[str]:
    return st.sampled_from(interesting) | st.text("0123456789abcdefABCDEFxX-+_ ", max_size=10)


#: One /proc/net/route row, each column around the values that matter.
route_row = st.builds(
    lambda *cols: "\t".join(cols),
    st.sampled_from(["eth0", "wlan0", "", "\x00"]),
    _hex_field("00000000", "0000A8C0", "-0"),
    _hex_field("0101A8C0", "00000000", "1FFFFFFFF", "-1", "FFFFFFFF", "0x1"),
    _hex_field("0003", "0001", "0002", "0007", "FFFF"),
    st.just("0"),
    st.just("0"),
    st.sampled_from(["0", "100", "x"]),
    _hex_field("00000000", "00FFFFFF", "-0"),
    st.just("0\t0\t0"),
) | st.text(max_size=40)


@FUZZ
@given(st.lists(route_row, max_size=8).map("\n".join))
def test_proc_net_route_any_text(text: str) -> None:
    gateways = parse_proc_net_route(text)
    assert all(_is_ipv4(g) and g != "0.0.0.0" for g in gateways)
    assert len(gateways) == len(set(gateways))
