"""Small host-network helpers: default gateways and the local source address."""

from __future__ import annotations

import ipaddress
import socket

from .platform import default_routes
from .platform.linux import parse_proc_ipv6_route, parse_proc_net_route

__all__ = [
    "parse_proc_net_route",
    "parse_proc_ipv6_route",
    "default_gateways",
    "default_gateways_v6",
    "local_address_for",
    "global_ipv6_for",
]


def default_gateways_v6(path: str | None = None) -> list[str]:
    """The host's IPv6 default routers, best first (link-local ones as ``addr%zone``).

    From the OS routing table (:func:`aioigd.platform.default_routes`; on Linux every
    table), or from ``path`` in ``/proc/net/ipv6_route`` format when given.
    """
    if path is not None:
        return parse_proc_ipv6_route(_read(path))
    return [r.gateway for r in default_routes() if r.version == 6]


def default_gateways(path: str | None = None) -> list[str]:
    """The host's IPv4 default gateways, best first (empty where none can be read).

    From the OS routing table (:func:`aioigd.platform.default_routes`; on Linux every
    table), or from ``path`` in ``/proc/net/route`` format when given.
    """
    if path is not None:
        return parse_proc_net_route(_read(path))
    return [r.gateway for r in default_routes() if r.version == 4]


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return ""


def local_address_for(host: str, port: int = 1900) -> str:
    """The local address the kernel would use to reach ``host`` (``fe80::1%eth0`` works).

    A UDP ``connect`` only picks a route; no packet is sent.
    """
    host = host.replace("%25", "%")
    if ":" in host:
        sockaddr = socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_DGRAM)[0][4]
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.connect(sockaddr)
            return str(s.getsockname()[0]).split("%", 1)[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return str(s.getsockname()[0])


def global_ipv6_for(host: str) -> str:
    """This host's global (else unique-local) IPv6 address on the way to ``host``.

    When the kernel's source towards ``host`` is already global or ULA it is
    returned; when it is link-local (the gateway was reached by its link-local
    address), the best address on the same interface is chosen. Raises
    ``OSError`` when the interface has none.
    """
    import ifaddr

    source = ipaddress.IPv6Address(local_address_for(host))
    if not source.is_link_local:
        return source.compressed
    for adapter in ifaddr.get_adapters():
        addrs = [ipaddress.IPv6Address(ip.ip[0]) for ip in adapter.ips if isinstance(ip.ip, tuple)]
        if source not in addrs:
            continue
        usable = [a for a in addrs if not a.is_link_local and not a.is_loopback]
        usable.sort(key=lambda a: (not a.is_global, a.is_private))
        if usable:
            return usable[0].compressed
    raise OSError(f"no global or unique-local IPv6 address on the interface towards {host}")
