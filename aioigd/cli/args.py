"""Command-line parsing: every value is checked here, before any socket is opened.

Type functions raise :class:`argparse.ArgumentTypeError` with the message the
user sees ("invalid port: 'abc' (1..65535)"), never argparse's default text
built from the function's name. :class:`Parser` turns every argparse error into
one :class:`argparse.ArgumentError` (no usage dump, no ``SystemExit``) so that
``main`` can print one line, and a JSON object under ``--json``.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
from typing import NoReturn

from ..errors import UnsafeURLError
from ..models import MappingProtocol, parse_protocols
from ..proto.urls import check_url
from .common import ExitCode

__all__ = [
    "Parser",
    "port",
    "port_or_any",
    "port_range",
    "seconds",
    "lease",
    "pinhole_lease",
    "layers",
    "transport",
    "transports",
    "search_target",
    "location_url",
    "via_hint",
    "ip_address",
    "unique_id",
    "epilog",
]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised, not printed with the usage."""

    def error(self, message: str) -> NoReturn:
        # Subparser errors pass through the parent's error(): keep the first prog.
        first = self.prog.split()[0]
        if not message.startswith((first + " ", first + ":")):
            message = f"{self.prog}: {message}"
        raise argparse.ArgumentError(None, message)


def _bad(what: str, text: str, want: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"invalid {what}: {text[:80]!r} ({want})")


def _int(text: str, what: str, low: int, high: int, want: str) -> int:
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 9:
        raise _bad(what, text, want)
    value = int(stripped)
    if not low <= value <= high:
        raise _bad(what, text, want)
    return value


def port(text: str) -> int:
    """A port 1..65535."""
    return _int(text, "port", 1, 65535, "1..65535")


def port_or_any(text: str) -> int:
    """A port, or 0 for any."""
    return _int(text, "port", 0, 65535, "0..65535, 0 = any")


def port_range(text: str) -> tuple[int, int]:
    """``P`` or ``LOW-HIGH`` (inclusive)."""
    low, sep, high = text.partition("-")
    if not sep:
        p = port(text)
        return p, p
    want = "PORT or LOW-HIGH, 1..65535"
    first, last = _int(low, "port range", 1, 65535, want), _int(high, "port range", 1, 65535, want)
    if first > last:
        raise _bad("port range", text, "LOW must not exceed HIGH")
    return first, last


def seconds(text: str) -> float:
    """A duration in seconds, > 0 and finite."""
    try:
        value = float(text)
    except ValueError:
        raise _bad("duration", text, "seconds, a number > 0") from None
    if not math.isfinite(value) or value <= 0 or value > 86400:
        raise _bad("duration", text, "seconds, a number > 0 and at most 86400")
    return value


def lease(text: str) -> int:
    """A lease in seconds, 0 = permanent."""
    return _int(text, "lease", 0, 604800, "seconds 0..604800, 0 = permanent")


def pinhole_lease(text: str) -> int:
    """A pinhole lease, 1..86400 s."""
    return _int(text, "pinhole lease", 1, 86400, "seconds 1..86400")


def unique_id(text: str) -> int:
    """A pinhole UniqueID (ui2)."""
    return _int(text, "pinhole id", 0, 65535, "0..65535")


def layers(text: str) -> str | int:
    """``auto`` or 1..4."""
    if text == "auto":
        return text
    return _int(text, "layer count", 1, 4, "'auto' or 1..4")


def transport(text: str) -> str:
    """TCP or UDP (any case)."""
    if text.strip().upper() not in ("TCP", "UDP"):
        raise _bad("protocol", text, "TCP or UDP")
    return text.strip().upper()


def protocols(text: str) -> tuple[MappingProtocol, ...]:
    """``--protocols upnp,pcp,natpmp``: the mapping protocols, most preferred first."""
    try:
        return parse_protocols(text)
    except ValueError:
        raise _bad("protocol list", text, "upnp, pcp, natpmp, comma-separated") from None


def transports(text: str) -> list[str]:
    """TCP, UDP, or both as ``TCP,UDP`` / ``both``."""
    if text.strip().lower() == "both":
        return ["TCP", "UDP"]
    try:
        found = [transport(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise _bad("protocol", text, "TCP, UDP, TCP,UDP or both") from None
    return list(dict.fromkeys(found))


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 literal (a zone id allowed); host names are not resolved."""
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        raise _bad("address", text, "an IP address; host names are not resolved") from None
    return text


def search_target(text: str) -> str:
    """``IP``, ``IP:PORT``, ``[IPv6]`` or ``[IPv6]:PORT`` — an address, not a name.

    Names are refused rather than resolved: discovery never sends a DNS query,
    and a name that resolves elsewhere would send the M-SEARCH there.
    """
    want = "IP[:PORT] or [IPv6][:PORT]; host names are not resolved"
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise _bad("search target", text, want)
        p = rest[1:]
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
    else:
        host, p = text, ""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise _bad("search target", text, want) from None
    if p:
        _int(p, "search target port", 1, 65535, want)
    return text


def location_url(text: str) -> str:
    """A gateway description URL: ``http://HOST[:PORT]/PATH``."""
    if "://" not in text:
        raise _bad("LOCATION URL", text, "no http://; want http://HOST[:PORT]/PATH")
    try:
        return check_url(text)
    except UnsafeURLError as exc:
        raise argparse.ArgumentTypeError(
            f"invalid LOCATION URL: {exc} (want http://HOST[:PORT]/PATH)"
        ) from None


def via_hint(text: str) -> str:
    """``-``, a LOCATION URL or an SSDP target address."""
    if text == "-":
        return text
    if "://" in text:
        return location_url(text)
    try:
        return search_target(text)
    except argparse.ArgumentTypeError:
        raise _bad(
            "--via", text, "'-', http://HOST:PORT/PATH or IP[:PORT]; host names are not resolved"
        ) from None


def epilog() -> str:
    """The exit-code table, for ``aioigd --help`` (the README carries the same)."""
    rows = [f"  {code.value:>3}  {_EXIT_TEXT[code]}" for code in ExitCode]
    return "exit codes:\n" + "\n".join(rows)


_EXIT_TEXT: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "the gateway answered something malformed, hostile or unexpected",
    ExitCode.USAGE: "bad command line (nothing was sent)",
    ExitCode.NOT_FOUND: "no gateway answered",
    ExitCode.UPNP_FAULT: "UPnP fault from the gateway (its code is in the message)",
    ExitCode.NETWORK: "the gateway could not be reached or timed out",
    ExitCode.MAPPING: "the mapping could not be made (port taken with --strict, refused, ...)",
    ExitCode.PARTIAL: "map stopped before the last layer (partial result printed)",
    ExitCode.CLEANUP: "something aioigd created could not be removed (listed on stderr)",
    ExitCode.NO_EXTERNAL_IP: "the gateway has no external address (its WAN is down or private)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM), after removing what it had mapped",
    ExitCode.BROKEN_PIPE: "stdout was closed early (`aioigd list | head`); nothing is printed",
}
