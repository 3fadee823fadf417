"""SOAP 1.1 control messages: build requests, parse replies and faults (soap.md)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

from ..errors import RemoteProtocolError, ResponseTooLarge, UPnPError, fault_class
from .table import ACTIONS
from .xmlsafe import Element, child, child_text, local_name, parse_xml

__all__ = [
    "MAX_SOAP_SIZE",
    "RequestTemplate",
    "request_template",
    "build_request",
    "parse_response",
]

#: igd-next caps bodies at 1 MiB; a v2 GetListOfPortMappings of 1000 entries is ~400 KiB.
MAX_SOAP_SIZE = 1 << 20

_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_ENCODING = "http://schemas.xmlsoap.org/soap/encoding/"
#: C0 controls XML 1.0 cannot carry, not even escaped (all but tab, LF and CR).
_ASCII_CONTROLS = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r"}


def escape(value: str) -> str:
    """``&``, ``<`` and ``>`` escaped, as ``xml.sax.saxutils.escape`` does.

    Not imported from there: ``xml.sax.saxutils`` imports ``urllib.request`` and with it
    ``http.client`` and ``email`` (~14 ms at import).
    """
    return value.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


@functools.cache
def _not_xml_char() -> re.Pattern[str]:
    # Compiled on the first non-ASCII value only: the compile costs ~4 ms at import.
    return re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise ValueError(f"invalid XML name {name!r}")


def _check_value(name: str, value: str) -> None:
    if value.isascii():
        bad = not value.isprintable() and not _ASCII_CONTROLS.isdisjoint(value)
    else:
        bad = _not_xml_char().search(value) is not None
    if bad:
        raise ValueError(f"{name}: value has a character XML cannot carry: {value[:40]!r}")


class RequestTemplate:
    """What one action's requests to one service share: headers and the envelope.

    ``headers`` is shared by every request built from this template: never mutate it.
    """

    # A plain class: a dataclass costs ~0.7 ms of import time.
    __slots__ = ("headers", "prefix", "suffix")

    def __init__(self, headers: Mapping[str, str], prefix: str, suffix: str) -> None:
        self.headers = headers
        self.prefix = prefix
        self.suffix = suffix

    def body(self, args: Sequence[tuple[str, str]] = ()) -> bytes:
        """The UTF-8 body with ``args`` in the given order (the SCPD order), escaped."""
        if not args:
            return (self.prefix + self.suffix).encode("utf-8")
        parts = [self.prefix]
        for name, value in args:
            _check_name(name)
            _check_value(name, value)
            parts.append(f"<{name}>{escape(value)}</{name}>")
        parts.append(self.suffix)
        return "".join(parts).encode("utf-8")


@functools.lru_cache(maxsize=256)
def request_template(service_type: str, action: str) -> RequestTemplate:
    """The (cached) template of ``action`` on ``service_type``.

    Raises:
        ValueError: an action or service type that cannot be put in the envelope.
    """
    _check_name(action)
    if any(c in service_type for c in '<>&"\r\n'):
        raise ValueError(f"invalid service type {service_type!r}")
    prefix = (
        '<?xml version="1.0"?>\r\n'
        f'<s:Envelope xmlns:s="{_ENVELOPE_NS}" s:encodingStyle="{_ENCODING}">'
        f'<s:Body><u:{action} xmlns:u="{service_type}">'
    )
    headers = {
        "Content-Type": 'text/xml; charset="utf-8"',
        "SOAPACTION": f'"{service_type}#{action}"',
    }
    return RequestTemplate(headers, prefix, f"</u:{action}></s:Body></s:Envelope>\r\n")


def build_request(
    service_type: str, action: str, args: Sequence[tuple[str, str]] = ()
) -> tuple[dict[str, str], bytes]:
    """Build the headers and UTF-8 body of one control request.

    Arguments are sent in the given order (the SCPD order), values escaped.

    Returns:
        ``(headers, body)``: Content-Type and the quoted SOAPACTION header.
    """
    template = request_template(service_type, action)
    return dict(template.headers), template.body(args)


def parse_response(
    status: int, body: bytes, service_type: str, action: str, *, limit: int = MAX_SOAP_SIZE
) -> dict[str, str]:
    """Parse a control reply into ``{out argument: text}``.

    A fault (normally HTTP 500, but also accepted inside a 200) raises the
    :class:`UPnPError` subclass for its code and ``service_type``.

    Raises:
        UPnPError: the gateway answered with a UPnP fault.
        RemoteProtocolError: any other status, or a body that is not a SOAP
            reply for ``action``.
    """
    if status not in (200, 500):
        raise RemoteProtocolError(f"{action}: HTTP status {status} from the gateway")
    try:
        envelope = parse_xml(body, limit=limit, what=f"{action} reply")
    except ResponseTooLarge:
        raise
    except RemoteProtocolError:
        if status == 500:
            raise RemoteProtocolError(f"{action}: HTTP 500 without a SOAP fault") from None
        raise
    soap_body = child(envelope, "Body")
    if local_name(envelope.tag) != "Envelope" or soap_body is None:
        raise RemoteProtocolError(f"{action}: reply is not a SOAP envelope")
    fault = child(soap_body, "Fault")
    if fault is not None:
        raise _fault(fault, service_type, action)
    if status == 500:
        raise RemoteProtocolError(f"{action}: HTTP 500 without a SOAP fault")
    response = child(soap_body, f"{action}Response")
    if response is None:
        spec = ACTIONS.get(action)
        if spec is not None and not spec.out_args:
            # A 200 without a fault to an action with no out arguments is success,
            # whatever the body element is called (miniupnpc reads it so): refusing it
            # would report a failure after the router acted.
            return {}
        raise RemoteProtocolError(f"{action}: reply has no <{action}Response>")
    out: dict[str, str] = {}
    for arg in response:
        if isinstance(arg.tag, str):
            if len(arg):
                # Out arguments are plain text; markup inside one is a lying gateway.
                raise RemoteProtocolError(f"{action}: markup inside <{local_name(arg.tag)}>")
            out.setdefault(local_name(arg.tag), (arg.text or "").strip())
    return out


def _fault(fault: Element, service_type: str, action: str) -> UPnPError:
    detail = child(fault, "detail")
    error = child(detail, "UPnPError") if detail is not None else None
    if error is None:
        text = child_text(fault, "faultstring") or "SOAP fault without UPnPError detail"
        return UPnPError(0, text[:200], action, service_type, code_missing=True)
    code_text = child_text(error, "errorCode")
    if not code_text.isascii() or not code_text.isdigit() or len(code_text) > 4:
        return UPnPError(
            0, f"unparsable errorCode {code_text[:20]!r}", action, service_type, code_missing=True
        )
    code = int(code_text)
    # Informative only, and the gateway's text: keep it printable and short.
    description = "".join(
        c if c.isprintable() else " " for c in child_text(error, "errorDescription")
    )
    description = " ".join(description.split())[:200]
    return fault_class(code, service_type)(code, description, action, service_type)
