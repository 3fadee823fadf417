"""Long-lived mappings against the FakeIGD: the keeper tells the application and recovers.

Real short leases (2 s: renewed every second) on loopback; every wait is bounded by a
generous timeout, and what is asserted is what happened (events, requests, the fake's
table), never how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from aioigd import Gateway, PortMapper
from aioigd.deadlines import deadline
from aioigd.discovery import SearchOptions
from aioigd.errors import PortInUse
from aioigd.firewall import FirewallControl
from aioigd.keeper import EventIterator
from aioigd.lifecycle import Event, State
from aioigd.multilayer import LayerEvent, MultiLayerMapper
from aioigd.testing import FakeIGD, FakeMapping

ME = "127.0.0.1"
WAIT = 15.0  # generous: a renewal every second, a search of 1 s


def rediscovery(fake: FakeIGD) -> SearchOptions:
    return SearchOptions(
        timeout=1.0, multicast=False, default_gateways=False, unicast=[(fake.host, fake.ssdp_port)]
    )


@contextlib.asynccontextmanager
async def kept_mapper(fake: FakeIGD, **kw: object) -> AsyncIterator[PortMapper]:
    gw = await Gateway.from_location(fake.location)
    async with PortMapper(gw, rediscovery=rediscovery(fake), own_gateway=True, **kw) as pm:  # type: ignore[arg-type]
        yield pm


async def next_named(
    events: EventIterator[Event[object]] | EventIterator[LayerEvent], *names: str
) -> list[str]:
    """Read events until one named in ``names``; return every name read."""
    seen: list[str] = []
    async with asyncio.timeout(WAIT):
        async for event in events:
            seen.append(event.name)
            if event.name in names:
                return seen
    raise AssertionError(f"events ended without {names}: {seen}")


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeIGD]:
    async with FakeIGD(version=request.param) as f:
        yield f


async def test_router_back_on_a_new_http_port_is_found_again_and_the_mapping_recovered(
    fake: FakeIGD,
) -> None:
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=2)
        events = kept.events()
        old_location = fake.location
        await fake.restart(new_port=True)
        assert fake.location != old_location and not fake.mappings
        seen = await next_named(events, "recovered")
        assert "lost" not in seen or seen.index("lost") < seen.index("recovered")
        assert kept.state is State.RECOVERED
        assert pm.gateway.location == fake.location  # every later request goes there
        assert kept.gateway == fake.location
        assert fake.mappings[("TCP", 5000)].internal_client == ME
        assert fake.searches >= 1  # found by a unicast M-SEARCH for its UDN
        await next_named(events, "renewed")
        assert kept.state is State.ACTIVE
    assert not fake.mappings  # released on the new port


async def test_router_reboot_on_the_same_port_is_recovered_not_silently_renewed(
    fake: FakeIGD,
) -> None:
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=2)
        events = kept.events()
        await fake.restart(new_port=False)
        await next_named(events, "recovered")
        assert ("TCP", 5000) in fake.mappings


async def test_external_address_change_is_an_event(fake: FakeIGD) -> None:
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=2)
        all_events = pm.events()
        assert kept.external_ip == "203.0.113.7"
        fake.external_ip = "198.51.100.9"
        async with asyncio.timeout(WAIT):
            async for event in all_events:
                if event.name == "external_ip_changed":
                    break
        assert event.subject.external_ip == "198.51.100.9"
        assert event.previous is not None and event.previous.external_ip == "203.0.113.7"
        assert kept.external_ip == "198.51.100.9"
        assert pm.active()[0].external_ip == "198.51.100.9"


async def test_check_between_renewals_notices_a_change_without_renewing(fake: FakeIGD) -> None:
    async with kept_mapper(fake, check_interval=0.5) as pm:
        kept = await pm.keep(5000, lease=600)
        events = kept.events()
        before = fake.actions().count("AddPortMapping")
        fake.external_ip = "198.51.100.9"
        await next_named(events, "external_ip_changed")
        assert fake.actions().count("AddPortMapping") == before  # a check is not a renewal
        assert kept.lease == 600


async def test_gateway_gone_for_good_is_lost_once_then_close_reports_it(
    fake: FakeIGD, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aioigd")
    gw = await Gateway.from_location(fake.location)
    pm = PortMapper(gw, rediscovery=rediscovery(fake), own_gateway=True)
    kept = await pm.keep(5000, lease=2)
    events = kept.events()
    await fake.stop_http()
    seen = await next_named(events, "lost")
    assert seen == ["renewal_failed", "lost"]
    assert kept.state is State.LOST and kept.error is not None
    await asyncio.sleep(2.5)  # more retries while lost: no more events, no more warnings
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "lost" in warnings[0].getMessage()
    async with asyncio.timeout(WAIT):
        leftovers = await pm.close()
    assert [x.subject.external_port for x in leftovers] == [5000]
    assert kept.state is State.RELEASED
    assert await next_named(events, "released") == ["released"]


async def test_lost_then_back_is_recovered(fake: FakeIGD) -> None:
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=2)
        events = kept.events()
        hang = {"AddPortMapping", "GetSpecificPortMappingEntry", "GetExternalIPAddress"}
        fake.quirks.hang_actions = frozenset(hang)
        await next_named(events, "lost")
        fake.quirks.hang_actions = frozenset()
        await next_named(events, "recovered")
        assert kept.state is State.RECOVERED


async def test_gateway_reporting_lease_zero_is_renewed_on_the_requested_lease(
    fake: FakeIGD,
) -> None:
    fake.quirks.report_lease_zero = True
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=2)
        assert kept.lease == 2  # not "permanent"
        events = kept.events()
        await next_named(events, "renewed")
        await next_named(events, "renewed")
        assert fake.actions().count("AddPortMapping") >= 3


async def test_port_taken_by_another_host_moves_the_mapping(fake: FakeIGD) -> None:
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=2)
        events = kept.events()
        fake.mappings[("TCP", 5000)] = FakeMapping(
            "", 5000, "TCP", 5000, "192.168.1.9", True, "x", 0, None
        )
        seen = await next_named(events, "external_ip_changed")
        assert "recovered" in seen
        assert kept.external_port != 5000
        assert fake.mappings[("TCP", kept.external_port)].internal_client == ME
        assert fake.mappings[("TCP", 5000)].internal_client == "192.168.1.9"  # untouched
    assert list(fake.mappings) == [("TCP", 5000)]


async def test_port_taken_by_another_host_fails_a_strict_mapping(fake: FakeIGD) -> None:
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=2, strict=True)
        events = kept.events()
        fake.mappings[("TCP", 5000)] = FakeMapping(
            "", 5000, "TCP", 5000, "192.168.1.9", True, "x", 0, None
        )
        assert await next_named(events, "failed") == ["failed"]
        assert kept.state is State.FAILED
        assert isinstance(kept.error, PortInUse)
        assert await kept.wait_lost() is State.FAILED
        async for _ in events:  # the iterator ends after a terminal event
            raise AssertionError("no event after failed")
        requests = len(fake.requests)
        await asyncio.sleep(1.5)
        assert len(fake.requests) == requests  # gave up: nothing more is sent
    assert fake.mappings[("TCP", 5000)].internal_client == "192.168.1.9"  # not ours to delete


async def test_wait_for_and_release(fake: FakeIGD) -> None:
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=600)
        assert await kept.wait_for(State.ACTIVE) is State.ACTIVE
        assert await kept.release() is None
        assert kept.state is State.RELEASED and not fake.mappings
        with pytest.raises(RuntimeError):
            await kept.wait_for(State.LOST)


# -- pinholes -------------------------------------------------------------------------------


async def test_pinhole_router_back_on_a_new_port_is_recovered() -> None:
    async with FakeIGD("::1", firewall=True) as fake6:
        gw = await Gateway.from_location(fake6.location)
        async with gw:
            fc: FirewallControl = FirewallControl.from_gateway(gw)
            fc.rediscovery = SearchOptions(
                timeout=1.0, ipv4=False, ipv6=True, multicast=False, default_gateways=False,
                unicast=[("::1", fake6.ssdp_port)],
            )  # fmt: skip
            async with fc:
                hole = await fc.keep_pinhole(8000, lease=2)
                events = hole.events()
                await fake6.restart(new_port=True)
                await next_named(events, "recovered")
                assert fc.location == fake6.location
                assert hole.unique_id in fake6.pinholes
            assert not fake6.pinholes


# -- several layers -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def two_layers() -> AsyncIterator[tuple[FakeIGD, FakeIGD, MultiLayerMapper]]:
    """A home router (10.0.0.2 outside) behind a CGNAT router, and a mapper for both."""
    async with (
        FakeIGD("127.0.0.2", external_ip="10.0.0.2") as low,
        FakeIGD("127.0.0.3", external_ip="33.0.0.1") as high,
    ):
        mapper = MultiLayerMapper(
            7000,
            via=[low.location, f"{high.host}:{high.ssdp_port}"],
            probe_target=None,
            search_timeout=1.0,
            lease=2,
            rediscovery=rediscovery(low),
        )
        yield low, high, mapper


async def test_layer_with_a_new_external_address_re_maps_the_layer_above() -> None:
    async with two_layers() as (low, high, mapper):
        events = mapper.events()
        async with mapper as result:
            assert len(result.layers) == 2
            assert high.mappings[("TCP", 7000)].internal_client == "10.0.0.2"
            low.external_ip = "10.0.0.77"  # the home router got a new WAN address
            async with asyncio.timeout(WAIT):
                async for item in events:
                    if item.layer == 2 and item.name == "mapped":
                        break
            (above,) = high.mappings.values()
            assert above.internal_client == "10.0.0.77"
            assert mapper.result is not None
            assert mapper.result.layers[1].internal_client == "10.0.0.77"
            assert mapper.result.layers[0].external_ip == "10.0.0.77"
        assert not low.mappings and not high.mappings


async def test_layers_mapped_inside_a_deadline_are_followed_after_it() -> None:
    # The watcher that re-maps the layer above outlives map()'s deadline() too.
    async with two_layers() as (low, high, mapper):
        events = mapper.events()
        try:
            with deadline(3.0) as ends:
                result = await mapper.map()
            assert len(result.layers) == 2
            loop = asyncio.get_running_loop()
            await asyncio.sleep(ends - loop.time() + 0.2)  # the deadline has passed
            low.external_ip = "10.0.0.77"
            async with asyncio.timeout(WAIT):
                async for item in events:
                    if item.layer == 2 and item.name in ("mapped", "lost", "failed"):
                        break
            assert item.name == "mapped", item
            (above,) = high.mappings.values()
            assert above.internal_client == "10.0.0.77"
        finally:
            await mapper.release()
        assert not low.mappings and not high.mappings


async def test_waiting_for_a_state_a_failed_mapping_can_never_reach_raises(
    fake: FakeIGD,
) -> None:
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=2, strict=True)
        fake.mappings[("TCP", 5000)] = FakeMapping(
            "", 5000, "TCP", 5000, "192.168.1.9", True, "x", 0, None
        )
        async with asyncio.timeout(WAIT):
            with pytest.raises(PortInUse):
                await kept.wait_for(State.LOST)  # it fails instead: told, not hung


async def test_a_failing_address_question_does_not_fail_a_good_renewal(fake: FakeIGD) -> None:
    async with kept_mapper(fake) as pm:
        kept = await pm.keep(5000, lease=2)
        events = kept.events()
        fake.quirks.fail_actions = {"GetExternalIPAddress": 501}
        assert await next_named(events, "renewed") == ["renewed"]
        assert await next_named(events, "renewed") == ["renewed"]
        assert kept.state is State.ACTIVE
        assert kept.external_ip == "203.0.113.7"  # the last address it reported


async def test_a_mapping_kept_inside_a_deadline_is_renewed_after_it(fake: FakeIGD) -> None:
    # deadline() bounds the command that starts the keeper, not the keeper's renewals:
    # they run for hours, long after the command's deadline has passed.
    async with kept_mapper(fake) as pm:
        with deadline(3.0):
            kept = await pm.keep(5000, lease=2)
        await asyncio.sleep(3.2)  # the deadline has passed
        events = kept.events()
        adds = fake.actions().count("AddPortMapping")
        seen = await next_named(events, "renewed", "lost")
        assert seen[-1] == "renewed", seen
        assert fake.actions().count("AddPortMapping") > adds
        assert kept.state is State.ACTIVE
