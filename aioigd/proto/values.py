"""Value codecs shared by every action codec (sans-I/O).

Two directions, two error types:

* **In arguments** (what we send): :func:`port`, :func:`uint`, :func:`lease`,
  :func:`ipv4`, :func:`ipv6`, :func:`boolean`, :func:`string`, :func:`protocol` turn a
  Python value into the SOAP string, or raise ``ValueError`` naming the argument (the
  caller misused the API). ``bool`` is refused wherever an integer is wanted: it is an
  ``int`` subclass, and ``True`` would otherwise go out as ``"True"`` or ``"1"``.
* **Out arguments** (what a gateway sends): :func:`parse_uint`, :func:`parse_bool`
  raise :class:`~aioigd.errors.RemoteProtocolError` (the gateway sent garbage).
"""

from __future__ import annotations

import ipaddress

from ..errors import RemoteProtocolError
from ..models import Transport

__all__ = [
    "UI2_MAX",
    "UI4_MAX",
    "port",
    "uint",
    "lease",
    "ipv4",
    "ipv6",
    "boolean",
    "string",
    "protocol",
    "parse_uint",
    "parse_bool",
]

#: Largest UPnP ``ui2`` (ports, indexes, UniqueID).
UI2_MAX = 0xFFFF
#: Largest UPnP ``ui4`` (leases, counters).
UI4_MAX = 0xFFFFFFFF


def _show(value: object) -> str:
    """``repr`` of a refused value, bounded, with its type when that is the problem."""
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    if isinstance(value, bool) or not isinstance(value, int | str):
        shown += f" ({type(value).__name__})"
    return shown


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- in arguments: Python value -> SOAP text, ValueError on misuse --------------------------------


def uint(value: int, name: str, maximum: int = UI4_MAX, *, minimum: int = 0) -> str:
    """An integer in ``minimum..maximum`` as decimal text (``bool`` and non-int refused)."""
    if not _is_int(value) or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer in {minimum}..{maximum}, not {_show(value)}")
    return str(value)


def port(value: int, name: str, *, allow_zero: bool = False) -> str:
    """A port in 1..65535 (0..65535 with ``allow_zero``, the wildcard) as decimal text."""
    low = 0 if allow_zero else 1
    if not _is_int(value) or not low <= value <= UI2_MAX:
        raise ValueError(f"{name} must be an integer port in {low}..{UI2_MAX}, not {_show(value)}")
    return str(value)


def lease(value: int, name: str = "lease", *, minimum: int = 0, maximum: int = UI4_MAX) -> str:
    """A lease of whole seconds in ``minimum..maximum`` as decimal text."""
    if not _is_int(value) or not minimum <= value <= maximum:
        raise ValueError(
            f"{name} must be whole seconds in {minimum}..{maximum}, not {_show(value)}"
        )
    return str(value)


def ipv4(value: str, name: str) -> str:
    """A dotted-quad IPv4 literal (no leading zeros, no prefix), unchanged."""
    if isinstance(value, str):
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            pass
    raise ValueError(f"{name} must be an IPv4 address, not {_show(value)}")


def ipv6(value: str, name: str) -> str:
    """The RFC 5952 form of an IPv6 literal, zone (``%eth0``) dropped.

    An IPv4-mapped address is written ``::ffff:192.0.2.1`` (RFC 5952 section 5, and what
    glibc's ``inet_ntop`` prints) on every Python: before 3.13 ``ipaddress`` wrote
    ``::ffff:c000:201``.
    """
    if isinstance(value, str):
        try:
            address = ipaddress.IPv6Address(value.split("%", 1)[0])
        except ValueError:
            pass
        else:
            mapped = address.ipv4_mapped
            return f"::ffff:{mapped}" if mapped is not None else address.compressed
    raise ValueError(f"{name} must be an IPv6 address, not {_show(value)}")


def boolean(value: bool, name: str) -> str:
    """A UPnP boolean, ``"1"`` or ``"0"``; only ``True``/``False`` are accepted."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, not {_show(value)}")
    return "1" if value else "0"


def string(value: str, name: str, *, max_length: int | None = None) -> str:
    """A string argument, at most ``max_length`` characters, unchanged."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {_show(value)}")
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"{name} is longer than {max_length} characters")
    return value


def protocol(value: Transport | str, name: str = "protocol") -> Transport:
    """``"tcp"``, ``"UDP"`` or a :class:`Transport` member → the member."""
    if not isinstance(value, str):  # Transport is a StrEnum, so members pass
        raise ValueError(f"{name} must be TCP or UDP, not {_show(value)}")
    return Transport.parse(value)


# -- out arguments: SOAP text -> Python value, RemoteProtocolError on garbage ---------------------


def parse_uint(text: str, name: str, maximum: int = UI4_MAX) -> int:
    """Parse an unsigned decimal out argument, bounded by ``maximum``."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) > maximum:
        raise RemoteProtocolError(f"{name}: {text[:40]!r} is not an integer in 0..{maximum}")
    return int(text)


def parse_bool(text: str, name: str) -> bool:
    """Parse a UPnP boolean (``0/1``, also ``true/false/yes/no``)."""
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise RemoteProtocolError(f"{name}: {text[:40]!r} is not a boolean")
