"""MultiLayerMapper against stacked in-process fake IGDs on loopback.

miniupnpd cannot have a private WAN address (it refuses to forward), so the
"climb while the external address is private/CGNAT" decision is proven here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from aioigd import IGDConnectionError, is_global_address
from aioigd.keeper import Leftover
from aioigd.lifecycle import State
from aioigd.mapper import KeptMapping
from aioigd.multilayer import LayeredMapping, LayerEvent, MultiLayerMapper
from aioigd.testing import FakeIGD, FakeMapping, Quirks


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
