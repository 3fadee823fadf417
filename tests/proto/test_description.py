"""Device descriptions: real captures, namespace quirks, URL rules, limits; and the models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from aioigd.errors import RemoteProtocolError, ResponseTooLarge, UnsafeURLError
from aioigd.models import Device, DeviceDescription, Service, ServiceKind
from aioigd.proto.description import parse_description

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MINIUPNPD = FIXTURES / "miniupnpd"

LOC = "http://192.168.1.1:5000/rootDesc.xml"
BRCM_LOC = "http://192.168.1.1:5431/dyndev/uuid:4f8c8842-6733-4e8b-806f-c1dfa99deb5a"
BRCM_CTL = "http://192.168.1.1:5431/uuid:b90ebdfa-439c-4411-9c20-79a88e224a26/WANPPPConnection:1"

URN = "urn:schemas-upnp-org"
IGD1, IGD2 = f"{URN}:device:InternetGatewayDevice:1", f"{URN}:device:InternetGatewayDevice:2"
WAND1, WAND2 = f"{URN}:device:WANDevice:1", f"{URN}:device:WANDevice:2"
WANCD1, WANCD2 = f"{URN}:device:WANConnectionDevice:1", f"{URN}:device:WANConnectionDevice:2"
WANIP1, WANIP2 = f"{URN}:service:WANIPConnection:1", f"{URN}:service:WANIPConnection:2"
PPP1 = f"{URN}:service:WANPPPConnection:1"
FW1 = f"{URN}:service:WANIPv6FirewallControl:1"
L3F = f"{URN}:service:Layer3Forwarding:1"
DP = f"{URN}:service:DeviceProtection:1"
CIF = f"{URN}:service:WANCommonInterfaceConfig:1"
DSL = f"{URN}:service:WANDSLLinkConfig:1"


def _read(name: str) -> bytes:
    return (MINIUPNPD / name).read_bytes()


# -- the three real(istic) descriptions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "location", "walk", "service_types", "connection", "firewall"),
    [
        pytest.param(
            "rootDesc_igd2.xml",
            LOC,
            [IGD2, WAND2, WANCD2],
            [L3F, DP, CIF, WANIP2, FW1],
            [(WANIP2, "http://192.168.1.1:5000/ctl/IPConn")],
            "http://192.168.1.1:5000/ctl/IP6FCtl",
            id="miniupnpd-igd2",
        ),
        pytest.param(
            "rootDesc_igd1.xml",
            LOC,
            [IGD1, WAND1, WANCD1],
            [L3F, CIF, WANIP1],
            [(WANIP1, "http://192.168.1.1:5000/ctl/IPConn")],
            None,
            id="miniupnpd-igd1",
        ),
        pytest.param(
            "broadcom_wanppp_rootDesc.xml",
            BRCM_LOC,
            [IGD1, WAND1, WANCD1],
            [L3F, CIF, DSL, PPP1],
            [(PPP1, BRCM_CTL)],
            None,
            id="broadcom-ppp-only",
        ),
    ],
)
def test_fixture_descriptions(
    fixture: str,
    location: str,
    walk: list[str],
    service_types: list[str],
    connection: list[tuple[str, str]],
    firewall: str | None,
) -> None:
    desc = parse_description(_read(fixture), location)
    assert desc.location == location
    assert desc.url_base == ""
    assert [d.device_type for d in desc.root.walk()] == walk
    assert [s.service_type for s in desc.services()] == service_types
    assert [(s.service_type, s.control_url) for s in desc.connection_services()] == connection
    fw = desc.firewall_service()
    assert (fw.control_url if fw else None) == firewall
    for svc in desc.services():
        for url in (svc.control_url, svc.scpd_url, svc.event_sub_url):
            assert url.startswith(location.split("/", 3)[0] + "//192.168.1.1:"), url


def test_miniupnpd_igd2_details() -> None:
    desc = parse_description(_read("rootDesc_igd2.xml"), LOC)
    root = desc.root
    assert root.friendly_name == "aioigd lab r1"
    assert root.manufacturer == "Debian"
    assert root.model_name == "Debian router"
    assert root.udn == "uuid:73139107-818d-43ba-825b-84e5366ac425"
    wancd = root.devices[0].devices[0]
    assert wancd.udn == "uuid:73139107-818d-43ba-825b-84e5366ac427"
    assert wancd.services == (
        Service(
            service_type=WANIP2,
            service_id="urn:upnp-org:serviceId:WANIPConn1",
            control_url="http://192.168.1.1:5000/ctl/IPConn",
            scpd_url="http://192.168.1.1:5000/WANIPCn.xml",
            event_sub_url="http://192.168.1.1:5000/evt/IPConn",
        ),
        Service(
            service_type=FW1,
            service_id="urn:upnp-org:serviceId:WANIPv6Firewall1",
            control_url="http://192.168.1.1:5000/ctl/IP6FCtl",
            scpd_url="http://192.168.1.1:5000/WANIP6FC.xml",
            event_sub_url="http://192.168.1.1:5000/evt/IP6FCtl",
        ),
    )
    assert [s.kind for s in wancd.services] == [ServiceKind.WAN_IP, ServiceKind.FIREWALL]
    assert [s.version for s in wancd.services] == [2, 1]


def test_broadcom_description_fetched_over_ipv4_with_other_port() -> None:
    # The control URL is on the description's host: a different port would still be accepted.
    desc = parse_description(_read("broadcom_wanppp_rootDesc.xml"), BRCM_LOC)
    (ppp,) = desc.connection_services()
    assert ppp.kind is ServiceKind.WAN_PPP and ppp.version == 1
    assert ppp.scpd_url == "http://192.168.1.1:5431/dynsvc/WANPPPConnection:1.xml"


# -- synthetic descriptions ---------------------------------------------------------------------


def _service(
    stype: str, ctl: str = "/ctl/IPConn", p: str = "", extra: str = "", sid: str = "id"
) -> str:
    return (
        f"<{p}service><{p}serviceType>{stype}</{p}serviceType><{p}serviceId>{sid}</{p}serviceId>"
        f"<{p}SCPDURL>/scpd.xml</{p}SCPDURL><{p}controlURL>{ctl}</{p}controlURL>"
        f"<{p}eventSubURL>/evt</{p}eventSubURL>{extra}</{p}service>"
    )


def _device(
    dtype: str, services: Sequence[str] = (), devices: Sequence[str] = (), p: str = ""
) -> str:
    svc = f"<{p}serviceList>{''.join(services)}</{p}serviceList>" if services else ""
    dev = f"<{p}deviceList>{''.join(devices)}</{p}deviceList>" if devices else ""
    return f"<{p}device><{p}deviceType>{dtype}</{p}deviceType>{svc}{dev}</{p}device>"


def _root(
    device: str,
    url_base: str = "",
    attrs: str = ' xmlns="urn:schemas-upnp-org:device-1-0"',
    p: str = "",
) -> bytes:
    base = f"<{p}URLBase>{url_base}</{p}URLBase>" if url_base else ""
    return f'<?xml version="1.0"?>\n<{p}root{attrs}>{base}{device}</{p}root>'.encode()


def _igd(*services: str, url_base: str = "") -> bytes:
    return _root(
        _device(IGD1, devices=[_device(WAND1, devices=[_device(WANCD1, list(services))])]),
        url_base=url_base,
    )


def test_connection_services_order() -> None:
    data = _root(
        _device(
            IGD2,
            devices=[
                _device(WANCD1, [_service(PPP1, "/ppp")]),
                _device(WANCD1, [_service(WANIP1, "/ip1")]),
                _device(WANCD2, [_service(WANIP2, "/ip2"), _service(FW1, "/fw")]),
                _device(
                    WANCD1, [_service("urn:dslforum-org:service:WANPPPConnection:1", "/tr064")]
                ),
            ],
        )
    )
    desc = parse_description(data, LOC)
    assert [s.control_url.rsplit("/", 1)[1] for s in desc.connection_services()] == [
        "ip2",
        "ip1",
        "ppp",
        "tr064",
    ]
    fw = desc.firewall_service()
    assert fw is not None and fw.control_url == "http://192.168.1.1:5000/fw"


def test_unparsable_version_sorts_after_known_versions() -> None:
    data = _igd(
        _service(PPP1, "/ppp"),
        _service(f"{URN}:service:WANIPConnection:x", "/vx"),
        _service(WANIP1, "/v1"),
    )
    desc = parse_description(data, LOC)
    assert [s.control_url.rsplit("/", 1)[1] for s in desc.connection_services()] == [
        "v1",
        "vx",
        "ppp",
    ]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            _root(_device(IGD1, [_service(WANIP1)]), attrs=""),
            id="no-namespace",
        ),
        pytest.param(
            _root(_device(IGD1, [_service(WANIP1)]), attrs=' xmlns="urn:example:other"'),
            id="other-default-namespace",
        ),
        pytest.param(
            _root(
                _device(IGD1, [_service(WANIP1, p="u:")], p="u:"),
                attrs=' xmlns:u="urn:schemas-upnp-org:device-1-0"',
                p="u:",
            ),
            id="prefixed-u-root",
        ),
        pytest.param(
            _root(
                _device(IGD1, [_service(WANIP1, p="x:")]),
                attrs=' xmlns="urn:schemas-upnp-org:device-1-0" xmlns:x="urn:x"',
            ),
            id="mixed-prefixes",
        ),
        pytest.param(
            b"<?xml version='1.0'?>\r\n<root xmlns='urn:schemas-upnp-org:device-1-0'>\r\n"
            b"  <device>\r\n    <deviceType>\r\n  " + IGD1.encode() + b"  \r\n</deviceType>\r\n"
            b"    <serviceList>\r\n      <service>\r\n        <serviceType>\t"
            + WANIP1.encode()
            + b"\t</serviceType>\r\n        <controlURL>\r\n   /ctl/IPConn   \r\n</controlURL>\r\n"
            b"      </service>\r\n    </serviceList>\r\n  </device>\r\n</root>\r\n\0\0\0",
            id="whitespace-crlf-and-trailing-nuls",
        ),
        pytest.param(
            _root(_device(IGD1, [_service(WANIP1)])).replace(
                b"<service>", b"<!-- comment --><?pi x?><service>"
            ),
            id="comments-and-pis",
        ),
    ],
)
def test_namespace_and_whitespace_quirks(data: bytes) -> None:
    desc = parse_description(data, LOC)
    assert desc.root.device_type == IGD1
    (svc,) = desc.connection_services()
    assert svc.service_type == WANIP1
    assert svc.control_url == "http://192.168.1.1:5000/ctl/IPConn"


def test_url_base_is_honoured() -> None:
    desc = parse_description(
        _igd(_service(WANIP1, "ctl/IPConn"), url_base="http://192.168.1.1:49152/base/"), LOC
    )
    assert desc.url_base == "http://192.168.1.1:49152/base/"
    (svc,) = desc.connection_services()
    assert svc.control_url == "http://192.168.1.1:49152/base/ctl/IPConn"
    assert svc.scpd_url == "http://192.168.1.1:49152/scpd.xml"


def test_url_base_on_another_host_is_refused() -> None:
    data = _igd(_service(WANIP1, "/ctl"), url_base="http://10.66.66.66:80/")
    with pytest.raises(UnsafeURLError):
        parse_description(data, LOC)
    desc = parse_description(data, LOC, allow_foreign_urls=True)
    assert desc.connection_services()[0].control_url == "http://10.66.66.66:80/ctl"


@pytest.mark.parametrize(
    ("ctl", "with_foreign_allowed"),
    [
        ("http://10.66.66.66:5000/ctl/IPConn", "http://10.66.66.66:5000/ctl/IPConn"),
        ("http://evil.example/ctl", "http://evil.example/ctl"),
        ("//evil.example/ctl", "http://evil.example/ctl"),
        ("http://192.168.1.1.evil.example/ctl", "http://192.168.1.1.evil.example/ctl"),
        ("http://127.0.0.1:5000/ctl", "http://127.0.0.1:5000/ctl"),
        # Refused even with allow_foreign_urls: not a plain http URL.
        ("http://user@192.168.1.1:5000/ctl", None),
        ("file:///etc/passwd", None),
        ("https://192.168.1.1/ctl", None),
        ("ftp://192.168.1.1/ctl", None),
        ("http://192.168.1.1:0/ctl", None),
        ("http://[::1", None),
    ],
)
def test_control_url_leaving_the_gateway(ctl: str, with_foreign_allowed: str | None) -> None:
    data = _igd(_service(WANIP1, ctl))
    with pytest.raises(UnsafeURLError):
        parse_description(data, LOC)
    if with_foreign_allowed is None:
        with pytest.raises(UnsafeURLError):
            parse_description(data, LOC, allow_foreign_urls=True)
    else:
        desc = parse_description(data, LOC, allow_foreign_urls=True)
        assert desc.connection_services()[0].control_url == with_foreign_allowed


def test_foreign_url_of_a_service_aioigd_does_not_use_is_kept() -> None:
    # Only the services aioigd calls are held to the gateway's host.
    data = _igd(_service(L3F, "http://10.66.66.66/l3f"), _service(WANIP1, "/ctl"))
    desc = parse_description(data, LOC)
    assert desc.services()[0].control_url == "http://10.66.66.66/l3f"


@pytest.mark.parametrize("stype", [WANIP1, WANIP2, PPP1, FW1])
def test_known_service_without_control_url(stype: str) -> None:
    svc = f"<service><serviceType>{stype}</serviceType><controlURL>  </controlURL></service>"
    with pytest.raises(RemoteProtocolError, match="controlURL"):
        parse_description(_igd(svc), LOC)


def test_unknown_service_without_urls_is_fine() -> None:
    svc = f"<service><serviceType>{L3F}</serviceType></service>"
    desc = parse_description(_igd(svc, _service(WANIP1)), LOC)
    assert desc.services()[0] == Service(service_type=L3F, service_id="", control_url="")


def test_link_local_ipv6_location() -> None:
    loc = "http://[fe80::1%25eth0]:5000/rootDesc.xml"
    desc = parse_description(_igd(_service(WANIP1, "/ctl/IPConn")), loc)
    assert desc.connection_services()[0].control_url == "http://[fe80::1%25eth0]:5000/ctl/IPConn"
    with pytest.raises(UnsafeURLError):
        parse_description(_igd(_service(WANIP1, "http://[fe80::2]:5000/ctl")), loc)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"<scpd xmlns='urn:schemas-upnp-org:service-1-0'/>", id="scpd"),
        pytest.param(b"<html><body>Login</body></html>", id="html"),
        pytest.param(
            b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'/>", id="envelope"
        ),
        pytest.param(b"<root xmlns='urn:schemas-upnp-org:device-1-0'/>", id="root-without-device"),
        pytest.param(
            b"<root><specVersion><major>1</major></specVersion></root>", id="root-spec-only"
        ),
        pytest.param(b"<roots><device/></roots>", id="roots"),
        pytest.param(b"", id="empty"),
        pytest.param(b"HTTP/1.0 200 OK\r\n\r\n<root/>", id="http-head"),
    ],
)
def test_not_a_device_description(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_description(data, LOC)


def test_device_count_limit() -> None:
    def flat(n: int) -> bytes:
        return _root(_device(IGD1, [_service(WANIP1)], [_device(WAND1) for _ in range(n - 1)]))

    assert len(parse_description(flat(32), LOC).root.walk()) == 32
    with pytest.raises(RemoteProtocolError, match="32 devices"):
        parse_description(flat(33), LOC)
    with pytest.raises(RemoteProtocolError, match="32 devices"):
        parse_description(flat(5000), LOC)


def test_deeply_nested_devices() -> None:
    def chain(n: int) -> bytes:
        inner = ""
        for _ in range(n - 1):
            inner = _device(WANCD1, [], [inner] if inner else [])
        return _root(_device(IGD1, [_service(WANIP1)], [inner] if inner else []))

    assert len(parse_description(chain(20), LOC).root.walk()) == 20
    for n in (33, 1000):
        with pytest.raises(RemoteProtocolError):  # the XML depth cap or the device cap
            parse_description(chain(n), LOC)


def test_service_count_limit() -> None:
    many = [_service(L3F, f"/s{i}") for i in range(64)]
    assert len(parse_description(_igd(*many), LOC).services()) == 64
    with pytest.raises(RemoteProtocolError, match="64 services"):
        parse_description(_igd(*many, _service(L3F)), LOC)


def test_hostile_description() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE root [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><root><device><friendlyName>&b;'
        b"</friendlyName></device></root>"
    )
    with pytest.raises(RemoteProtocolError):
        parse_description(bomb, LOC)
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE root [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<root><device><friendlyName>&x;</friendlyName></device></root>"
    )
    with pytest.raises(RemoteProtocolError):
        parse_description(xxe, LOC)


def test_size_limit() -> None:
    data = _read("rootDesc_igd2.xml")
    assert parse_description(data, LOC, limit=len(data)).root.device_type == IGD2
    with pytest.raises(ResponseTooLarge):
        parse_description(data, LOC, limit=len(data) - 1)


def test_non_utf8_charsets() -> None:
    latin = (
        _root(_device(IGD1, [_service(WANIP1)]))
        .replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="ISO-8859-1"?>')
        .replace(b"<deviceType>", b"<friendlyName>Routeur g\xe9n\xe9ral</friendlyName><deviceType>")
    )
    assert parse_description(latin, LOC).root.friendly_name == "Routeur g\u00e9n\u00e9ral"
    utf16 = (
        _root(_device(IGD1, [_service(WANIP1)]))
        .decode()
        .replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
        .encode("utf-16")
    )
    assert parse_description(utf16, LOC).connection_services()[0].service_type == WANIP1
    undeclared = latin.replace(b' encoding="ISO-8859-1"', b"")
    with pytest.raises(RemoteProtocolError):
        parse_description(undeclared, LOC)


def test_long_strings_are_truncated() -> None:
    dev = _device(IGD1, [_service(WANIP1)]).replace(
        "<deviceType>",
        f"<friendlyName>{'F' * 5000}</friendlyName><UDN>{'u' * 300}</UDN><deviceType>",
    )
    root = parse_description(_root(dev), LOC).root
    assert root.friendly_name == "F" * 256
    assert root.udn == "u" * 256


# -- models: Service / Device / DeviceDescription -----------------------------------------------


@pytest.mark.parametrize(
    ("service_type", "kind", "version"),
    [
        (WANIP1, ServiceKind.WAN_IP, 1),
        (WANIP2, ServiceKind.WAN_IP, 2),
        (PPP1, ServiceKind.WAN_PPP, 1),
        (FW1, ServiceKind.FIREWALL, 1),
        ("urn:dslforum-org:service:WANIPConnection:1", ServiceKind.WAN_IP, 1),
        (L3F, None, 1),
        (f"{URN}:service:WANIPConnection", None, 0),  # no trailing ":"
        (f"{URN}:service:WANIPConnection:", ServiceKind.WAN_IP, 0),
        (f"{URN}:service:WANIPConnection:x", ServiceKind.WAN_IP, 0),
        (f"{URN}:service:WANIPConnection:1000", ServiceKind.WAN_IP, 0),
        (f"{URN}:service:WANIPConnection:\u00b2", ServiceKind.WAN_IP, 0),
        (f"{URN}:service:WANIPConnection:\u0661", ServiceKind.WAN_IP, 0),
        (f"{URN}:service:WANIPConnectionX:1", None, 1),
        ("", None, 0),
    ],
)
def test_service_kind_and_version(
    service_type: str, kind: ServiceKind | None, version: int
) -> None:
    svc = Service(service_type=service_type, service_id="", control_url="")
    assert svc.kind is kind
    assert svc.version == version


def test_device_walk_is_depth_first_preorder() -> None:
    def d(name: str, *children: Device) -> Device:
        return Device(device_type=name, devices=children)

    tree = d("a", d("b", d("c"), d("d")), d("e", d("f")))
    assert [x.device_type for x in tree.walk()] == ["a", "b", "c", "d", "e", "f"]


def test_description_with_no_wan_services() -> None:
    desc = DeviceDescription(location=LOC, root=Device(device_type=IGD1))
    assert desc.services() == []
    assert desc.connection_services() == []
    assert desc.firewall_service() is None


def test_bare_uuid_control_url_is_a_path_on_the_gateway() -> None:
    """Broadcom-style `uuid:<UDN>/WANPPPConnection:1` without a leading slash: miniupnpc
    attaches it to the gateway's root, and so do we (it cannot leave the host)."""
    ctl = "uuid:b90ebdfa-439c-4411-9c20-79a88e224a26/WANPPPConnection:1"
    desc = parse_description(_igd(_service(WANIP1, ctl)), LOC)
    url = desc.connection_services()[0].control_url
    assert url.endswith("/" + ctl)
    assert url.startswith(LOC.split("/")[0] + "//" + LOC.split("/")[2] + "/")
