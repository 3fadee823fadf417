"""SSDP: build M-SEARCH datagrams and parse search answers and NOTIFYs (ssdp.md)."""

from __future__ import annotations

from ..errors import RemoteProtocolError
from ..models import SearchResponse

__all__ = [
    "SSDP_ADDR",
    "SSDP_ADDR_V6",
    "SSDP_PORT",
    "MAX_DATAGRAM",
    "IGD_SEARCH_TARGETS",
    "build_msearch",
    "parse_ssdp",
]

SSDP_ADDR = "239.255.255.250"
SSDP_ADDR_V6 = "ff02::c"
SSDP_PORT = 1900
#: Larger answers are refused unparsed; 1500 is one Ethernet frame and miniupnpc reads 1536.
MAX_DATAGRAM = 2048
_MAX_HEADERS = 40
_MAX_LOCATION = 1024

#: What ``discover()`` searches for: every IGD root and connection service type.
IGD_SEARCH_TARGETS = (
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
    "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
)

USER_AGENT = "Linux/1 UPnP/1.1 aioigd/0.1"


def build_msearch(st: str, *, host: str = f"{SSDP_ADDR}:{SSDP_PORT}", mx: int = 2) -> bytes:
    """Build one M-SEARCH request.

    Args:
        st: the search target, e.g. ``urn:schemas-upnp-org:device:InternetGatewayDevice:1``.
        host: the HOST header: the multicast group, or ``ip:port`` for a unicast search.
        mx: seconds a device may wait before answering (clamped to 1..5 as UDA 1.1 asks).

    Returns:
        The datagram, CRLF-terminated with the empty line.
    """
    if any(c in st or c in host for c in "\r\n"):
        raise ValueError("search target and host must be one line each")
    mx = min(max(int(mx), 1), 5)
    lines = [
        "M-SEARCH * HTTP/1.1",
        f"HOST: {host}",
        'MAN: "ssdp:discover"',
        f"MX: {mx}",
        f"ST: {st}",
        f"USER-AGENT: {USER_AGENT}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines[:_MAX_HEADERS]:
        if not line.strip():
            break
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            continue  # tolerate junk lines, as devices emit them
        headers.setdefault(name.strip().lower(), value.strip())
    return headers


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    # isascii(): str.isdigit() is also true for "²" (int() raises) and other scripts' digits.
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None


def parse_ssdp(data: bytes, sender: str = "") -> SearchResponse | None:
    """Parse one SSDP datagram.

    Returns a :class:`SearchResponse` for a search answer (``HTTP/1.x 200``) or a
    NOTIFY, and ``None`` for datagrams a client should silently ignore (other
    control points' M-SEARCHes). Header names are case-insensitive, ``\\n`` is
    accepted for ``\\r\\n``, EXT may be missing.

    Raises:
        RemoteProtocolError: the datagram is not SSDP, is too large, or lacks
            LOCATION/ST.
    """
    if len(data) > MAX_DATAGRAM:
        raise RemoteProtocolError(f"SSDP datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip().upper()
    if start.startswith("M-SEARCH"):
        return None
    is_notify = start.startswith("NOTIFY ")
    if not is_notify:
        parts = start.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "200":
            raise RemoteProtocolError(f"not an SSDP answer: {lines[0][:60]!r}")
    headers = _headers(lines[1:])
    nts = headers.get("nts", "")
    location = headers.get("location", "")
    st = headers.get("nt" if is_notify else "st", "")
    if is_notify and nts == "ssdp:byebye":
        location = location or "-"
    if not location or not st:
        raise RemoteProtocolError("SSDP answer without LOCATION or ST")
    if len(location) > _MAX_LOCATION or any(ord(c) < 0x21 or ord(c) > 0x7E for c in location):
        raise RemoteProtocolError("SSDP LOCATION is too long or has invalid characters")
    max_age = None
    for directive in headers.get("cache-control", "").split(","):
        key, _, value = directive.partition("=")
        if key.strip().lower() == "max-age":
            max_age = _int_or_none(value)
    boot = headers.get("bootid.upnp.org") or headers.get("01-nls", "")
    return SearchResponse(
        location=location,
        st=st,
        usn=headers.get("usn", ""),
        server=headers.get("server", "")[:256],
        max_age=max_age,
        boot_id=_int_or_none(boot),
        sender=sender,
        is_notify=is_notify,
        nts=nts,
    )
