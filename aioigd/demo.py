"""``aioigd demo``: the whole flow against in-process fake gateways on loopback.

Needs no router and sends nothing beyond 127.0.0.0/8: the fake answers SSDP
on its own loopback port and discovery is told to search only there.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from .discovery import SearchOptions, discover
from .testing import FakeIGD

__all__ = ["run_demo"]

Emit = Callable[[dict[str, Any], str], None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_demo(emit: Emit) -> None:
    """Discover a fake IGD, map a port through it, list and remove the mapping."""
    port = _free_port()
    async with FakeIGD("127.0.0.1", external_ip="203.0.113.7") as fake:
        emit(
            {"step": "fake_gateway", "location": fake.location, "ssdp_port": fake.ssdp_port},
            f"1. started a fake gateway at {fake.location} (SSDP on 127.0.0.1:{fake.ssdp_port})",
        )
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        options = SearchOptions(
            timeout=3,
            multicast=False,
            default_gateways=False,
            unicast=[("127.0.0.1", fake.ssdp_port)],
        )
        async with await discover(options) as gw:
            ms = (loop.time() - t0) * 1000
            emit(
                {"step": "discovered", "location": gw.location, "ms": round(ms, 1)},
                f"2. discovered {gw.friendly_name!r} ({gw.service.service_type}) in {ms:.1f} ms",
            )
            ip = await gw.get_external_ip_address()
            emit({"step": "external_ip", "external_ip": ip}, f"3. external IP: {ip}")
            mapping = await gw.map_port(port, description="aioigd demo", lease=600)
            emit(
                {"step": "mapped", **mapping.as_dict()},
                f"4. mapped TCP {mapping.external_ip}:{mapping.external_port} -> "
                f"{mapping.internal_client}:{mapping.internal_port} "
                f"(lease {mapping.lease}s, verified)",
            )
            for entry in await gw.port_mappings():
                emit(
                    {"step": "listed", "external_port": entry.external_port,
                     "internal_client": entry.internal_client, "description": entry.description},
                    f"5. gateway lists {entry.protocol.value} {entry.external_port} -> "
                    f"{entry.internal_client}:{entry.internal_port} {entry.description!r}",
                )  # fmt: skip
            await gw.release(mapping)
            left = await gw.port_mappings()
            emit(
                {"step": "released", "remaining": len(left)},
                f"6. removed the mapping; {len(left)} mapping(s) left on the gateway",
            )
