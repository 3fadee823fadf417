"""The safe mapping flow (Gateway.map_port / mapped / release / close) against the FakeIGD.

Round trips are checked on the exact action sequence the fake recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from aioigd import (
    Gateway,
    IGDConnectionError,
    IGDError,
    Mapping,
    MappingFailed,
    PortInUse,
    Protocol,
)
from aioigd.gateway import ENUMERATION_WINDOW
from aioigd.testing import FakeIGD, FakeMapping, Quirks

ME = "127.0.0.1"  # what the gateway sees as our address on loopback
OTHER = "192.168.1.99"


def _put(
    fake: FakeIGD,
    port: int,
    client: str,
    *,
    internal_port: int | None = None,
    desc: str = "someone else",
    proto: str = "TCP",
) -> None:
    fake.mappings[(proto, port)] = FakeMapping(
        "", port, proto, internal_port or port, client, True, desc, 0, None
    )


def _ours(fake: FakeIGD) -> list[FakeMapping]:
    return [m for m in fake.mappings.values() if m.internal_client == ME]


def _enumeration(version: int) -> list[str]:
    if version == 2:
        # Index SAFE_LIST_ENTRIES answers 713 (the table is small, listing it cannot
        # crash miniupnpd), then one listing per protocol.
        return ["GetGenericPortMappingEntry", "GetListOfPortMappings", "GetListOfPortMappings"]
    # Empty table: one window of ENUMERATION_WINDOW indexes, all past the end (713).
    return ["GetGenericPortMappingEntry"] * ENUMERATION_WINDOW


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeIGD]:
    async with FakeIGD("127.0.0.1", version=request.param) as f:
        yield f


@pytest.fixture
async def gw(fake: FakeIGD) -> AsyncIterator[Gateway]:
    gateway = await Gateway.from_location(fake.location, timeout=2.0)
    fake.requests.clear()
    try:
        yield gateway
    finally:
        await gateway.close()


# -- the flow ---------------------------------------------------------------------------


async def test_first_map_minimal_round_trips(fake: FakeIGD, gw: Gateway) -> None:
    mapping = await gw.map_port(5000, lease=600)
    actions = fake.actions()
    # External IP and the table are fetched concurrently: any order among them.
    expected = ["GetExternalIPAddress", *_enumeration(fake.version)]
    expected += ["AddPortMapping", "GetSpecificPortMappingEntry"]
    assert Counter(actions) == Counter(expected)
    rest = [a for a in actions if a != "GetExternalIPAddress"]
    assert rest[-2:] == ["AddPortMapping", "GetSpecificPortMappingEntry"]

    assert isinstance(mapping, Mapping)
    assert mapping.external_ip == "203.0.113.7"
    assert mapping.external_port == 5000
    assert mapping.internal_port == 5000
    assert mapping.internal_client == ME
    assert mapping.protocol is Protocol.TCP
    assert 0 < mapping.lease <= 600
    assert mapping.description == "aioigd"
    assert mapping.gateway == fake.location
    assert mapping.permanent_only is False
    held = fake.mappings[("TCP", 5000)]
    assert (held.internal_client, held.internal_port, held.lease) == (ME, 5000, 600)

    add = next(r for r in fake.requests if r.action == "AddPortMapping").args
    assert add["NewInternalClient"] == ME
    assert add["NewLeaseDuration"] == "600"
    assert add["NewPortMappingDescription"] == "aioigd"
    verify = fake.requests[-1].args
    assert (verify["NewExternalPort"], verify["NewProtocol"]) == ("5000", "TCP")

    as_dict = mapping.as_dict()
    for key in ("external_ip", "external_port", "internal_client", "internal_port", "lease"):
        assert as_dict[key] == getattr(mapping, key)
    assert as_dict["protocol"] == "TCP"


async def test_second_map_does_not_enumerate_again(fake: FakeIGD, gw: Gateway) -> None:
    await gw.map_port(5000)
    fake.requests.clear()
    second = await gw.map_port(5001, protocol="UDP")
    # Two requests: the table is cached, and so is the external IP (EXTERNAL_IP_TTL).
    assert fake.actions() == ["AddPortMapping", "GetSpecificPortMappingEntry"]
    assert second.external_ip == "203.0.113.7"
    assert second.protocol is Protocol.UDP
    assert ("UDP", 5001) in fake.mappings


async def test_external_port_differs_from_internal(fake: FakeIGD, gw: Gateway) -> None:
    mapping = await gw.map_port(22, 2222)
    assert (mapping.external_port, mapping.internal_port) == (2222, 22)
    assert fake.mappings[("TCP", 2222)].internal_port == 22


async def test_explicit_internal_client(fake: FakeIGD, gw: Gateway) -> None:
    mapping = await gw.map_port(8000, internal_client="192.168.1.42")
    assert mapping.internal_client == "192.168.1.42"
    assert fake.mappings[("TCP", 8000)].internal_client == "192.168.1.42"


async def test_other_clients_port_known_from_enumeration(fake: FakeIGD, gw: Gateway) -> None:
    _put(fake, 5000, OTHER)
    mapping = await gw.map_port(5000)
    assert mapping.external_port != 5000
    assert 1024 <= mapping.external_port <= 65535
    assert fake.mappings[("TCP", 5000)].internal_client == OTHER  # untouched
    assert fake.mappings[("TCP", mapping.external_port)].internal_client == ME
    adds = [r.args for r in fake.requests if r.action == "AddPortMapping"]
    # The table told us: no doomed attempt on 5000.
    assert all(a["NewExternalPort"] != "5000" for a in adds)
    assert "DeletePortMapping" not in fake.actions()


async def test_strict_port_in_use_adds_nothing(fake: FakeIGD, gw: Gateway) -> None:
    _put(fake, 5000, OTHER)
    with pytest.raises(PortInUse) as info:
        await gw.map_port(5000, strict=True)
    assert isinstance(info.value, MappingFailed)
    assert info.value.holder is not None
    assert info.value.holder.internal_client == OTHER
    assert "AddPortMapping" not in fake.actions()
    assert "AddAnyPortMapping" not in fake.actions()
    assert "DeletePortMapping" not in fake.actions()
    assert list(fake.mappings) == [("TCP", 5000)]
    assert fake.mappings[("TCP", 5000)].internal_client == OTHER


async def test_conflict_718_unknown_to_cache_retries_another_port(
    fake: FakeIGD, gw: Gateway
) -> None:
    await gw.map_port(5000)
    _put(fake, 6000, OTHER)  # appears after our enumeration
    fake.requests.clear()
    mapping = await gw.map_port(6000)
    assert mapping.external_port != 6000
    adds = [r.args["NewExternalPort"] for r in fake.requests if r.action == "AddPortMapping"]
    assert adds[0] == "6000" and len(adds) == 2
    assert fake.mappings[("TCP", 6000)].internal_client == OTHER
    assert fake.mappings[("TCP", mapping.external_port)].internal_client == ME
    # Still no re-enumeration for that.
    assert "GetListOfPortMappings" not in fake.actions()
    assert "GetGenericPortMappingEntry" not in fake.actions()

    # The conflict is remembered: asking again does not try 6000 again.
    fake.requests.clear()
    again = await gw.map_port(6001, 6000, description="second")
    assert again.external_port != 6000
    adds = [r.args["NewExternalPort"] for r in fake.requests if r.action == "AddPortMapping"]
    assert "6000" not in adds


async def test_conflict_718_strict_is_port_in_use(fake: FakeIGD, gw: Gateway) -> None:
    await gw.map_port(5000)
    _put(fake, 6000, OTHER)
    with pytest.raises(PortInUse):
        await gw.map_port(6000, strict=True)
    assert fake.mappings[("TCP", 6000)].internal_client == OTHER
    assert len(_ours(fake)) == 1


async def test_every_port_conflicts(fake: FakeIGD, gw: Gateway) -> None:
    """All AddPortMapping attempts get 718: v2 lets the gateway choose, v1 gives up."""
    fake.quirks.fail_actions = {"AddPortMapping": 718}
    if fake.version == 2:
        mapping = await gw.map_port(5000)
        assert "AddAnyPortMapping" in fake.actions()
        assert fake.mappings[("TCP", mapping.external_port)].internal_client == ME
    else:
        with pytest.raises(MappingFailed):
            await gw.map_port(5000)
        assert fake.mappings == {}
    adds = fake.actions().count("AddPortMapping")
    assert 1 < adds <= 8  # bounded attempts


@pytest.mark.parametrize("version", [1, 2])
async def test_permanent_only_gateway(version: int) -> None:
    q = Quirks(permanent_only=True)
    async with FakeIGD("127.0.0.1", version=version, quirks=q) as fake:
        async with await Gateway.from_location(fake.location) as gw:
            mapping = await gw.map_port(5000, lease=600)
            assert mapping.permanent_only is True
            if version == 1:
                assert mapping.lease == 0
                assert fake.mappings[("TCP", 5000)].lease == 0
            leases = [
                r.args["NewLeaseDuration"] for r in fake.requests if r.action == "AddPortMapping"
            ]
            assert leases == ["600", "0"]


async def test_our_stale_mapping_is_deleted(fake: FakeIGD, gw: Gateway) -> None:
    _put(fake, 7000, ME, internal_port=5000, desc="aioigd")  # ours, from an earlier run
    _put(fake, 7001, OTHER, internal_port=5000, desc="aioigd")  # not ours: other client
    _put(fake, 7002, ME, internal_port=5000, desc="another app")  # ours, other description
    _put(fake, 7003, ME, internal_port=5001, desc="aioigd")  # ours, other internal port
    mapping = await gw.map_port(5000)
    assert mapping.external_port == 5000
    deletes = [r.args["NewExternalPort"] for r in fake.requests if r.action == "DeletePortMapping"]
    assert deletes == ["7000"]
    assert ("TCP", 7000) not in fake.mappings
    for port in (7001, 7002, 7003):
        assert ("TCP", port) in fake.mappings


async def test_verified_with_get_specific(fake: FakeIGD, gw: Gateway) -> None:
    await gw.map_port(5000)
    assert fake.actions()[-1] == "GetSpecificPortMappingEntry"
    assert fake.actions().count("GetSpecificPortMappingEntry") == 1


async def test_verification_failure_is_mapping_failed(fake: FakeIGD, gw: Gateway) -> None:
    """The gateway says OK to the add but does not list it."""
    fake.quirks.fail_actions = {"GetSpecificPortMappingEntry": 714}
    with pytest.raises(MappingFailed):
        await gw.map_port(5000)
    assert gw.mapper.active() == []


async def test_unmanaged_mapping_stays(fake: FakeIGD) -> None:
    async with await Gateway.from_location(fake.location) as gw:
        mapping = await gw.map_port(5000, managed=False)
        assert gw.mapper.active() == []
    assert ("TCP", mapping.external_port) in fake.mappings


async def test_argument_validation(fake: FakeIGD, gw: Gateway) -> None:
    for bad in [
        {"internal_port": 0},
        {"internal_port": 70000},
        {"internal_port": 80, "external_port": 0},
        {"internal_port": 80, "lease": -5},
        {"internal_port": 80, "protocol": "SCTP"},
    ]:
        with pytest.raises(ValueError):
            await gw.map_port(**bad)  # type: ignore[arg-type]
    assert fake.actions() == []


# -- renewal ----------------------------------------------------------------------------


async def test_renewal_and_reboot() -> None:
    async with FakeIGD("127.0.0.1") as fake:
        async with await Gateway.from_location(fake.location) as gw:
            mapping = await gw.map_port(5000, lease=2)
            assert fake.actions().count("AddPortMapping") == 1
            await asyncio.sleep(1.5)
            assert fake.actions().count("AddPortMapping") == 2
            assert gw.mapper.active() == [mapping]

            fake.reboot()
            assert fake.mappings == {}
            await asyncio.sleep(1.1)
            assert fake.actions().count("AddPortMapping") == 3
            held = fake.mappings[("TCP", 5000)]
            assert held.internal_client == ME and held.lease == 2
        assert fake.mappings == {}  # close released it


async def test_renewal_failure_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="aioigd")
    async with FakeIGD("127.0.0.1") as fake:
        async with await Gateway.from_location(fake.location) as gw:
            await gw.map_port(5000, lease=2)
            fake.quirks.fail_actions = {"AddPortMapping": 501}
            await asyncio.sleep(2.0)
            fake.quirks.fail_actions = {}
            assert fake.actions().count("AddPortMapping") <= 6


async def _cancel_renewals(gw: Gateway) -> None:
    """Clean up renewal tasks a buggy close() may have left (keeps other tests clean)."""
    me = asyncio.current_task()
    stray = [
        t for t in asyncio.all_tasks() if t is not me and t.get_name().startswith("aioigd-renew")
    ]
    for t in stray:
        t.cancel()
    await asyncio.gather(*stray, return_exceptions=True)
    await gw.session.close()


async def test_mapping_same_port_twice_then_close_stops_all_renewals() -> None:
    async with FakeIGD("127.0.0.1") as fake:
        gw = await Gateway.from_location(fake.location)
        try:
            first = await gw.map_port(5000, lease=2)
            second = await gw.map_port(5000, lease=2)
            assert first.external_port == second.external_port == 5000
            assert len(gw.mapper.active()) == 1
            await gw.close()
            assert fake.mappings == {}
            adds = fake.actions().count("AddPortMapping")
            await asyncio.sleep(1.2)
            assert fake.actions().count("AddPortMapping") == adds, "renewal after close()"
            assert fake.mappings == {}
        finally:
            await _cancel_renewals(gw)


async def test_external_ip_unavailable_still_maps(fake: FakeIGD, gw: Gateway) -> None:
    fake.quirks.external_ip_value = "0.0.0.0"
    mapping = await gw.map_port(5000)
    assert mapping.external_ip is None
    assert ("TCP", 5000) in fake.mappings


async def test_renew_now(fake: FakeIGD, gw: Gateway) -> None:
    mapping = await gw.map_port(5000, lease=600)
    fake.reboot()
    renewed = await gw.mapper.renew(mapping)
    assert renewed.external_port == 5000
    assert ("TCP", 5000) in fake.mappings


# -- release ----------------------------------------------------------------------------


async def test_release_deletes(fake: FakeIGD, gw: Gateway) -> None:
    mapping = await gw.map_port(5000)
    await gw.release(mapping)
    assert fake.mappings == {}
    assert fake.actions()[-1] == "DeletePortMapping"
    assert gw.mapper.active() == []
    await gw.release(mapping)  # already gone: no error


async def test_mapped_deletes_on_exit(fake: FakeIGD, gw: Gateway) -> None:
    async with gw.mapped(5000, lease=600) as mapping:
        assert ("TCP", mapping.external_port) in fake.mappings
        assert gw.mapper.active() == [mapping]
    assert fake.mappings == {}
    assert gw.mapper.active() == []


async def test_mapped_deletes_on_exception(fake: FakeIGD, gw: Gateway) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with gw.mapped(5000) as mapping:
            assert ("TCP", mapping.external_port) in fake.mappings
            raise RuntimeError("boom")
    assert fake.mappings == {}


async def test_mapped_deletes_on_cancellation(fake: FakeIGD, gw: Gateway) -> None:
    entered = asyncio.Event()

    async def hold() -> None:
        async with gw.mapped(5000):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold())
    await asyncio.wait_for(entered.wait(), 5)
    assert _ours(fake)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.mappings == {}


async def test_gateway_context_releases_managed_mappings(fake: FakeIGD) -> None:
    async with await Gateway.from_location(fake.location) as gw:
        await gw.map_port(5000)
        await gw.map_port(5001, protocol="UDP")
        _put(fake, 9999, OTHER)
    assert list(fake.mappings) == [("TCP", 9999)]  # never touches other clients


async def test_close_without_release_keeps_mappings(fake: FakeIGD) -> None:
    gw = await Gateway.from_location(fake.location)
    await gw.map_port(5000)
    assert await gw.close(release=False) == []
    assert ("TCP", 5000) in fake.mappings
    with pytest.raises(RuntimeError):
        await gw.map_port(5001)


async def test_close_twice_is_harmless(fake: FakeIGD) -> None:
    gw = await Gateway.from_location(fake.location)
    await gw.map_port(5000)
    assert await gw.close() == []
    assert await gw.close() == []
    assert fake.mappings == {}


async def test_close_with_gateway_gone_returns_failures() -> None:
    fake = FakeIGD("127.0.0.1")
    await fake.start()
    gw = await Gateway.from_location(fake.location, timeout=1.0)
    first = await gw.map_port(5000)
    second = await gw.map_port(5001)
    await fake.stop()
    t0 = time.monotonic()
    failed = await gw.close()
    assert time.monotonic() - t0 < 3.0
    assert sorted(m.external_port for m, _ in failed) == sorted(
        [first.external_port, second.external_port]
    )
    assert all(isinstance(exc, IGDConnectionError) for _, exc in failed)


async def test_close_with_gateway_hanging_returns_failures() -> None:
    async with FakeIGD("127.0.0.1") as fake:
        gw = await Gateway.from_location(fake.location, timeout=10.0)
        await gw.map_port(5000)
        fake.quirks.hang_actions = frozenset({"DeletePortMapping"})
        t0 = time.monotonic()
        failed = await gw.close()
        assert time.monotonic() - t0 < 5.0  # the cleanup timeout, not the 10 s HTTP one
        assert len(failed) == 1
        assert isinstance(failed[0][1], IGDError)


# -- cancellation -----------------------------------------------------------------------


async def _cancel_once(host: str, version: int, cancel_after: float) -> list[str]:
    """Start map_port against a slow fake, cancel it after ``cancel_after`` s; return the
    actions the fake saw. Fails if anything of ours is left in the fake's table."""
    async with FakeIGD(host, version=version) as fake:
        async with await Gateway.from_location(fake.location, timeout=5.0) as gw:
            fake.quirks.delay = 0.3
            fake.requests.clear()
            task = asyncio.create_task(gw.map_port(5000, lease=600))
            await asyncio.sleep(cancel_after)
            task.cancel()
            try:
                await asyncio.wait_for(task, 10)
            except asyncio.CancelledError:
                pass
            else:
                # Finished before the cancel landed: then it is managed and released below.
                assert gw.mapper.active()
                await gw.release(task.result())
            # Let requests the fake is still working on finish.
            await asyncio.sleep(0.7)
            # Nobody else maps on this fake: anything left is ours.
            assert fake.mappings == {}, (version, cancel_after, fake.actions())
        return fake.actions()


