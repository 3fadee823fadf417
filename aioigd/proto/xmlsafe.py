"""Safe XML parsing for untrusted gateway replies (defusedxml only).

Invariants: the input is size-capped before parsing; DTDs, entities and
external references are refused (billion laughs, XXE); the tree is walked
iteratively so absurd nesting cannot exhaust the Python stack; every failure
is a :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - only for the Element type; parsing is defusedxml

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from ..errors import RemoteProtocolError, ResponseTooLarge

__all__ = [
    "Element",
    "parse_xml",
    "local_name",
    "child",
    "child_text",
    "children",
    "text_of",
    "MAX_DEPTH",
]

Element = ET.Element
#: Deeper documents are refused; a real description nests about 8 levels.
MAX_DEPTH = 64


def local_name(tag: str) -> str:
    """``{urn:x}name`` or ``p:name`` → ``name``."""
    if tag.startswith("{"):
        tag = tag.rpartition("}")[2]
    return tag.rpartition(":")[2].strip()


def parse_xml(data: bytes, *, limit: int, what: str = "XML") -> ET.Element:
    """Parse ``data`` with defusedxml, refusing DTDs, entities and deep nesting."""
    if len(data) > limit:
        raise ResponseTooLarge(f"{what} of {len(data)} bytes exceeds the {limit}-byte cap")
    # Some devices append NUL padding after the document. Not for UTF-16/32 (a BOM or a NUL
    # in the first code unit), whose last character itself ends with a NUL byte.
    if not data.startswith((b"\xff\xfe", b"\xfe\xff")) and b"\0" not in data[:4]:
        data = data.rstrip(b"\0 \t\r\n")
        # Real firmware sends a UTF-8 BOM and/or whitespace before "<?xml", which XML
        # forbids (the declaration must come first); what follows is still the document.
        data = data.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    try:
        root: ET.Element = DET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise RemoteProtocolError(f"{what} refused: {type(exc).__name__}") from None
    except (ET.ParseError, ValueError, UnicodeError, LookupError) as exc:
        raise RemoteProtocolError(f"{what} is not well-formed: {exc}") from None
    except RecursionError:
        raise RemoteProtocolError(f"{what} nests too deeply") from None
    _check_depth(root, what)
    return root


def _check_depth(root: ET.Element, what: str) -> None:
    # One level at a time: a list per level costs less than a (node, depth) stack.
    level = [root]
    for _ in range(MAX_DEPTH):
        level = [c for elem in level for c in elem]
        if not level:
            return
    raise RemoteProtocolError(f"{what} nests deeper than {MAX_DEPTH} levels")


def child(elem: ET.Element, name: str) -> ET.Element | None:
    """First direct child whose local name is ``name`` (any namespace or prefix)."""
    for c in elem:
        if isinstance(c.tag, str) and local_name(c.tag) == name:
            return c
    return None


def children(elem: ET.Element) -> dict[str, ET.Element]:
    """Each direct child by local name (the first of a name), for elements read field by
    field: one pass instead of one per field."""
    out: dict[str, ET.Element] = {}
    for c in elem:
        if isinstance(c.tag, str):
            out.setdefault(local_name(c.tag), c)
    return out


def text_of(elem: ET.Element | None, default: str = "") -> str:
    """Stripped text of ``elem``, or ``default`` when it is missing or empty."""
    if elem is None or elem.text is None:
        return default
    return elem.text.strip()


def child_text(elem: ET.Element, name: str, default: str = "") -> str:
    """Stripped text of the child ``name``, or ``default``."""
    return text_of(child(elem, name), default)
