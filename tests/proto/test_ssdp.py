"""SSDP: M-SEARCH bytes and search-answer / NOTIFY parsing (ssdp.md), table-driven."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioigd.errors import RemoteProtocolError
from aioigd.models import SearchResponse
from aioigd.proto.ssdp import (
    IGD_SEARCH_TARGETS,
    MAX_DATAGRAM,
    SSDP_ADDR,
    SSDP_PORT,
    build_msearch,
    parse_ssdp,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED_ANSWER = (FIXTURES / "broadcom_seed" / "ssdp_answer.txt").read_bytes()
MINIUPNPD_ANSWER = (FIXTURES / "miniupnpd" / "ssdp_answer_igd1_st.txt").read_bytes()

IGD1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
PPP1 = "urn:schemas-upnp-org:service:WANPPPConnection:1"
SEED_LOCATION = "http://192.168.1.1:5431/dyndev/uuid:4f8c8842-6733-4e8b-806f-c1dfa99deb5a"
SEED_USN = "uuid:b90ebdfa-439c-4411-9c20-79a88e224a26::" + PPP1
UA = "Linux/1 UPnP/1.1 aioigd/0.1"


def _msearch(mx: int, st: str = IGD1, host: str = "239.255.255.250:1900") -> bytes:
    return (
        f'M-SEARCH * HTTP/1.1\r\nHOST: {host}\r\nMAN: "ssdp:discover"\r\nMX: {mx}\r\n'
        f"ST: {st}\r\nUSER-AGENT: {UA}\r\n\r\n"
    ).encode()


# -- build_msearch ------------------------------------------------------------------------------


def test_build_msearch_exact_bytes() -> None:
    assert build_msearch(IGD1) == (
        b"M-SEARCH * HTTP/1.1\r\n"
        b"HOST: 239.255.255.250:1900\r\n"
        b'MAN: "ssdp:discover"\r\n'
        b"MX: 2\r\n"
        b"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
        b"USER-AGENT: Linux/1 UPnP/1.1 aioigd/0.1\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize(
    ("mx", "sent"),
    [(-5, 1), (0, 1), (1, 1), (2, 2), (3, 3), (5, 5), (6, 5), (120, 5), (2.9, 2)],
)
def test_build_msearch_clamps_mx(mx: int, sent: int) -> None:
    assert build_msearch(IGD1, mx=mx) == _msearch(sent)


@pytest.mark.parametrize(
    ("host", "st"),
    [
        ("192.168.1.1:1900", IGD1),  # unicast search
        ("[ff02::c]:1900", IGD1),
        (f"{SSDP_ADDR}:{SSDP_PORT}", "ssdp:all"),
        (f"{SSDP_ADDR}:{SSDP_PORT}", "upnp:rootdevice"),
        *((f"{SSDP_ADDR}:{SSDP_PORT}", st) for st in IGD_SEARCH_TARGETS),
    ],
)
def test_build_msearch_host_and_st(host: str, st: str) -> None:
    assert build_msearch(st, host=host, mx=3) == _msearch(3, st, host)


def test_build_msearch_ends_with_one_empty_line() -> None:
    data = build_msearch(IGD1)
    assert data.endswith(b"\r\n\r\n") and not data.endswith(b"\r\n\r\n\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    ("st", "host"),
    [
        (IGD1 + "\r\nX-Injected: 1", f"{SSDP_ADDR}:{SSDP_PORT}"),
        (IGD1 + "\n", f"{SSDP_ADDR}:{SSDP_PORT}"),
        (IGD1 + "\r", f"{SSDP_ADDR}:{SSDP_PORT}"),
        (IGD1, "192.168.1.1:1900\r\nMX: 9"),
        (IGD1, "192.168.1.1:1900\n"),
    ],
)
def test_build_msearch_refuses_header_injection(st: str, host: str) -> None:
    with pytest.raises(ValueError):
        build_msearch(st, host=host)


def test_own_msearch_echo_is_ignored() -> None:
    # Our multicast search comes back to our own socket: it must be skipped, not an error.
    assert parse_ssdp(build_msearch(IGD1), sender="192.168.1.2") is None


# -- parse_ssdp: real captures ------------------------------------------------------------------

SEED_EXPECTED = SearchResponse(
    location=SEED_LOCATION,
    st=PPP1,
    usn=SEED_USN,
    server="Custom/1.0 UPnP/1.0 Proc/Ver",
    max_age=1800,
    boot_id=None,
    sender="192.168.1.1",
)


def test_seed_answer_as_captured() -> None:
    # Mixed-case names, `Cache-Control:max-age=1800` and `ST:urn...` without a space, empty EXT.
    assert parse_ssdp(SEED_ANSWER, sender="192.168.1.1") == SEED_EXPECTED


def test_seed_answer_with_lf_line_ends() -> None:
    data = SEED_ANSWER.replace(b"\r\n", b"\n")
    assert parse_ssdp(data, sender="192.168.1.1") == SEED_EXPECTED


def test_seed_answer_without_final_empty_line() -> None:
    assert parse_ssdp(SEED_ANSWER.rstrip(), sender="192.168.1.1") == SEED_EXPECTED


def test_miniupnpd_answer() -> None:
    answer = parse_ssdp(MINIUPNPD_ANSWER, sender="192.168.1.1")
    assert answer == SearchResponse(
        location="http://192.168.1.1:5000/rootDesc.xml",
        st=IGD1,
        usn="uuid:73139107-818d-43ba-825b-84e5366ac425::" + IGD1,
        server="Debian/6.18.44-fc-v669 UPnP/1.1 MiniUPnPd/2.3.1",
        max_age=120,
        boot_id=1795632617,
        sender="192.168.1.1",
    )


# -- parse_ssdp: header syntax variants ---------------------------------------------------------

LOC = "http://192.168.1.1:5000/rootDesc.xml"


def _answer(
    *headers: str, start: str = "HTTP/1.1 200 OK", eol: str = "\r\n", encoding: str = "utf-8"
) -> bytes:
    return (eol.join([start, *headers]) + eol + eol).encode(encoding)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            _answer(f"location: {LOC}", f"st: {IGD1}", "usn: uuid:1", "ext:"),
            {"location": LOC, "st": IGD1, "usn": "uuid:1"},
            id="lowercase-names",
        ),
        pytest.param(
            _answer(f"LoCaTiOn: {LOC}", f"St: {IGD1}"),
            {"location": LOC, "st": IGD1, "usn": ""},
            id="mixed-case-no-usn-no-ext",
        ),
        pytest.param(
            _answer(f"LOCATION:{LOC}", f"ST:{IGD1}", "USN:uuid:1", eol="\n"),
            {"location": LOC, "st": IGD1, "usn": "uuid:1"},
            id="lf-no-spaces",
        ),
        pytest.param(
            _answer(f"LOCATION :   {LOC}   ", f"  ST\t:\t{IGD1}\t", "USN:  uuid:1 "),
            {"location": LOC, "st": IGD1, "usn": "uuid:1"},
            id="odd-whitespace",
        ),
        pytest.param(
            _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", start="HTTP/1.0 200 OK"),
            {"location": LOC, "st": IGD1},
            id="http-1.0",
        ),
        pytest.param(
            _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", start="HTTP/1.1 200"),
            {"location": LOC, "st": IGD1},
            id="no-reason-phrase",
        ),
        pytest.param(
            _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", start="http/1.1 200 ok"),
            {"location": LOC, "st": IGD1},
            id="lowercase-start-line",
        ),
        pytest.param(
            _answer(f"LOCATION: {LOC}", "LOCATION: http://10.0.0.1/other.xml", f"ST: {IGD1}"),
            {"location": LOC},
            id="duplicate-header-first-wins",
        ),
        pytest.param(
            _answer("junk line without colon", ": no name", f"LOCATION: {LOC}", f"ST: {IGD1}"),
            {"location": LOC, "st": IGD1},
            id="junk-lines-tolerated",
        ),
        pytest.param(
            _answer(
                f"LOCATION: {LOC}",
                f"ST: {IGD1}",
                "SERVER: Routeur \xe9t\xe9/1.0",
                encoding="latin-1",
            ),
            {"server": "Routeur \xe9t\xe9/1.0"},
            id="latin-1-server",
        ),
        pytest.param(
            _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", "SERVER: Routeur \xe9t\xe9/1.0"),
            {"server": "Routeur \xe9t\xe9/1.0"},
            id="utf-8-server",
        ),
        pytest.param(
            _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", "SERVER: " + "x" * 600),
            {"server": "x" * 256},
            id="server-truncated",
        ),
        pytest.param(
            _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", "", "X-AFTER-BLANK: 1", "USN: uuid:late"),
            {"usn": ""},
            id="headers-end-at-blank-line",
        ),
    ],
)
def test_parse_ssdp_header_variants(data: bytes, expected: dict[str, object]) -> None:
    answer = parse_ssdp(data, sender="192.168.1.1")
    assert answer is not None
    for field, value in expected.items():
        assert getattr(answer, field) == value, field
    assert answer.sender == "192.168.1.1"
    assert answer.is_notify is False


@pytest.mark.parametrize(
    ("cache_control", "max_age"),
    [
        ("CACHE-CONTROL: max-age=1800", 1800),
        ("Cache-Control:max-age=1800", 1800),
        ("cache-control: MAX-AGE = 60", 60),
        ('Cache-Control: no-cache="Ext", max-age=5000', 5000),
        ("Cache-Control: max-age=0", 0),
        ("Cache-Control: max-age=abc", None),
        ("Cache-Control: max-age=-1", None),
        ("Cache-Control: max-age=99999999999", None),  # 11 digits: refused, not a huge int
        ("Cache-Control: max-age=\u00b2", None),  # a Unicode digit int() cannot read
        ("Cache-Control: max-age=\u0661\u0662", None),  # Arabic-Indic digits
        ("Cache-Control: no-cache", None),
        ("X-Other: 1", None),
    ],
)
def test_parse_ssdp_max_age(cache_control: str, max_age: int | None) -> None:
    answer = parse_ssdp(_answer(f"LOCATION: {LOC}", f"ST: {IGD1}", cache_control))
    assert answer is not None and answer.max_age == max_age


@pytest.mark.parametrize(
    ("headers", "boot_id"),
    [
        (["BOOTID.UPNP.ORG: 7"], 7),
        (["bootid.upnp.org:1795632617"], 1795632617),
        (["01-NLS: 42"], 42),  # miniupnpd sends the boot id in 01-NLS too
        (["01-NLS: 42", "BOOTID.UPNP.ORG: 43"], 43),  # BOOTID wins
        (["01-NLS: 1d2f0e42-1dd2-11b2-9b8c-a8d7f1c2b3e4"], None),  # libupnp: a UUID
        (["BOOTID.UPNP.ORG: -1"], None),
        (["BOOTID.UPNP.ORG: \u00b2"], None),
        (["BOOTID.UPNP.ORG: "], None),
        ([], None),
    ],
)
def test_parse_ssdp_boot_id(headers: list[str], boot_id: int | None) -> None:
    answer = parse_ssdp(_answer(f"LOCATION: {LOC}", f"ST: {IGD1}", *headers))
    assert answer is not None and answer.boot_id == boot_id


# -- NOTIFY and other control points' searches --------------------------------------------------


def _notify(nts: str, *extra: str) -> bytes:
    return _answer(
        "HOST: 239.255.255.250:1900",
        f"NT: {IGD1}",
        f"NTS: {nts}",
        "USN: uuid:1::" + IGD1,
        *extra,
        start="NOTIFY * HTTP/1.1",
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            _notify("ssdp:alive", f"LOCATION: {LOC}", "CACHE-CONTROL: max-age=1800"),
            SearchResponse(
                LOC, IGD1, "uuid:1::" + IGD1, "", 1800, None, "10.0.0.1", True, "ssdp:alive"
            ),
            id="alive",
        ),
        pytest.param(
            _notify("ssdp:byebye", "BOOTID.UPNP.ORG: 3"),
            SearchResponse(
                "-", IGD1, "uuid:1::" + IGD1, "", None, 3, "10.0.0.1", True, "ssdp:byebye"
            ),
            id="byebye-without-location",
        ),
        pytest.param(
            _notify("ssdp:byebye", f"LOCATION: {LOC}"),
            SearchResponse(
                LOC, IGD1, "uuid:1::" + IGD1, "", None, None, "10.0.0.1", True, "ssdp:byebye"
            ),
            id="byebye-with-location",
        ),
        pytest.param(
            _notify(
                "ssdp:update", f"LOCATION: {LOC}", "BOOTID.UPNP.ORG: 4", "NEXTBOOTID.UPNP.ORG: 5"
            ),
            SearchResponse(
                LOC, IGD1, "uuid:1::" + IGD1, "", None, 4, "10.0.0.1", True, "ssdp:update"
            ),
            id="update",
        ),
    ],
)
def test_parse_ssdp_notify(data: bytes, expected: SearchResponse) -> None:
    assert parse_ssdp(data, sender="10.0.0.1") == expected


@pytest.mark.parametrize(
    "data",
    [
        _msearch(2),
        _msearch(2).replace(b"\r\n", b"\n"),
        _msearch(2).replace(b"M-SEARCH", b"m-search"),
        b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n\r\n',
        b"M-SEARCH",
    ],
)
def test_other_control_points_search_is_ignored(data: bytes) -> None:
    assert parse_ssdp(data, sender="192.168.1.77") is None


# -- refused datagrams --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\x01\x02\xff", id="binary"),
        pytest.param(b"hello world", id="text"),
        pytest.param(b"\r\n\r\n", id="blank"),
        pytest.param(
            _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", start="HTTP/1.1 404 Not Found"), id="404"
        ),
        pytest.param(
            _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", start="HTTP/1.1 200OK"), id="200OK"
        ),
        pytest.param(_answer(f"LOCATION: {LOC}", f"ST: {IGD1}", start="HTTP/2 200 OK"), id="http2"),
        pytest.param(_answer(f"LOCATION: {LOC}", f"ST: {IGD1}", start="GET / HTTP/1.1"), id="get"),
        pytest.param(
            _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", start="SSDP/1.1 200 OK"), id="ssdp"
        ),
        pytest.param(_answer(f"ST: {IGD1}", "USN: uuid:1"), id="no-location"),
        pytest.param(_answer("LOCATION:", f"ST: {IGD1}"), id="empty-location"),
        pytest.param(_answer(f"LOCATION: {LOC}", "USN: uuid:1"), id="no-st"),
        pytest.param(_notify("ssdp:alive"), id="alive-no-location"),
        pytest.param(
            _answer("HOST: 239.255.255.250:1900", "NTS: ssdp:byebye", start="NOTIFY * HTTP/1.1"),
            id="byebye-no-nt",
        ),
        pytest.param(
            _answer(*(f"X-JUNK-{i}: 1" for i in range(50)), f"LOCATION: {LOC}", f"ST: {IGD1}"),
            id="location-after-40-headers",
        ),
    ],
)
def test_parse_ssdp_refuses(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_ssdp(data, sender="192.168.1.1")


@pytest.mark.parametrize(
    "location",
    [
        "http://192.168.1.1:5000/root Desc.xml",
        "http://192.168.1.1:5000/root\tDesc.xml",
        "http://192.168.1.1:5000/root\x7fDesc.xml",
        "http://192.168.1.1:5000/root\x01Desc.xml",
        "http://192.168.1.1:5000/r\u00e9sum\u00e9.xml",
        "http://192.168.1.1:5000/" + "a" * 1001,  # 1025 characters
    ],
    ids=["space", "tab", "del", "ctrl", "non-ascii", "too-long"],
)
def test_parse_ssdp_refuses_bad_location(location: str) -> None:
    data = _answer(f"LOCATION: {location}", f"ST: {IGD1}")
    assert len(data) <= MAX_DATAGRAM
    with pytest.raises(RemoteProtocolError, match="LOCATION"):
        parse_ssdp(data)


def test_parse_ssdp_location_length_boundary() -> None:
    location = "http://192.168.1.1:5000/" + "a" * 1000
    assert len(location) == 1024
    answer = parse_ssdp(_answer(f"LOCATION: {location}", f"ST: {IGD1}"))
    assert answer is not None and answer.location == location


def test_parse_ssdp_size_cap() -> None:
    head = _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", "X-PAD: ")
    pad = MAX_DATAGRAM - len(head)
    fits = _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", "X-PAD: " + "p" * pad)
    assert len(fits) == MAX_DATAGRAM
    assert parse_ssdp(fits) is not None
    too_big = _answer(f"LOCATION: {LOC}", f"ST: {IGD1}", "X-PAD: " + "p" * (pad + 1))
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        parse_ssdp(too_big)
    with pytest.raises(RemoteProtocolError):
        parse_ssdp(_msearch(2) + b"x" * MAX_DATAGRAM)  # size is checked before anything else
