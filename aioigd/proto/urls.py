"""URL rules: resolve description URLs and refuse ones that leave the gateway (no I/O)."""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urljoin, urlsplit

from ..errors import UnsafeURLError

__all__ = ["url_host", "resolve_url", "check_url", "same_host", "with_zone", "MAX_URL_LENGTH"]

MAX_URL_LENGTH = 1024


def _norm_host(host: str) -> str:
    host = host.strip("[]").lower()
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return host


def url_host(url: str) -> str:
    """The normalised host of ``url`` (IP literals canonical, zone ids dropped)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return _norm_host(host)


def same_host(a: str, b: str) -> bool:
    """True when two hosts (or IP literals) are the same address."""
    return _norm_host(a) == _norm_host(b)


def check_url(url: str, *, allowed_host: str | None = None) -> str:
    """Return ``url`` if it is a plain http URL (optionally on ``allowed_host``).

    Raises:
        UnsafeURLError: another scheme (file:, ftp:, https is not expected on a
            LAN gateway), userinfo, an over-long URL, a bad port, or another host.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURLError(f"URL longer than {MAX_URL_LENGTH} characters")
    # isprintable() is False for every whitespace character but the ASCII space.
    if " " in url or not url.isprintable():
        raise UnsafeURLError(f"URL with spaces or control characters: {url[:80]!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"malformed URL {url[:80]!r}: {exc}") from None
    if parts.scheme.lower() != "http":
        raise UnsafeURLError(f"refusing URL scheme {parts.scheme or 'none'!r} in {url[:80]!r}")
    if "@" in parts.netloc:
        raise UnsafeURLError(f"refusing URL with user info: {url[:80]!r}")
    if not parts.hostname:
        raise UnsafeURLError(f"URL has no host: {url[:80]!r}")
    if port == 0:
        raise UnsafeURLError(f"URL has port 0: {url[:80]!r}")
    if allowed_host is not None and not same_host(parts.hostname, allowed_host):
        raise UnsafeURLError(
            f"URL {url[:80]!r} points to {parts.hostname}, not the gateway {allowed_host}"
        )
    return url


def resolve_url(relative: str, *, location: str, url_base: str = "") -> str:
    """Resolve a description URL (controlURL, SCPDURL ...) per RFC 3986.

    Relative URLs resolve against ``URLBase`` when the description has one,
    else against the LOCATION the description was fetched from.

    Raises:
        UnsafeURLError: a URL urllib cannot split (e.g. an unclosed ``[`` IPv6 host).
    """
    relative = relative.strip()
    base = url_base.strip() or location
    if len(base) <= MAX_URL_LENGTH and _is_plain_path(relative):
        origin = _origin(base)
        if origin:
            return origin + relative
    try:
        scheme = urlsplit(relative).scheme
        opaque = scheme and not relative[len(scheme) + 1 :].startswith("/")
        if opaque and scheme.lower() not in ("http", "https"):
            # `uuid:<UDN>/WANPPPConnection:1` is a path some routers write without a
            # leading slash; like miniupnpc, attach it to the gateway's root.
            relative = "/" + relative
        return urljoin(base, relative)
    except ValueError as exc:
        raise UnsafeURLError(f"malformed URL {relative[:80]!r}: {exc}") from None


def _is_plain_path(relative: str) -> bool:
    """An absolute path that urljoin() would append to the base's origin unchanged: no
    dot segment or empty segment to remove, no query, fragment or parameters (an empty
    one is dropped), nothing urlsplit() strips (tab, CR, LF)."""
    return (
        relative.startswith("/")
        and not any(part in relative for part in _NOT_PLAIN)
        and relative.isprintable()
    )


_NOT_PLAIN = ("//", "/.", "?", "#", ";", " ")


@functools.lru_cache(maxsize=64)
def _origin(base: str) -> str:
    """``scheme://netloc`` of an http(s) ``base`` (what an absolute path keeps of it),
    else "" (urljoin decides)."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def with_zone(url: str, sender: str) -> str:
    """Add ``sender``'s zone (``fe80::1%eth0``) to a link-local IPv6 ``url`` that lacks one.

    Any other URL is returned unchanged.
    """
    if "%" not in sender:
        return url
    zone = sender.split("%", 1)[1]
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if "%" in host or not ipaddress.IPv6Address(host).is_link_local:
            return url
    except ValueError:
        return url
    start = parts.netloc.find("[")
    end = parts.netloc.find("]")
    if start < 0 or end < start:
        return url
    netloc = f"{parts.netloc[:end]}%25{zone}{parts.netloc[end:]}"
    return parts._replace(netloc=netloc).geturl()
