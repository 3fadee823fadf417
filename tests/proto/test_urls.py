"""URL rules: resolving description URLs and refusing the ones that leave the gateway."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioigd.errors import RemoteProtocolError, UnsafeURLError
from aioigd.proto.urls import MAX_URL_LENGTH, check_url, resolve_url, same_host, url_host

LOC = "http://192.168.1.1:5000/rootDesc.xml"
BRCM_LOC = "http://192.168.1.1:5431/dyndev/uuid:4f8c8842-6733-4e8b-806f-c1dfa99deb5a"
BRCM_CTL = "/uuid:b90ebdfa-439c-4411-9c20-79a88e224a26/WANPPPConnection:1"


@pytest.mark.parametrize(
    ("relative", "location", "url_base", "expected"),
    [
        pytest.param(
            "http://192.168.1.1:5000/ctl/IPConn",
            LOC,
            "",
            "http://192.168.1.1:5000/ctl/IPConn",
            id="absolute",
        ),
        pytest.param(
            "http://192.168.1.1:5000/ctl/IPConn",
            LOC,
            "http://10.9.9.9/",
            "http://192.168.1.1:5000/ctl/IPConn",
            id="absolute-ignores-urlbase",
        ),
        pytest.param(
            "/ctl/IPConn", LOC, "", "http://192.168.1.1:5000/ctl/IPConn", id="leading-slash"
        ),
        pytest.param(
            "ctl/IPConn", LOC, "", "http://192.168.1.1:5000/ctl/IPConn", id="no-slash-at-root"
        ),
        pytest.param(
            "upnp/control/WANIPConn1",
            "http://192.168.1.1:49152/7a57/gatedesc.xml",
            "",
            "http://192.168.1.1:49152/7a57/upnp/control/WANIPConn1",
            id="no-slash-rfc3986-directory",  # igd-description.md: RFC 3986, not miniupnpc's join
        ),
        pytest.param(
            "/upnp/control/WANIPConn1",
            "http://192.168.1.1:49152/7a57/gatedesc.xml",
            "",
            "http://192.168.1.1:49152/upnp/control/WANIPConn1",
            id="slash-from-subdirectory",
        ),
        pytest.param("../ctl", "http://gw/a/b/desc.xml", "", "http://gw/a/ctl", id="dot-dot"),
        pytest.param(
            "/ctl/IPConn",
            LOC,
            "http://192.168.1.1:49152/",
            "http://192.168.1.1:49152/ctl/IPConn",
            id="urlbase",
        ),
        pytest.param(
            "ctl/IPConn",
            LOC,
            "http://192.168.1.1:49152/base/",
            "http://192.168.1.1:49152/base/ctl/IPConn",
            id="urlbase-directory",
        ),
        pytest.param(
            "  /ctl/IPConn\n",
            LOC,
            "\n  http://192.168.1.1:49152/  ",
            "http://192.168.1.1:49152/ctl/IPConn",
            id="whitespace-stripped",
        ),
        pytest.param("/ctl", LOC, "   ", "http://192.168.1.1:5000/ctl", id="blank-urlbase"),
        pytest.param(BRCM_CTL, BRCM_LOC, "", "http://192.168.1.1:5431" + BRCM_CTL, id="broadcom"),
        pytest.param(
            "/ctl?x=1#frag",
            LOC,
            "",
            "http://192.168.1.1:5000/ctl?x=1#frag",
            id="query",
        ),
        pytest.param(
            "/ctl/IPConn",
            "http://[fe80::1%25eth0]:5000/rootDesc.xml",
            "",
            "http://[fe80::1%25eth0]:5000/ctl/IPConn",
            id="ipv6-link-local-zone-kept",
        ),
        pytest.param(
            "//evil.example/ctl",
            LOC,
            "",
            "http://evil.example/ctl",
            id="scheme-relative-leaves",
        ),
        pytest.param(
            # A bare "uuid:..." would be an absolute URI with scheme "uuid" (RFC 3986);
            # like miniupnpc, aioigd reads it as a path on the gateway's root.
            BRCM_CTL.lstrip("/"),
            BRCM_LOC,
            "",
            "http://192.168.1.1:5431" + BRCM_CTL,
            id="uuid-scheme-trap",
        ),
    ],
)
def test_resolve_url(relative: str, location: str, url_base: str, expected: str) -> None:
    assert resolve_url(relative, location=location, url_base=url_base) == expected


@pytest.mark.parametrize("relative", ["http://[::1", "http://[192.168.1.1]/x", "http://[fe80::1/"])
def test_resolve_url_malformed_is_unsafe_url(relative: str) -> None:
    with pytest.raises(UnsafeURLError):
        resolve_url(relative, location=LOC)


@pytest.mark.parametrize(
    "url",
    [
        "http://192.168.1.1:5000/ctl/IPConn",
        "http://192.168.1.1/ctl",
        "HTTP://192.168.1.1/ctl",
        "http://router.lan:5000/ctl",
        "http://[2001:db8::1]:5000/ctl",
        "http://[fe80::1%25eth0]:5000/ctl",
        "http://192.168.1.1:65535/ctl",
        "http://192.168.1.1:5431" + BRCM_CTL,
        "http://192.168.1.1/" + "a" * (MAX_URL_LENGTH - len("http://192.168.1.1/")),
    ],
)
def test_check_url_accepts(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("ftp://192.168.1.1/x", id="ftp"),
        pytest.param("https://192.168.1.1/x", id="https"),
        pytest.param("gopher://192.168.1.1:70/x", id="gopher"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("uuid:b90ebdfa/WANPPPConnection:1", id="uuid-scheme"),
        pytest.param("/ctl/IPConn", id="relative"),
        pytest.param("", id="empty"),
        pytest.param("http:///ctl", id="no-host"),
        pytest.param("http://:5000/ctl", id="port-no-host"),
        pytest.param("http://user@192.168.1.1/ctl", id="user"),
        pytest.param("http://user:pw@192.168.1.1/ctl", id="user-password"),
        pytest.param("http://192.168.1.1@evil.example/ctl", id="at-host"),
        pytest.param("http://192.168.1.1:0/ctl", id="port-0"),
        pytest.param("http://192.168.1.1:65536/ctl", id="port-65536"),
        pytest.param("http://192.168.1.1:-1/ctl", id="port-negative"),
        pytest.param("http://192.168.1.1:http/ctl", id="port-name"),
        pytest.param("http://[::1/ctl", id="unclosed-bracket"),
        pytest.param("http://192.168.1.1/" + "a" * MAX_URL_LENGTH, id="too-long"),
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        check_url(url)


def test_unsafe_url_is_a_remote_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        check_url("file:///etc/passwd")


@pytest.mark.parametrize(
    ("url", "allowed", "ok"),
    [
        ("http://192.168.1.1:5000/ctl", "192.168.1.1", True),
        ("http://192.168.1.1:49152/ctl", "192.168.1.1", True),  # another port, same host
        ("http://192.168.1.2/ctl", "192.168.1.1", False),
        ("http://10.0.0.1/ctl", "192.168.1.1", False),
        ("http://127.0.0.1/ctl", "192.168.1.1", False),
        ("http://evil.example/ctl", "192.168.1.1", False),
        ("http://192.168.1.1.nip.io/ctl", "192.168.1.1", False),
        ("http://3232235777/ctl", "192.168.1.1", False),  # 192.168.1.1 as a decimal
        ("http://0xc0a80101/ctl", "192.168.1.1", False),
        ("http://Router.LAN/ctl", "router.lan", True),
        ("http://[2001:db8::1]/ctl", "2001:db8:0:0::1", True),
        ("http://[2001:DB8::1]/ctl", "2001:db8::1", True),
        ("http://[fe80::1%25eth0]:5000/ctl", "fe80::1", True),
        ("http://[fe80::1%25eth0]:5000/ctl", "fe80::1%eth0", True),
        ("http://[fe80::2]:5000/ctl", "fe80::1", False),
        ("http://[::1]/ctl", "127.0.0.1", False),
    ],
)
def test_check_url_allowed_host(url: str, allowed: str, ok: bool) -> None:
    if ok:
        assert check_url(url, allowed_host=allowed) == url
    else:
        with pytest.raises(UnsafeURLError, match="not the gateway"):
            check_url(url, allowed_host=allowed)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("192.168.1.1", "192.168.1.1", True),
        ("192.168.1.1", "192.168.1.10", False),
        ("[::1]", "0:0:0:0:0:0:0:1", True),
        ("2001:DB8::1", "2001:db8:0:0:0:0:0:1", True),
        ("fe80::1%eth0", "fe80::1", True),
        ("[fe80::1%25eth0]", "FE80::1", True),
        ("fe80::1", "fe80::2", False),
        ("Router.LAN", "router.lan", True),
        ("router.lan", "router.lan.", False),
        ("192.168.1.1", "router.lan", False),
        ("::ffff:192.168.1.1", "192.168.1.1", False),  # strict: a mapped address is not equal
    ],
)
def test_same_host(a: str, b: str, same: bool) -> None:
    assert same_host(a, b) is same
    assert same_host(b, a) is same


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://192.168.1.1:5000/rootDesc.xml", "192.168.1.1"),
        ("http://Router.Lan/x", "router.lan"),
        ("http://[FE80::1%25eth0]:5000/x", "fe80::1"),
        ("http://[2001:db8:0::1]/x", "2001:db8::1"),
        ("http://user@10.0.0.1/x", "10.0.0.1"),
        ("http://[::1", ""),
        ("not a url", ""),
        ("", ""),
    ],
)
def test_url_host(url: str, host: str) -> None:
    assert url_host(url) == host


@pytest.mark.parametrize(
    "url",
    [
        "http://192.168.1.1:5000/ctl\r\nX-Injected: 1",
        "http://192.168.1.1:5000/c tl",
        "http://192.168.1.1:5000/ctl\x00",
        "http://192.168.1.1:5000/\tctl",
    ],
)
def test_check_url_refuses_whitespace_and_control_characters(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        check_url(url)


_PATH_CHARS = st.sampled_from(list("/.?#;=&%:@[]abzAZ09-_~ ") + ["\t", "\n", "\x00", "é", "\u2028"])


@settings(max_examples=3000, deadline=None)
@given(
    relative=st.text(_PATH_CHARS, max_size=24).map(lambda t: "/" + t),
    base=st.sampled_from(
        [
            LOC,
            "http://192.168.1.1:5000/rootDesc.xml?x=1#f",
            "HTTP://Router.Local/a/b/",
            "http://[fe80::1%25eth0]:49152/desc",
            "https://10.0.0.1",
            "http://10.0.0.1?q",
            "ftp://10.0.0.1/x",
            "uuid:abc/def",
            "",
        ]
    ),
)
def test_resolve_url_absolute_path_matches_urljoin(relative: str, base: str) -> None:
    # The shortcut for "/path" references must give exactly what urljoin gives (and
    # refuse what urlsplit cannot split).
    try:
        urlsplit(relative.strip())
        expected: str | None = urljoin(base, relative.strip())
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(UnsafeURLError):
            resolve_url(relative, location=base)
    else:
        assert resolve_url(relative, location=base) == expected
