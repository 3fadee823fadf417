"""HTTP/1.1 for the stdlib client: build a request, parse a reply's head and chunk sizes (no I/O).

Only what a UPnP control point needs from a LAN gateway: one request per
connection (``Connection: close``), replies framed by Content-Length, chunked
encoding or the end of the connection. Lenient where firmware is sloppy (bare
LF line ends, HTTP/1.0, no reason phrase), strict where framing is at stake
(two different Content-Lengths, a non-numeric length or chunk size).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import RemoteProtocolError

__all__ = [
    "MAX_HEAD_SIZE",
    "MAX_HEADERS",
    "Head",
    "build_request",
    "parse_status_line",
    "parse_header_line",
    "head_from_lines",
    "parse_chunk_size",
]

#: h11 caps an incomplete head at 16 KiB; a gateway's reply head is a few hundred bytes.
MAX_HEAD_SIZE = 16 * 1024
#: Header lines accepted in one reply head.
MAX_HEADERS = 100


@dataclass(frozen=True)
class Head:
    """A reply's status line and the headers that matter for framing and redirects."""

    status: int
    #: Content-Length, or ``None`` when absent.
    content_length: int | None = None
    chunked: bool = False
    location: str = ""


def build_request(
    method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """The bytes of one request; the connection closes after the reply."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + (body or b"")


def parse_status_line(line: bytes) -> int:
    """The status code of ``HTTP/1.x NNN [reason]``.

    Raises:
        RemoteProtocolError: anything else.
    """
    parts = line.strip().split(None, 2)
    if (
        len(parts) < 2
        or not parts[0].startswith(b"HTTP/1.")
        or len(parts[1]) != 3
        or not parts[1].isdigit()
    ):
        raise RemoteProtocolError(f"malformed HTTP status line {line[:80]!r}")
    return int(parts[1])


def parse_header_line(line: bytes) -> tuple[str, str]:
    """``(lower-case name, value)`` of one header line."""
    name, sep, value = line.partition(b":")
    name = name.strip()
    if not sep or not name or b" " in name:
        raise RemoteProtocolError(f"malformed HTTP header line {line[:80]!r}")
    return name.decode("latin-1").lower(), value.strip().decode("latin-1")


def head_from_lines(status: int, lines: list[bytes]) -> Head:
    """Fold the header lines after the status line into a :class:`Head`.

    Raises:
        RemoteProtocolError: conflicting or malformed framing headers.
    """
    if len(lines) > MAX_HEADERS:
        raise RemoteProtocolError(f"more than {MAX_HEADERS} header lines")
    length: int | None = None
    chunked = False
    location = ""
    for line in lines:
        name, value = parse_header_line(line)
        if name == "content-length":
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise RemoteProtocolError(f"malformed Content-Length {value[:20]!r}")
            if length is not None and length != int(value):
                raise RemoteProtocolError("two different Content-Length headers")
            length = int(value)
        elif name == "transfer-encoding":
            codings = [c.strip().lower() for c in value.split(",")]
            if codings[-1] == "chunked":
                chunked = True
            elif codings != ["identity"]:
                raise RemoteProtocolError(f"unsupported Transfer-Encoding {value[:40]!r}")
        elif name == "location":
            location = value
    # RFC 9112 §6.3: chunked wins over a Content-Length.
    return Head(status, None if chunked else length, chunked, location)


def parse_chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line (extensions ignored).

    Raises:
        RemoteProtocolError: not a hexadecimal size.
    """
    size = line.split(b";", 1)[0].strip()
    if not size or len(size) > 8 or any(c not in b"0123456789abcdefABCDEF" for c in size):
        raise RemoteProtocolError(f"malformed chunk size {line[:40]!r}")
    return int(size, 16)
