"""Public API calls checked by ``mypy --strict`` (never run by pytest: no test_ prefix)."""

from __future__ import annotations

import aioigd
from aioigd.multilayer import LayeredMapping, MultiLayerMapper


async def usage() -> None:
    gw: aioigd.Gateway = await aioigd.discover(timeout=2.0, multicast=False, unicast=["127.0.0.1"])
    async with gw:
        ip: str = await gw.get_external_ip_address()
        entries: list[aioigd.PortMappingEntry] = await gw.port_mappings()
        mapping: aioigd.Mapping = await gw.map_port(8000, protocol="UDP", lease=600)
        async with gw.mapped(8001) as m2:
            port: int = m2.external_port
        await gw.release(mapping)
        try:
            await gw.add_port_mapping(80, aioigd.Protocol.TCP, 80, "192.168.1.2")
        except aioigd.ConflictInMappingEntry as exc:
            code: int = exc.code
        except aioigd.UPnPError as exc:
            action: str = exc.action
    gateways: list[aioigd.Gateway] = await aioigd.discover_all(aioigd.SearchOptions(timeout=1))
    async with MultiLayerMapper(8000, layers="auto", probe_target="192.0.2.1") as layered:
        result: LayeredMapping = layered
        public: str | None = result.public_ip
    del ip, entries, port, code, action, gateways, public
