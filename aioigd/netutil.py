"""Small host-network helpers: default gateways and the local source address."""

from __future__ import annotations

import ipaddress
import socket
import struct

__all__ = [
    "parse_proc_net_route",
    "parse_proc_ipv6_route",
    "default_gateways",
    "default_gateways_v6",
    "local_address_for",
    "global_ipv6_for",
]


def parse_proc_net_route(text: str) -> list[str]:
    """Default-route gateways from the text of ``/proc/net/route`` (Linux).

    Rows whose destination and mask are 0 and whose RTF_UP (0x1) and RTF_GATEWAY
    (0x2) flags are set, best metric first; addresses are little-endian hex.
    Malformed rows are skipped.
    """
    found: list[tuple[int, str]] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, gw, flags, mask = (int(fields[i], 16) for i in (1, 2, 3, 7))
            metric = int(fields[6])
        except ValueError:
            continue
        if dest == 0 and mask == 0 and flags & 0x3 == 0x3 and 0 < gw <= 0xFFFFFFFF:
            found.append((metric, str(ipaddress.IPv4Address(struct.pack("<I", gw)))))
    gateways: list[str] = []
    for _, addr in sorted(found, key=lambda item: item[0]):
        if addr not in gateways:
            gateways.append(addr)
    return gateways


def parse_proc_ipv6_route(text: str) -> list[str]:
    """IPv6 default routers from ``/proc/net/ipv6_route`` (Linux), as ``addr%dev``.

    Rows with destination ::/0 and a non-zero next hop; link-local next hops
    carry their interface as zone id so they can be reached.
    """
    routers: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or not _hex(fields[0]) or not _hex(fields[4]):
            continue
        is_default = int(fields[0], 16) == 0 and fields[1] == "00"
        if not is_default or int(fields[4], 16) == 0:
            continue
        addr = ipaddress.IPv6Address(bytes.fromhex(fields[4]))
        text_addr = f"{addr.compressed}%{fields[9]}" if addr.is_link_local else addr.compressed
        if text_addr not in routers:
            routers.append(text_addr)
    return routers


def _hex(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdefABCDEF" for c in text)


def default_gateways_v6(path: str = "/proc/net/ipv6_route") -> list[str]:
    """The host's IPv6 default routers (empty where ``path`` is missing)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return parse_proc_ipv6_route(f.read(1 << 20))
    except OSError:
        return []


def default_gateways(path: str = "/proc/net/route") -> list[str]:
    """The host's IPv4 default gateways (empty where ``path`` is missing)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return parse_proc_net_route(f.read(1 << 20))
    except OSError:
        return []


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
