"""SOAP control messages: exact request envelopes, replies and faults (soap.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioigd.errors import (
    ConflictInMappingEntry,
    NoSuchEntryInArray,
    RemoteProtocolError,
    ResponseTooLarge,
    SpecifiedArrayIndexInvalid,
    UPnPError,
)
from aioigd.proto.actions import port_mapping_args
from aioigd.proto.soap import MAX_SOAP_SIZE, build_request, parse_response
from aioigd.proto.xmlsafe import child, local_name, parse_xml
from tests.proto.test_errors import FAULT_TABLE, FW1, PPP1, WAN_SERVICES, WANIP1, WANIP2

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = FIXTURES / "broadcom_seed"
MINI = FIXTURES / "miniupnpd"

ENVELOPE_OPEN = (
    b'<?xml version="1.0"?>\r\n'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    b's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
)
ENVELOPE_CLOSE = b"</s:Body></s:Envelope>\r\n"


# -- build_request -----------------------------------------------------------------------------


def test_build_get_external_ip_address_exact() -> None:
    headers, body = build_request(WANIP1, "GetExternalIPAddress")
    assert headers == {
        "Content-Type": 'text/xml; charset="utf-8"',
        "SOAPACTION": '"urn:schemas-upnp-org:service:WANIPConnection:1#GetExternalIPAddress"',
    }
    assert body == (
        ENVELOPE_OPEN
        + b'<u:GetExternalIPAddress xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">'
        b"</u:GetExternalIPAddress>" + ENVELOPE_CLOSE
    )


def test_build_add_port_mapping_exact() -> None:
    args = port_mapping_args(
        external_port=1872,
        protocol="TCP",  # type: ignore[arg-type]
        internal_port=1872,
        internal_client="192.168.1.4",
        description="a<b>&c\"d' \u00e9",
        lease=60,
    )
    headers, body = build_request(PPP1, "AddPortMapping", args)
    assert headers["SOAPACTION"] == (
        '"urn:schemas-upnp-org:service:WANPPPConnection:1#AddPortMapping"'
    )
    assert isinstance(body, bytes)
    assert body == (
        ENVELOPE_OPEN
        + b'<u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANPPPConnection:1">'
        b"<NewRemoteHost></NewRemoteHost>"
        b"<NewExternalPort>1872</NewExternalPort>"
        b"<NewProtocol>TCP</NewProtocol>"
        b"<NewInternalPort>1872</NewInternalPort>"
        b"<NewInternalClient>192.168.1.4</NewInternalClient>"
        b"<NewEnabled>1</NewEnabled>"
        b"<NewPortMappingDescription>a&lt;b&gt;&amp;c\"d' \xc3\xa9</NewPortMappingDescription>"
        b"<NewLeaseDuration>60</NewLeaseDuration>"
        b"</u:AddPortMapping>" + ENVELOPE_CLOSE
    )


def test_build_request_round_trips_through_an_xml_parser() -> None:
    value = "<![CDATA[ ]]> &amp; </NewPortMappingDescription><x> \u2603 \U0001f600"
    _, body = build_request(WANIP2, "AddAnyPortMapping", [("NewPortMappingDescription", value)])
    envelope = parse_xml(body, limit=MAX_SOAP_SIZE)
    soap_body = child(envelope, "Body")
    assert soap_body is not None
    action = child(soap_body, "AddAnyPortMapping")
    assert action is not None and action.tag == f"{{{WANIP2}}}AddAnyPortMapping"
    (arg,) = list(action)
    assert (arg.tag, arg.text) == ("NewPortMappingDescription", value)


def test_build_request_keeps_argument_order() -> None:
    args = [("Z", "1"), ("A", "2"), ("M", "3")]
    _, body = build_request(FW1, "AddPinhole", args)
    assert b"<Z>1</Z><A>2</A><M>3</M>" in body


@pytest.mark.parametrize(
    "action",
    ["", "Get External", "Get<x>", "A&B", 'A"', "A:B", "A/B", "A\r\nX", "A>"],
)
def test_build_request_refuses_bad_action_names(action: str) -> None:
    with pytest.raises(ValueError):
        build_request(WANIP1, action)


@pytest.mark.parametrize("name", ["", "New Port", "a<b", "x/y", "p:q", "a\nb"])
def test_build_request_refuses_bad_argument_names(name: str) -> None:
    with pytest.raises(ValueError):
        build_request(WANIP1, "AddPortMapping", [(name, "1")])


@pytest.mark.parametrize(
    "service_type",
    [WANIP1 + '"', WANIP1 + "<", WANIP1 + ">", WANIP1 + "&", WANIP1 + "\r\nX-Injected: 1"],
)
def test_build_request_refuses_bad_service_types(service_type: str) -> None:
    with pytest.raises(ValueError):
        build_request(service_type, "GetExternalIPAddress")


@pytest.mark.parametrize(
    "value", ["a\x00b", "\x01", "bell\x07", "esc\x1b[0m", "\x0b", "\x0c", "\ufffe", "\uffff"]
)
def test_build_request_refuses_characters_xml_cannot_carry(value: str) -> None:
    # They would make the request body malformed XML (a strict gateway answers 402 or 500).
    with pytest.raises(ValueError):
        build_request(WANIP1, "AddPortMapping", [("NewPortMappingDescription", value)])


@pytest.mark.parametrize(
    "value", ["tab\there", "new\nline", "", " spaced ", "\u00e9\u4e2d\U0001f600"]
)
def test_build_request_accepts_xml_legal_text(value: str) -> None:
    _, body = build_request(WANIP1, "AddPortMapping", [("NewPortMappingDescription", value)])
    assert value.encode() in body


# -- parse_response: real replies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "service_type", "action", "out"),
    [
        pytest.param(
            SEED / "GetExternalIPAddress_200.xml",
            PPP1,
            "GetExternalIPAddress",
            {"NewExternalIPAddress": "100.81.111.102"},
            id="seed-external-ip",
        ),
        pytest.param(
            SEED / "GetGenericPortMappingEntry_empty_200.xml",
            PPP1,
            "GetGenericPortMappingEntry",
            {
                "NewRemoteHost": "",
                "NewExternalPort": "0",
                "NewProtocol": "",
                "NewInternalPort": "0",
                "NewInternalClient": "",
                "NewEnabled": "0",
                "NewPortMappingDescription": "",
                "NewLeaseDuration": "0",
            },
            id="seed-empty-entry",
        ),
        pytest.param(
            SEED / "GetGenericPortMappingEntry_200.xml",
            PPP1,
            "GetGenericPortMappingEntry",
            {
                "NewRemoteHost": "",
                "NewExternalPort": "3",
                "NewProtocol": "TCP",
                "NewInternalPort": "7851",
                "NewInternalClient": "192.168.1.4",
                "NewEnabled": "1",
                "NewPortMappingDescription": "KCG-UPNP",
                "NewLeaseDuration": "16905",
            },
            id="seed-entry",
        ),
        pytest.param(SEED / "AddPortMapping_200.xml", PPP1, "AddPortMapping", {}, id="seed-add"),
        pytest.param(
            MINI / "GetExternalIPAddress_200.xml",
            WANIP2,
            "GetExternalIPAddress",
            {"NewExternalIPAddress": "33.0.0.1"},
            id="miniupnpd-external-ip",
        ),
        pytest.param(
            MINI / "AddPortMapping_200.xml",
            WANIP2,
            "AddPortMapping",
            {},
            id="miniupnpd-add-self-closing",
        ),
        pytest.param(
            MINI / "GetStatusInfo_200.xml",
            WANIP2,
            "GetStatusInfo",
            {
                "NewConnectionStatus": "Connected",
                "NewLastConnectionError": "ERROR_NONE",
                "NewUptime": "0",
            },
            id="miniupnpd-status",
        ),
    ],
)
def test_parse_real_replies(
    path: Path, service_type: str, action: str, out: dict[str, str]
) -> None:
    assert parse_response(200, path.read_bytes(), service_type, action) == out


def test_seed_reply_sizes_match_the_logged_content_length() -> None:
    # broadcom_seed/README.md: CRLF line ends reproduce the router's Content-Length exactly.
    sizes = {
        "GetExternalIPAddress_200.xml": 361,
        "GetGenericPortMappingEntry_empty_200.xml": 602,
        "GetGenericPortMappingEntry_200.xml": 631,
        "AddPortMapping_200.xml": 290,
    }
    for name, size in sizes.items():
        assert len((SEED / name).read_bytes()) == size, name


@pytest.mark.parametrize(
    ("path", "service_type", "action", "cls", "code", "description"),
    [
        (
            SEED / "GetGenericPortMappingEntry_713_500.xml",
            PPP1,
            "GetGenericPortMappingEntry",
            SpecifiedArrayIndexInvalid,
            713,
            "SpecifiedArrayIndexInvalid",
        ),
        (
            SEED / "GetSpecificPortMappingEntry_714_500.xml",
            PPP1,
            "GetSpecificPortMappingEntry",
            NoSuchEntryInArray,
            714,
            "NoSuchEntryInArray",
        ),
        (
            MINI / "GetGenericPortMappingEntry_713_500.xml",
            WANIP2,
            "GetGenericPortMappingEntry",
            SpecifiedArrayIndexInvalid,
            713,
            "SpecifiedArrayIndexInvalid",
        ),
        (
            MINI / "GetSpecificPortMappingEntry_714_500.xml",
            WANIP2,
            "GetSpecificPortMappingEntry",
            NoSuchEntryInArray,
            714,
            "NoSuchEntryInArray",
        ),
    ],
)
def test_parse_real_faults(
    path: Path, service_type: str, action: str, cls: type[UPnPError], code: int, description: str
) -> None:
    with pytest.raises(cls) as info:
        parse_response(500, path.read_bytes(), service_type, action)
    err = info.value
    assert type(err) is cls
    assert (err.code, err.description, err.action, err.service_type) == (
        code,
        description,
        action,
        service_type,
    )


# -- parse_response: faults, table-driven --------------------------------------------------------


def fault_body(
    code: str,
    description: str = "Some Description",
    *,
    prefix: str = "s",
    detail: bool = True,
    faultstring: str = "UPnPError",
) -> bytes:
    p = f"{prefix}:" if prefix else ""
    ns = f' xmlns:{prefix}="http://schemas.xmlsoap.org/soap/envelope/"' if prefix else ""
    inner = (
        '<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>{description}</errorDescription>"
        "</UPnPError></detail>"
        if detail
        else ""
    )
    return (
        f"<{p}Envelope{ns}><{p}Body><{p}Fault><faultcode>{p}Client</faultcode>"
        f"<faultstring>{faultstring}</faultstring>{inner}</{p}Fault></{p}Body></{p}Envelope>"
    ).encode()


@pytest.mark.parametrize(("code", "wan_cls", "fw_cls"), FAULT_TABLE)
@pytest.mark.parametrize("status", [500, 200])
def test_every_fault_code_maps_per_service(
    status: int, code: int, wan_cls: type[UPnPError], fw_cls: type[UPnPError]
) -> None:
    for service_type, cls in [*((s, wan_cls) for s in WAN_SERVICES), (FW1, fw_cls)]:
        with pytest.raises(UPnPError) as info:
            parse_response(status, fault_body(str(code), "Desc"), service_type, "SomeAction")
        err = info.value
        assert type(err) is cls, (service_type, code)
        assert (err.code, err.description, err.action, err.service_type) == (
            code,
            "Desc",
            "SomeAction",
            service_type,
        )
        assert "SomeAction" in str(err) and str(code) in str(err)


@pytest.mark.parametrize(
    ("body", "code", "description"),
    [
        pytest.param(fault_body(" 718\n"), 718, "Some Description", id="code-whitespace"),
        pytest.param(fault_body("0718"), 718, "Some Description", id="leading-zero"),
        pytest.param(fault_body("718", prefix="SOAP-ENV"), 718, "Some Description", id="soap-env"),
        pytest.param(fault_body("718", prefix=""), 718, "Some Description", id="no-prefix"),
        pytest.param(fault_body("718", ""), 718, "", id="no-description"),
        pytest.param(fault_body("718", "x" * 1000), 718, "x" * 200, id="long-description"),
        pytest.param(fault_body("abc"), 0, "unparsable errorCode 'abc'", id="code-not-a-number"),
        pytest.param(fault_body(""), 0, "unparsable errorCode ''", id="code-empty"),
        pytest.param(fault_body("-718"), 0, "unparsable errorCode '-718'", id="code-negative"),
        pytest.param(fault_body("71800"), 0, "unparsable errorCode '71800'", id="code-5-digits"),
        pytest.param(
            fault_body("\u00b2"), 0, "unparsable errorCode '\u00b2'", id="code-superscript"
        ),
        pytest.param(
            fault_body("\u0667\u0661\u0668"),
            0,
            "unparsable errorCode '\u0667\u0661\u0668'",
            id="code-arabic-indic",
        ),
        pytest.param(
            fault_body("718", detail=False, faultstring="Server busy"),
            0,
            "Server busy",
            id="no-detail",
        ),
        pytest.param(
            fault_body("718", detail=False, faultstring=""),
            0,
            "SOAP fault without UPnPError detail",
            id="no-detail-no-faultstring",
        ),
    ],
)
def test_fault_variants(body: bytes, code: int, description: str) -> None:
    with pytest.raises(UPnPError) as info:
        parse_response(500, body, WANIP1, "AddPortMapping")
    assert (info.value.code, info.value.description) == (code, description)
    assert info.value.action == "AddPortMapping"
    # No readable code is not "UPnP error 0" (issue 13): it says so.
    assert info.value.code_missing is (code == 0)
    if code == 0:
        assert "without a readable error code" in str(info.value)
        assert "error 0" not in str(info.value)


def test_fault_inside_http_200() -> None:
    with pytest.raises(ConflictInMappingEntry):
        parse_response(200, fault_body("718"), WANIP1, "AddPortMapping")


# -- parse_response: refused replies ------------------------------------------------------------

OK_BODY = (
    ENVELOPE_OPEN
    + f'<u:GetExternalIPAddressResponse xmlns:u="{WANIP1}">'.encode()
    + b"<NewExternalIPAddress>1.2.3.4</NewExternalIPAddress></u:GetExternalIPAddressResponse>"
    + ENVELOPE_CLOSE
)


@pytest.mark.parametrize(
    ("status", "body", "action"),
    [
        pytest.param(500, b"Internal Server Error", "AddPortMapping", id="500-text"),
        pytest.param(500, b"", "AddPortMapping", id="500-empty"),
        pytest.param(500, b"<html><body>500</body></html>", "AddPortMapping", id="500-html"),
        pytest.param(500, OK_BODY, "GetExternalIPAddress", id="500-success-body"),
        pytest.param(404, b"Not Found", "GetExternalIPAddress", id="404"),
        pytest.param(404, fault_body("714"), "GetSpecificPortMappingEntry", id="404-with-fault"),
        pytest.param(401, OK_BODY, "GetExternalIPAddress", id="401"),
        pytest.param(405, b"", "GetExternalIPAddress", id="405"),
        pytest.param(412, b"", "GetExternalIPAddress", id="412"),
        pytest.param(302, b"", "GetExternalIPAddress", id="302"),
        pytest.param(204, b"", "GetExternalIPAddress", id="204"),
        pytest.param(200, b"", "GetExternalIPAddress", id="200-empty"),
        pytest.param(200, b"OK", "GetExternalIPAddress", id="200-text"),
        pytest.param(200, OK_BODY, "GetStatusInfo", id="reply-for-another-action"),
        pytest.param(200, OK_BODY, "GetExternalIPAddres", id="reply-for-prefix-action"),
        pytest.param(
            200, OK_BODY.replace(b"Envelope", b"Envelop"), "GetExternalIPAddress", id="not-envelope"
        ),
        pytest.param(
            200,
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>',
            "GetExternalIPAddress",
            id="no-body",
        ),
        pytest.param(
            200,
            b"<Body><GetExternalIPAddressResponse/></Body>",
            "GetExternalIPAddress",
            id="body-as-root",
        ),
        pytest.param(
            200,
            b"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY a 'b'>]>" + OK_BODY[23:],
            "GetExternalIPAddress",
            id="dtd",
        ),
    ],
)
def test_parse_response_refuses(status: int, body: bytes, action: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_response(status, body, WANIP1, action)


@pytest.mark.parametrize("action", ["AddPortMapping", "DeletePortMapping", "UpdatePinhole"])
def test_200_without_fault_is_success_for_an_action_without_out_arguments(action: str) -> None:
    """The router acted; a misnamed body element must not turn that into a failure."""
    assert parse_response(200, OK_BODY, WANIP1, action) == {}
    empty_body = ENVELOPE_OPEN + b"</s:Body></s:Envelope>"
    assert parse_response(200, empty_body, WANIP1, action) == {}
    with pytest.raises(RemoteProtocolError):  # an action with out arguments still needs them
        parse_response(200, empty_body, WANIP1, "GetExternalIPAddress")


def test_non_upnp_errors_are_not_upnp_faults() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_response(500, b"oops", WANIP1, "AddPortMapping")
    assert not isinstance(info.value, UPnPError)
    assert "AddPortMapping" in str(info.value)
    with pytest.raises(RemoteProtocolError, match="404"):
        parse_response(404, b"", WANIP1, "AddPortMapping")


@pytest.mark.parametrize("status", [200, 500])
def test_oversized_reply_is_response_too_large(status: int) -> None:
    body = fault_body("718") + b" " * 100
    with pytest.raises(ResponseTooLarge):
        parse_response(status, body, WANIP1, "AddPortMapping", limit=len(body) - 1)
    with pytest.raises(ResponseTooLarge):
        parse_response(status, b"<a>" + b"x" * MAX_SOAP_SIZE + b"</a>", WANIP1, "AddPortMapping")


# -- parse_response: out-argument extraction -----------------------------------------------------


@pytest.mark.parametrize(
    ("inner", "out"),
    [
        pytest.param(b"", {}, id="empty"),
        pytest.param(b"<A>1</A><B>2</B>", {"A": "1", "B": "2"}, id="plain"),
        pytest.param(b"<m:A xmlns:m='urn:m'>1</m:A>", {"A": "1"}, id="prefixed-arg"),
        pytest.param(b"<A>  1\r\n</A><B/>", {"A": "1", "B": ""}, id="whitespace-and-empty"),
        pytest.param(b"<A>first</A><A>second</A>", {"A": "first"}, id="first-wins"),
        pytest.param(b"<A>&lt;x&gt;&amp;</A>", {"A": "<x>&"}, id="entities"),
        pytest.param(b"<A><![CDATA[<x/>]]></A>", {"A": "<x/>"}, id="cdata"),
        pytest.param(b"<!-- c --><A>1</A>", {"A": "1"}, id="comment"),
    ],
)
def test_out_arguments(inner: bytes, out: dict[str, str]) -> None:
    body = (
        b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>"
        + f"<u:GetXResponse xmlns:u='{WANIP1}'>".encode()
        + inner
        + b"</u:GetXResponse></s:Body></s:Envelope>"
    )
    assert parse_response(200, body, WANIP1, "GetX") == out


def test_response_without_namespaces_or_declaration() -> None:
    body = b"<Envelope><Body><GetXResponse><A>1</A></GetXResponse></Body></Envelope>\0\0"
    assert parse_response(200, body, WANIP1, "GetX") == {"A": "1"}


def test_response_element_names_are_matched_by_local_name() -> None:
    envelope = parse_xml(OK_BODY, limit=MAX_SOAP_SIZE)
    assert local_name(envelope.tag) == "Envelope"
    assert parse_response(200, OK_BODY, PPP1, "GetExternalIPAddress") == {
        "NewExternalIPAddress": "1.2.3.4"
    }
