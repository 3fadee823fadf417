"""Public API calls checked by ``mypy --strict`` (never run by pytest: no test_ prefix)."""

from __future__ import annotations

import aioigd
from aioigd.firewall import FirewallControl, KeptPinhole
from aioigd.keeper import EventIterator, Leftover
from aioigd.lifecycle import Event, State
from aioigd.mapper import KeptMapping
from aioigd.multilayer import LayeredMapping, LayerEvent, MultiLayerMapper
from aioigd.reach import Reachability, ReachablePort


async def usage() -> None:
    gw: aioigd.Gateway = await aioigd.discover(timeout=2.0, multicast=False, unicast=["127.0.0.1"])
    async with gw, aioigd.PortMapper(gw, check_interval=60.0) as pm:
        ip: str = await gw.get_external_ip_address()
        traffic: aioigd.TrafficCounters = await gw.get_traffic_counters()
        sent: int | None = traffic.bytes_sent
        udp: aioigd.TransportLike = "UDP"
        await gw.delete_port_mapping(8000, udp)
        del traffic, sent
        entries: list[aioigd.PortMappingEntry] = await gw.port_mappings()
        # One-shot: a PortMapping value, not renewed.
        mapping: aioigd.PortMapping = await pm.map_port(8000, protocol="UDP", lease=600)
        # Kept alive: a KeptMapping, whose current value is a PortMapping.
        kept: KeptMapping = await pm.keep(8002, lease=600, strict=True)
        current: aioigd.PortMapping = kept.current
        state: State = kept.state
        external: tuple[str | None, int] = (kept.external_ip, kept.external_port)
        proto: aioigd.Transport = kept.protocol
        fields: dict[str, object] = kept.as_dict()
        events: EventIterator[Event[aioigd.PortMapping]] = kept.events()
        async for event in events:
            name: str = event.name
            after: aioigd.PortMapping = event.subject
            before: aioigd.PortMapping | None = event.previous
            error: aioigd.IGDError | None = event.error
            del name, after, before, error
            break
        reached: State = await kept.wait_for(State.ACTIVE, State.RECOVERED)
        ended: State = await kept.wait_lost()
        async with pm.mapped(8001) as m2:
            port: int = m2.external_port
            also: KeptMapping = m2
        active: list[aioigd.PortMapping] = pm.active()
        kept_list: list[KeptMapping] = pm.kept()
        await pm.release(mapping)
        await pm.release(kept)
        try:
            await gw.add_port_mapping(
                80, protocol=aioigd.Transport.TCP, internal_port=80, internal_client="192.168.1.2"
            )
        except aioigd.ConflictInMappingEntry as exc:
            code: int = exc.code
        except aioigd.UPnPError as exc:
            action: str = exc.action
        except aioigd.PortInUse as exc:
            holder: aioigd.PortMappingEntry | None = exc.holder
            del holder
        leftovers: list[Leftover[aioigd.PortMapping]] = await pm.close(release=True)
        for leftover in leftovers:
            lost: aioigd.PortMapping = leftover.subject
            why: aioigd.IGDError = leftover.error
            where: str = leftover.gateway
            del lost, why, where
    await gw.close()
    # The Gateway is an action client now: the old mapping API is gone (strict mypy reports
    # an unused "ignore" if any of it comes back).
    gw.map_port  # type: ignore[attr-defined]  # noqa: B018
    gw.mapper  # type: ignore[attr-defined]  # noqa: B018
    await gw.close(release=False)  # type: ignore[call-arg]
    await pm.keep(8000, managed=False)  # type: ignore[call-arg]
    # Issue 13: typed keywords and a Literal protocol, so these are caught before they run.
    await aioigd.discover(timeot=2)  # type: ignore[call-arg]
    await aioigd.discover(aioigd.SearchOptions(), timeout="2")  # type: ignore[arg-type]
    await pm.map_port(8000, protocol="SCTP")  # type: ignore[arg-type]
    await pm.map_port(8000, 8001)  # type: ignore[call-arg]
    await gw.add_port_mapping(80, "TCP", 80, "192.168.1.2")  # type: ignore[call-arg]
    MultiLayerMapper(8000, timeout=2.0)  # type: ignore[call-arg]

    async with await aioigd.discover(ipv4=False, ipv6=True) as gw6:
        fc: FirewallControl = FirewallControl.from_gateway(gw6, http_timeout=2.0)
        async with fc:
            hole: aioigd.Pinhole = await fc.open_pinhole(8000, lease=600)
            kept_hole: KeptPinhole = await fc.keep_pinhole(8001, lease=600)
            uid: int = kept_hole.unique_id
            async with fc.pinhole(8002) as h2:
                hole_state: State = h2.state
            holes: list[aioigd.Pinhole] = fc.active()
            await fc.release(hole)
            await fc.release(hole, timeout=1.0)  # type: ignore[call-arg]
            await fc.release(hole, cleanup_timeout=1.0)
            await fc.release(kept_hole)
            hole_leftovers: list[Leftover[aioigd.Pinhole]] = await fc.close()
            del uid, hole_state, holes, hole_leftovers

    gateways: list[aioigd.Gateway] = await aioigd.discover_all(aioigd.SearchOptions(timeout=1))
    async with MultiLayerMapper(8000, layers="auto", probe_target="192.0.2.1") as layered:
        result: LayeredMapping = layered
        public: str | None = result.public_ip
        stop: aioigd.StopReason | None = result.stop_reason
        if stop is aioigd.StopReason.HOPS_UNAVAILABLE:
            print(result.reason)
    multi = MultiLayerMapper(8000, layers=2, probe_target=None)
    await multi.map()
    layers_kept: list[KeptMapping] = multi.kept
    layer_gateways: list[aioigd.Gateway] = multi.gateways
    async for layer_event in multi.events():
        layer: int = layer_event.layer
        inner: Event[aioigd.PortMapping] = layer_event.event
        typed: LayerEvent = layer_event
        del layer, inner, typed
        break
    multi_leftovers: list[Leftover[aioigd.PortMapping]] = await multi.release()

    reach = ReachablePort(8000, probe_target=None)
    reachability: Reachability = await reach.open()
    reach_leftovers: list[
        Leftover[aioigd.PortMapping] | Leftover[aioigd.Pinhole]
    ] = await reach.close()
    del ip, entries, current, state, external, proto, fields, reached, ended, port, also
    del active, kept_list, code, action, gateways, public, layers_kept, layer_gateways
    del multi_leftovers, reachability, reach_leftovers, stop
