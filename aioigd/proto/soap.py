"""SOAP 1.1 control messages: build requests, parse replies and faults (soap.md)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from xml.sax.saxutils import escape

from ..errors import RemoteProtocolError, ResponseTooLarge, UPnPError, fault_class
from .table import ACTIONS
from .xmlsafe import Element, child, child_text, local_name, parse_xml

__all__ = ["MAX_SOAP_SIZE", "build_request", "parse_response"]

#: igd-next caps bodies at 1 MiB; a v2 GetListOfPortMappings of 1000 entries is ~400 KiB.
MAX_SOAP_SIZE = 1 << 20

_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_ENCODING = "http://schemas.xmlsoap.org/soap/encoding/"
#: Characters XML 1.0 cannot carry, not even escaped (NUL, most C0 controls, U+FFFE/FFFF).
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise ValueError(f"invalid XML name {name!r}")


def build_request(
    service_type: str, action: str, args: Sequence[tuple[str, str]] = ()
) -> tuple[dict[str, str], bytes]:
    """Build the headers and UTF-8 body of one control request.

    Arguments are sent in the given order (the SCPD order), values escaped.

    Returns:
        ``(headers, body)``: Content-Type and the quoted SOAPACTION header.
    """
    _check_name(action)
    if any(c in service_type for c in '<>&"\r\n'):
        raise ValueError(f"invalid service type {service_type!r}")
    parts = [
        '<?xml version="1.0"?>\r\n',
        f'<s:Envelope xmlns:s="{_ENVELOPE_NS}" s:encodingStyle="{_ENCODING}">',
        f'<s:Body><u:{action} xmlns:u="{service_type}">',
    ]
    for name, value in args:
        _check_name(name)
        if _NOT_XML_CHAR.search(value):
            raise ValueError(f"{name}: value has a character XML cannot carry: {value[:40]!r}")
        parts.append(f"<{name}>{escape(value)}</{name}>")
    parts.append(f"</u:{action}></s:Body></s:Envelope>\r\n")
    body = "".join(parts).encode("utf-8")
    headers = {
        "Content-Type": 'text/xml; charset="utf-8"',
        "SOAPACTION": f'"{service_type}#{action}"',
    }
    return headers, body


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
