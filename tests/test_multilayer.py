"""MultiLayerMapper against stacked in-process fake IGDs on loopback.

miniupnpd cannot have a private WAN address (it refuses to forward), so the
"climb while the external address is private/CGNAT" decision is proven here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

import aioigd.multilayer
from aioigd import IGDConnectionError, IGDError, is_global_address
from aioigd.keeper import Leftover
from aioigd.lifecycle import State
from aioigd.mapper import KeptMapping
from aioigd.multilayer import LayeredMapping, LayerEvent, MultiLayerMapper
from aioigd.testing import FakeIGD, FakeMapping, Quirks
from aioigd.traceroute import Hop


@contextlib.asynccontextmanager
async def chain(*external_ips: str) -> AsyncIterator[list[FakeIGD]]:
    async with contextlib.AsyncExitStack() as stack:
        fakes = [
            await stack.enter_async_context(FakeIGD(f"127.0.0.{i + 2}", external_ip=ip))
            for i, ip in enumerate(external_ips)
        ]
        yield fakes


def via(fakes: list[FakeIGD]) -> list[str | None]:
    """Layer 1 by LOCATION, the others by unicast SSDP to their loopback port."""
    return [fakes[0].location] + [f"{f.host}:{f.ssdp_port}" for f in fakes[1:]]


def mapper(fakes: list[FakeIGD], **kw: object) -> MultiLayerMapper:
    return MultiLayerMapper(7000, via=via(fakes), probe_target=None, search_timeout=1.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("addresses", "expected_layers"),
    [
        (["33.0.0.1"], 1),
        (["192.168.0.2", "33.0.0.1"], 2),
        (["192.168.0.2", "10.1.0.2", "33.0.0.1"], 3),
        (["192.168.0.2", "10.1.0.2", "100.64.3.2", "33.0.0.1"], 4),
        (["100.72.0.9", "33.0.0.1", "33.0.0.2"], 2),
    ],
)
async def test_auto_climbs_while_private_or_cgnat(
    addresses: list[str], expected_layers: int
) -> None:
    async with chain(*addresses, "44.0.0.1") as fakes:
        m = mapper(fakes)
        async with m as result:
            assert isinstance(result, LayeredMapping)
            # One kept mapping and one gateway per layer, inside out.
            assert all(isinstance(k, KeptMapping) for k in m.kept)
            assert tuple(k.current for k in m.kept) == result.layers
            assert all(k.state is State.ACTIVE for k in m.kept)
            assert [g.location for g in m.gateways] == [f.location for f in fakes[:expected_layers]]
            assert len(result.layers) == expected_layers
            assert result.complete and result.is_global
            assert result.public_ip == addresses[expected_layers - 1]
            # each layer forwards to the previous layer's external endpoint
            for below, above in zip(result.layers, result.layers[1:], strict=False):
                assert above.internal_client == below.external_ip
                assert above.internal_port == below.external_port
            for i, fake in enumerate(fakes):
                assert len(fake.mappings) == (1 if i < expected_layers else 0)
        assert all(not f.mappings for f in fakes), "release must clear every layer"


async def test_auto_stops_at_max_layers_with_partial_flagged_not_global() -> None:
    async with chain("10.0.0.2", "10.0.1.2", "10.0.2.2", "10.0.3.2", "10.0.4.2") as fakes:
        m = mapper(fakes)
        result = await m.map()
        try:
            assert len(result.layers) == 4
            assert not result.is_global
            assert result.as_dict()["global"] is False
        finally:
            assert await m.release() == []
        assert all(not f.mappings for f in fakes)
        assert m.kept == [] and m.gateways == []


async def test_fixed_layers_climb_whatever_the_address_class() -> None:
    async with chain("33.0.1.2", "33.0.2.2", "33.0.3.2") as fakes:
        async with mapper(fakes, layers=3) as result:
            assert len(result.layers) == 3
            assert is_global_address(result.public_ip)


async def test_missing_next_gateway_gives_partial_result_naming_the_layer() -> None:
    async with chain("10.0.0.2") as fakes:
        m = MultiLayerMapper(7000, via=[fakes[0].location], probe_target=None, layers=3)
        result = await m.map()
        try:
            assert not result.complete
            assert result.stopped_at == 2
            assert "layer 2" in result.reason or "gateway" in result.reason
            assert len(result.layers) == 1
            assert result.as_dict()["stopped_at"] == 2
            assert len(m.kept) == 1
        finally:
            assert await m.release() == []
        assert not fakes[0].mappings


async def test_failing_layer_releases_nothing_it_did_not_create() -> None:
    async with chain("10.0.0.2", "10.0.1.2", "33.0.0.1") as fakes:
        fakes[1].quirks = Quirks(fail_actions={"AddPortMapping": 501})
        m = mapper(fakes)
        result = await m.map()
        try:
            assert not result.complete and result.stopped_at == 2
            assert "501" in result.reason
            assert len(fakes[0].mappings) == 1
            assert not fakes[1].mappings and not fakes[2].mappings
            assert len(m.kept) == 1
            # The failed layer's gateway was closed at once: only the mapped layer is listed.
            assert [g.location for g in m.gateways] == [fakes[0].location]
        finally:
            assert await m.release() == []
        assert not fakes[0].mappings
        # layer 2 never had a mapping, so nothing was deleted there
        assert "DeletePortMapping" not in fakes[1].actions()


async def test_conflict_on_a_layer_takes_another_port_and_carries_it_outward() -> None:
    async with chain("10.0.0.2", "10.0.1.2", "33.0.0.1") as fakes:
        # Another client already holds 7000 on layer 2.
        fakes[1].mappings[("TCP", 7000)] = FakeMapping(
            "", 7000, "TCP", 22, "10.0.0.99", True, "someone else", 0, None
        )
        async with mapper(fakes) as result:
            l1, l2, l3 = result.layers
            assert l1.external_port == 7000
            assert l2.external_port != 7000 and l2.internal_port == 7000
            assert l3.internal_port == l2.external_port
            assert l3.external_port == l2.external_port
            assert result.public_port == l3.external_port
        assert fakes[1].mappings[("TCP", 7000)].internal_client == "10.0.0.99"


async def test_cancellation_mid_climb_removes_every_layer_made() -> None:
    async with chain("10.0.0.2", "10.0.1.2", "10.0.2.2", "33.0.0.1") as fakes:
        fakes[2].quirks = Quirks(delay=0.5)  # layer 3 is slow
        m = mapper(fakes)
        task = asyncio.create_task(m.map())
        for _ in range(200):
            await asyncio.sleep(0.01)
            if fakes[2].requests:
                break
        assert fakes[0].mappings and fakes[1].mappings
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert all(not f.mappings for f in fakes), [f.mappings for f in fakes]


async def test_renewal_re_adds_a_layer_lost_to_a_router_reboot() -> None:
    async with chain("10.0.0.2", "33.0.0.1") as fakes:
        m = MultiLayerMapper(7000, via=via(fakes), probe_target=None, lease=2, search_timeout=1.0)
        async with m as result:
            assert len(result.layers) == 2
            events = m.events()
            fakes[1].reboot()
            assert not fakes[1].mappings
            seen: list[tuple[int, str]] = []
            async with asyncio.timeout(4.0):
                async for item in events:
                    assert isinstance(item, LayerEvent)
                    assert item.name == item.event.name and item.mapping == item.event.subject
                    seen.append((item.layer, item.name))
                    if (item.layer, item.name) == (2, "recovered"):
                        break
            assert ("TCP", 7000) in fakes[1].mappings, "layer 2 was not re-added by renewal"
            assert fakes[1].mappings[("TCP", 7000)].internal_client == "10.0.0.2"
            assert m.kept[1].state is State.RECOVERED
            assert (1, "recovered") not in seen  # layer 1 was never lost


async def test_release_reports_a_layer_whose_gateway_is_gone() -> None:
    async with chain("10.0.0.2", "33.0.0.1") as fakes:
        m = mapper(fakes)
        result = await m.map()
        assert len(result.layers) == 2
        await fakes[1].stop()
        leftovers = await m.release()
        assert [type(x) for x in leftovers] == [Leftover]
        (gone,) = leftovers
        assert gone.subject == result.layers[1]
        assert isinstance(gone.error, IGDConnectionError)
        assert gone.gateway == fakes[1].location
        assert not fakes[0].mappings  # the layer below is released all the same


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        MultiLayerMapper(7000, layers=5)
    with pytest.raises(ValueError):
        MultiLayerMapper(7000, layers=0)
    with pytest.raises(ValueError):
        MultiLayerMapper(7000, max_layers=9)


# -- the climb runs the layers side by side -------------------------------------------------


def _forwards_outward(result: LayeredMapping) -> None:
    for below, above in zip(result.layers, result.layers[1:], strict=False):
        assert (above.internal_client, above.internal_port) == (
            below.external_ip,
            below.external_port,
        )


async def test_upper_layers_map_while_a_lower_layers_add_is_still_pending() -> None:
    async with chain("10.0.0.2", "10.0.1.2", "33.0.0.1") as fakes:
        fakes[0].quirks = Quirks(action_delay={"AddPortMapping": 0.6})
        m = mapper(fakes)
        task = asyncio.create_task(m.map())
        try:
            async with asyncio.timeout(5):
                while not fakes[2].mappings:
                    await asyncio.sleep(0.005)
            # Layers 2 and 3 forward to the endpoints their tables and addresses predicted
            # while layer 1's router is still working on its add.
            assert not fakes[0].mappings and fakes[1].mappings
            assert fakes[1].mappings[("TCP", 7000)].internal_client == "10.0.0.2"
            result = await task
        except BaseException:
            task.cancel()
            raise
        try:
            assert result.complete and len(result.layers) == 3
            _forwards_outward(result)
            # Every layer: who holds the port and the external address, asked at once ahead
            # of the add, then add + check; nothing is asked twice, the table never listed.
            for fake in fakes:
                assert sorted(fake.actions()) == sorted(
                    [
                        "GetSpecificPortMappingEntry",
                        "GetExternalIPAddress",
                        "AddPortMapping",
                        "GetSpecificPortMappingEntry",
                    ]
                )
        finally:
            assert await m.release() == []
        assert all(not f.mappings for f in fakes)


async def test_a_port_taken_below_after_the_table_was_read_is_carried_outward() -> None:
    async with chain("10.0.0.2", "10.0.1.2", "33.0.0.1") as fakes:
        # The table said 7000 was free; another host takes it as layer 1's add arrives, so
        # layer 1 gets 7001 and the layers mapped towards 7000 meanwhile are mapped again.
        fakes[0].quirks = Quirks(claim_before_add={7000: "192.168.1.77"})
        async with mapper(fakes) as result:
            assert result.complete and len(result.layers) == 3
            assert result.layers[0].external_port == 7001
            _forwards_outward(result)
            assert set(fakes[1].mappings) == {("TCP", 7001)}, "the guess towards 7000 stays"
            assert fakes[1].mappings[("TCP", 7001)].internal_port == 7001
            assert set(fakes[2].mappings) == {("TCP", 7001)}
            assert fakes[0].mappings[("TCP", 7000)].internal_client == "192.168.1.77"
        assert set(fakes[0].mappings) == {("TCP", 7000)}  # the other host's, left alone
        assert not fakes[1].mappings and not fakes[2].mappings


async def test_layer_one_failing_removes_the_layers_mapped_above_it_meanwhile() -> None:
    async with chain("10.0.0.2", "10.0.1.2", "33.0.0.1") as fakes:
        fakes[0].quirks = Quirks(hang_actions=frozenset({"AddPortMapping"}))
        m = MultiLayerMapper(
            7000, via=via(fakes), probe_target=None, search_timeout=1.0, http_timeout=1.5
        )
        task = asyncio.create_task(m.map())
        async with asyncio.timeout(5):
            while not fakes[2].mappings:
                await asyncio.sleep(0.005)
        with pytest.raises(IGDError):
            await task
        assert all(not f.mappings for f in fakes), [f.mappings for f in fakes]
        assert m.kept == [] and m.result is None


async def test_a_traced_hop_that_is_layer_ones_gateway_is_not_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with chain("10.0.0.2", "10.0.1.2") as fakes:
        hops = {1: fakes[0].host, 2: fakes[1].host}

        async def probe_hop(target: str, ttl: int) -> Hop | None:
            return Hop(ttl, hops[ttl]) if ttl in hops else None

        monkeypatch.setattr(aioigd.multilayer, "probe_hop", probe_hop)
        # Were hop 1 asked, its search would reach layer 1's fake on this port.
        monkeypatch.setattr(aioigd.multilayer, "SSDP_PORT", fakes[0].ssdp_port)
        m = MultiLayerMapper(
            7000,
            layers=3,
            via=[fakes[0].location, f"{fakes[1].host}:{fakes[1].ssdp_port}"],
            probe_target="127.0.0.1",
            search_timeout=0.5,
        )
        result = await m.map()
        try:
            assert len(result.layers) == 2 and result.stopped_at == 3
            assert fakes[0].searches == 0
            assert [r.path for r in fakes[0].requests if r.method == "GET"] == ["/rootDesc.xml"]
        finally:
            await m.release()
