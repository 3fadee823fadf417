"""The host's routes and the routers on the path, one interface over every OS.

Two jobs, each implemented once per OS and chosen at run time from
``sys.platform``:

- :func:`default_routes`: the IPv4/IPv6 default routes with their gateway and
  interface (Linux: rtnetlink, every table, /proc as fallback; macOS: the
  ``sysctl`` routing dump; Windows: ``GetIpForwardTable2``; elsewhere none).
- :func:`hop_finder`: who answers at TTL *n* towards a target (Linux: UDP with
  ``IP_RECVERR``, or ICMP datagram sockets; macOS: ICMP datagram sockets;
  Windows: ``IcmpSendEcho2``). Where none works, :class:`~aioigd.errors.HopsUnavailable`
  says why; nothing falls back to a guess.

Each OS module keeps its byte parsers pure (bytes in, :class:`Route` out) so they are
tested on fixtures anywhere; only the functions that call the OS are per platform.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import HopsUnavailable

__all__ = [
    "Route",
    "HopAnswer",
    "HopFinder",
    "default_routes",
    "hop_finder",
    "order_routes",
    "interface_names",
    "interface_name",
    "subnet_gateway_candidates",
]


@dataclass(frozen=True)
class Route:
    """A default route: its gateway, the interface it leaves by, metric and table."""

    #: 4 or 6.
    version: int
    #: The next hop; an IPv6 link-local one carries its zone (``fe80::1%eth0``).
    gateway: str
    interface: str | None = None
    metric: int = 0
    #: The routing table (Linux policy routing); the main table is 254, elsewhere 0.
    table: int = 0


@dataclass(frozen=True)
class HopAnswer:
    """What answered one probe: a router on the way, or the target itself."""

    address: str
    reached_target: bool = False


class HopFinder(Protocol):
    """Sends one probe with a given TTL and reports who answered."""

    #: Short name for logs and errors (``udp-recverr``, ``icmp-dgram``, ``icmpsendecho2``).
    name: str

    async def probe(self, target: str, ttl: int, attempt: int, wait: float) -> HopAnswer | None:
        """One probe with ``ttl`` towards ``target``; None when nothing answered in ``wait`` s."""
        ...


#: Linux's main routing table, listed first (it is what /proc/net/route shows).
MAIN_TABLE = 254


def order_routes(routes: list[Route]) -> list[Route]:
    """Main table first, then by metric; one entry per (version, gateway)."""
    ordered = sorted(routes, key=lambda r: (r.table not in (MAIN_TABLE, 0), r.metric, r.table))
    seen: set[tuple[int, str]] = set()
    out: list[Route] = []
    for route in ordered:
        if (route.version, route.gateway) not in seen:
            seen.add((route.version, route.gateway))
            out.append(route)
    return out


def interface_names() -> dict[int, str]:
    """This host's interface indexes and names (empty where they cannot be listed)."""
    try:
        return dict(socket.if_nameindex())
    except (OSError, AttributeError):
        return {}


def interface_name(index: int, names: Mapping[int, str]) -> str | None:
    """The name of interface ``index`` (its number where unknown; None for 0)."""
    return names.get(index, str(index)) if index > 0 else None


def default_routes() -> list[Route]:
    """The host's IPv4 and IPv6 default routes, best first; empty where none can be read."""
    if sys.platform == "win32":
        from . import windows

        return windows.default_routes()
    if sys.platform == "darwin":
        from . import bsd

        return bsd.default_routes()
    if sys.platform.startswith("linux"):
        from . import linux

        return linux.default_routes()
    return []


def hop_finder(kind: str | None = None) -> HopFinder:
    """The hop finder for this OS (``kind`` picks one by name where there are several).

    Raises:
        HopsUnavailable: no hop finder works here (the message says why).
    """
    if sys.platform == "win32":
        from . import windows

        return windows.hop_finder(kind)
    if sys.platform == "darwin":
        from . import bsd

        return bsd.hop_finder(kind)
    if sys.platform.startswith("linux"):
        from . import linux

        return linux.hop_finder(kind)
    raise HopsUnavailable(f"no hop finder for platform {sys.platform!r}")


def subnet_gateway_candidates(external_ip: str | None) -> list[str]:
    """Where the next NAT's router usually sits: the .1 and .254 of ``external_ip``'s /24.

    Only for a private or shared (CGNAT) IPv4 address: a global one's /24 belongs to
    an ISP. The address itself is left out. Probe the candidates like any traced hop.
    """
    try:
        ip = ipaddress.IPv4Address(external_ip or "")
    except ValueError:
        return []
    if ip.is_global or ip.is_unspecified or ip.is_multicast:
        return []
    net = ipaddress.IPv4Network(f"{ip}/24", strict=False)
    return [str(c) for c in (net[1], net[254]) if c != ip]