@pytest.mark.parametrize("version", [1, 2])
async def test_cancel_map_port_mid_flight_leaves_nothing(version: int) -> None:
    """Cancel at several points (delay 0.3 s per answer): before the add, while the add is
    in flight, while it is being verified, and after. Each run has its own fake and host."""
    # v2 reads the table in two steps (a size probe, then the listings): 0.3 s later.
    shift = 0.3 if version == 2 else 0.0
    points = [0.05, 0.35 + shift, 0.45 + shift, 0.7 + shift, 0.95 + shift]
    runs = await asyncio.gather(
        *(_cancel_once(f"127.0.3.{i + 1}", version, t) for i, t in enumerate(points))
    )
    by_point = dict(zip(points, runs, strict=True))
    assert "AddPortMapping" not in by_point[points[0]]
    # The interrupted-add paths really ran: the add reached the fake, then was undone.
    for t in points[2:4]:
        assert "AddPortMapping" in by_point[t], (t, by_point[t])
        assert "DeletePortMapping" in by_point[t], (t, by_point[t])


async def test_cancel_during_stale_removal_leaves_nothing() -> None:
    async with FakeIGD("127.0.0.1") as fake:
        _put(fake, 7000, ME, internal_port=5000, desc="aioigd")  # our leftover
        async with await Gateway.from_location(fake.location, timeout=5.0) as gw:
            fake.quirks.delay = 0.3
            # 0-0.3 IP + table size probe, 0.3-0.6 listings, 0.6-0.9 add, 0.9-1.2 verify,
            # 1.2-1.5 delete of the leftover.
            task = asyncio.create_task(gw.map_port(5000, lease=600))
            await asyncio.sleep(1.3)
            assert fake.actions()[-1] == "DeletePortMapping"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.4)
            assert fake.mappings == {}, fake.actions()


