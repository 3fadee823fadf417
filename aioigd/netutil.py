"""Small host-network helpers: default gateways and the local source address."""

from __future__ import annotations

import ipaddress
import socket
import struct

__all__ = ["parse_proc_net_route", "default_gateways", "local_address_for"]


def parse_proc_net_route(text: str) -> list[str]:
    """Default-route gateways from the text of ``/proc/net/route`` (Linux).

    Rows whose destination and mask are 0 and whose RTF_GATEWAY flag (0x2) is
    set; addresses are little-endian hex. Malformed rows are skipped.
    """
    gateways: list[str] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, gw, flags, mask = (int(fields[i], 16) for i in (1, 2, 3, 7))
        except ValueError:
            continue
        if dest == 0 and mask == 0 and flags & 0x2 and 0 < gw <= 0xFFFFFFFF:
            addr = str(ipaddress.IPv4Address(struct.pack("<I", gw)))
            if addr not in gateways:
                gateways.append(addr)
    return gateways


def default_gateways(path: str = "/proc/net/route") -> list[str]:
    """The host's IPv4 default gateways (empty where ``path`` is missing)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return parse_proc_net_route(f.read(1 << 20))
    except OSError:
        return []


def local_address_for(host: str, port: int = 1900) -> str:
    """The local address the kernel would use to reach ``host``.

    A UDP ``connect`` only picks a route; no packet is sent.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((host.split("%", 1)[0], port))
        return str(s.getsockname()[0])
