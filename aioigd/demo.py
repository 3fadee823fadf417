"""``aioigd demo``: the whole flow against in-process fake gateways on loopback.

Needs no router and sends nothing beyond 127.0.0.0/8: the fake answers SSDP
on its own loopback port and discovery is told to search only there.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

from .discovery import SearchOptions, discover
from .gateway import Gateway
from .mapper import PortMapper
from .multilayer import MultiLayerMapper
from .netguard import loopback_only
from .testing import FakeIGD

__all__ = ["run_demo", "run_multilayer_demo"]

Emit = Callable[[dict[str, Any], str], None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_demo(emit: Emit) -> None:
    """Discover a fake IGD, map a port through it, list and remove it; then a 3-NAT chain.

    Runs in loopback-only mode: any attempt to reach beyond 127.0.0.0/8 fails.
    """
    with loopback_only():
        await _single_layer(emit)
        await _recovery(emit)
        await run_multilayer_demo(emit)


async def _single_layer(emit: Emit) -> None:
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
        async with await discover(options) as gw, PortMapper(gw) as mapper:
            ms = (loop.time() - t0) * 1000
            emit(
                {"step": "discovered", "location": gw.location, "ms": round(ms, 1)},
                f"2. discovered {gw.friendly_name!r} ({gw.service.service_type}) in {ms:.1f} ms",
            )
            ip = await gw.get_external_ip_address()
            emit({"step": "external_ip", "external_ip": ip}, f"3. external IP: {ip}")
            mapping = await mapper.map_port(port, description="aioigd demo", lease=600)
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
            await mapper.release(mapping)
            left = await gw.port_mappings()
            emit(
                {"step": "released", "remaining": len(left)},
                f"6. removed the mapping; {len(left)} mapping(s) left on the gateway",
            )


async def _recovery(emit: Emit) -> None:
    """Keep a mapping; the gateway reboots onto a new HTTP port; it comes back by itself."""
    port = _free_port()
    async with FakeIGD("127.0.0.1", external_ip="203.0.113.7") as fake:
        search = SearchOptions(
            timeout=2,
            multicast=False,
            default_gateways=False,
            unicast=[("127.0.0.1", fake.ssdp_port)],
        )
        gw = await Gateway.from_location(fake.location)
        async with PortMapper(gw, rediscovery=search, own_gateway=True) as mapper:
            kept = await mapper.keep(port, description="aioigd demo", lease=2)
            events = kept.events()
            emit(
                {"step": "kept", **kept.as_dict()},
                f"7. keeping TCP {kept.external_ip}:{kept.external_port} alive (lease 2 s, "
                "renewed every second)",
            )
            old = fake.location
            await fake.restart(new_port=True)
            emit(
                {"step": "gateway_rebooted", "old_location": old, "location": fake.location},
                f"   the gateway rebooted with an empty table, now at {fake.location}",
            )
            async with asyncio.timeout(15):
                async for event in events:
                    if event.name == "recovered":
                        break
            emit(
                {"step": "recovered", **kept.as_dict()},
                f"   event {event.name!r}: found it again by its UDN and re-created "
                f"{kept.protocol.value} {kept.external_port} there",
            )


async def run_multilayer_demo(emit: Emit) -> None:
    """Map one port through three stacked fake NATs: private, CGNAT, then global."""
    port = _free_port()
    chain = [
        FakeIGD("127.0.0.2", external_ip="10.64.0.2"),  # home router behind a second router
        FakeIGD("127.0.0.3", external_ip="100.64.7.3"),  # the carrier's CGNAT
        FakeIGD("127.0.0.4", external_ip="33.0.0.44"),  # the public edge
    ]
    async with contextlib.AsyncExitStack() as stack:
        for fake in chain:
            await stack.enter_async_context(fake)
        emit(
            {"step": "fake_chain", "locations": [f.location for f in chain]},
            "8. started three stacked fake NATs: 10.64.0.2 (private) -> 100.64.7.3 (CGNAT) "
            "-> 33.0.0.44 (global)",
        )
        via = [chain[0].location] + [f"{f.host}:{f.ssdp_port}" for f in chain[1:]]
        # probe_target=None: the demo follows only its own loopback chain, never traceroutes.
        mapper = MultiLayerMapper(
            port, layers="auto", via=via, probe_target=None, description="aioigd demo"
        )
        async with mapper as result:
            for i, m in enumerate(result.layers, 1):
                emit(
                    {"step": "layer", "layer": i, **m.as_dict()},
                    f"   layer {i}: {m.internal_client}:{m.internal_port} -> "
                    f"{m.external_ip}:{m.external_port}",
                )
            emit(
                {"step": "public", **result.as_dict()},
                f"9. public endpoint {result.public_ip}:{result.public_port} after "
                f"{len(result.layers)} layers (stopped by itself at the first global address)",
            )
        left = sum(len(f.mappings) for f in chain)
        emit(
            {"step": "chain_released", "remaining": left},
            f"10. released every layer, outermost first; {left} mapping(s) left",
        )
