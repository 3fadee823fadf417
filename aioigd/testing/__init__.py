"""In-process fake Internet Gateway Devices for tests and the demo (loopback only).

``FakeIGD`` speaks SSDP and HTTP/SOAP like a router, keeps a mapping table and
pinholes, records every request, and has :class:`Quirks` for the broken and
hostile behaviours real routers show. ``FakePcpServer`` does the same for PCP
and NAT-PMP (one table for both, nonces, epochs, :class:`PcpQuirks`).
"""

from __future__ import annotations

from .model import FakeMapping, FakePinhole, Quirks, Recorded
from .pcp import FakePcpServer, PcpEntry, PcpQuirks
from .server import FakeIGD

__all__ = [
    "FakeIGD",
    "Quirks",
    "Recorded",
    "FakeMapping",
    "FakePinhole",
    "FakePcpServer",
    "PcpQuirks",
    "PcpEntry",
]