async def test_failing_stale_delete_does_not_fail_the_new_mapping(
    fake: FakeIGD, gw: Gateway
) -> None:
    _put(fake, 7000, ME, internal_port=5000, desc="aioigd")
    fake.quirks.fail_actions = {"DeletePortMapping": 606}
    try:
        mapping = await gw.map_port(5000)
    except IGDError:
        # If it must fail, it must not leave the new mapping behind.
        assert ("TCP", 5000) not in fake.mappings, "new mapping leaked after a failed map_port"
        raise
    finally:
        fake.quirks.fail_actions = {}
    assert mapping.external_port == 5000
    assert gw.mapper.active() == [mapping]


async def test_listing_not_authorized_still_maps(fake: FakeIGD, gw: Gateway) -> None:
    listing = "GetListOfPortMappings" if fake.version == 2 else "GetGenericPortMappingEntry"
    fake.quirks.fail_actions = {listing: 606}
    mapping = await gw.map_port(5000)
    assert ("TCP", mapping.external_port) in fake.mappings


async def test_external_ip_is_fetched_again_after_its_ttl(
    fake: FakeIGD, gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WAN reconnect changes the address: after EXTERNAL_IP_TTL the next map asks again,
    alongside add + verify (any order)."""
    import aioigd.mapper

    await gw.map_port(5000)
    monkeypatch.setattr(aioigd.mapper, "EXTERNAL_IP_TTL", 0.0)
    fake.external_ip = "198.18.7.7"
    fake.requests.clear()
    again = await gw.map_port(5001)
    actions = fake.actions()
    assert Counter(actions) == Counter(
        ["GetExternalIPAddress", "AddPortMapping", "GetSpecificPortMappingEntry"]
    )
    assert actions.index("AddPortMapping") < actions.index("GetSpecificPortMappingEntry")
    assert again.external_ip == "198.18.7.7"
