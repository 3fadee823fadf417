"""The safe mapping flow (PortMapper.map_port / keep / mapped / release / close) against
the FakeIGD.

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
    ActionFailed,
    Gateway,
    IGDConnectionError,
    IGDError,
    MappingFailed,
    MappingRefused,
    PortInUse,
    PortMapper,
    PortMapping,
    Transport,
)
from aioigd.gateway import ENUMERATION_WINDOW
from aioigd.keeper import Leftover
from aioigd.lifecycle import Action, State
from aioigd.mapper import KeptMapping
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
    # The same size probe, then the empty table: one window of ENUMERATION_WINDOW
    # indexes, all past the end (713).
    return ["GetGenericPortMappingEntry"] * (1 + ENUMERATION_WINDOW)


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeIGD]:
    async with FakeIGD("127.0.0.1", version=request.param) as f:
        yield f


@pytest.fixture
async def gw(fake: FakeIGD) -> AsyncIterator[Gateway]:
    gateway = await Gateway.from_location(fake.location, http_timeout=2.0)
    fake.requests.clear()
    try:
        yield gateway
    finally:
        await gateway.close()


@pytest.fixture
async def pm(gw: Gateway) -> AsyncIterator[PortMapper]:
    mapper = PortMapper(gw)
    try:
        yield mapper
    finally:
        await mapper.close()


# -- the flow ---------------------------------------------------------------------------


async def test_first_map_minimal_round_trips(fake: FakeIGD, pm: PortMapper) -> None:
    mapping = await pm.map_port(5000, lease=600)
    actions = fake.actions()
    # External IP and the table are fetched concurrently: any order among them.
    expected = ["GetExternalIPAddress", *_enumeration(fake.version)]
    expected += ["AddPortMapping", "GetSpecificPortMappingEntry"]
    assert Counter(actions) == Counter(expected)
    rest = [a for a in actions if a != "GetExternalIPAddress"]
    assert rest[-2:] == ["AddPortMapping", "GetSpecificPortMappingEntry"]

    assert isinstance(mapping, PortMapping)
    assert mapping.external_ip == "203.0.113.7"
    assert mapping.external_port == 5000
    assert mapping.internal_port == 5000
    assert mapping.internal_client == ME
    assert mapping.protocol is Transport.TCP
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


async def test_keep_takes_the_same_round_trips_and_reads_like_its_mapping(
    fake: FakeIGD, pm: PortMapper
) -> None:
    kept = await pm.keep(5000, lease=600)
    actions = fake.actions()
    expected = ["GetExternalIPAddress", *_enumeration(fake.version)]
    expected += ["AddPortMapping", "GetSpecificPortMappingEntry"]
    assert Counter(actions) == Counter(expected)

    assert isinstance(kept, KeptMapping)
    assert kept.state is State.ACTIVE
    mapping = kept.current
    assert isinstance(mapping, PortMapping)
    assert kept != mapping  # a kept mapping is not a value: compare kept.current
    for name in (
        "external_ip",
        "external_port",
        "internal_client",
        "internal_port",
        "protocol",
        "lease",
        "gateway",
    ):
        assert getattr(kept, name) == getattr(mapping, name), name
    assert (kept.external_ip, kept.external_port, kept.gateway) == (
        "203.0.113.7",
        5000,
        fake.location,
    )
    assert 0 < kept.lease <= 600
    assert kept.as_dict() == {**mapping.as_dict(), "state": "active"}
    assert pm.kept() == [kept]
    assert pm.active() == [mapping]


async def test_second_map_does_not_enumerate_again(fake: FakeIGD, pm: PortMapper) -> None:
    await pm.map_port(5000)
    fake.requests.clear()
    second = await pm.map_port(5001, protocol="UDP")
    # Two requests: the table is cached, and so is the external IP (EXTERNAL_IP_TTL).
    assert fake.actions() == ["AddPortMapping", "GetSpecificPortMappingEntry"]
    assert second.external_ip == "203.0.113.7"
    assert second.protocol is Transport.UDP
    assert ("UDP", 5001) in fake.mappings


async def test_external_port_differs_from_internal(fake: FakeIGD, pm: PortMapper) -> None:
    mapping = await pm.map_port(22, external_port=2222)
    assert (mapping.external_port, mapping.internal_port) == (2222, 22)
    assert fake.mappings[("TCP", 2222)].internal_port == 22


async def test_explicit_internal_client(fake: FakeIGD, pm: PortMapper) -> None:
    mapping = await pm.map_port(8000, internal_client="192.168.1.42")
    assert mapping.internal_client == "192.168.1.42"
    assert fake.mappings[("TCP", 8000)].internal_client == "192.168.1.42"


async def test_other_clients_port_known_from_enumeration(fake: FakeIGD, pm: PortMapper) -> None:
    _put(fake, 5000, OTHER)
    mapping = await pm.map_port(5000)
    assert mapping.external_port != 5000
    assert 1024 <= mapping.external_port <= 65535
    assert fake.mappings[("TCP", 5000)].internal_client == OTHER  # untouched
    assert fake.mappings[("TCP", mapping.external_port)].internal_client == ME
    adds = [r.args for r in fake.requests if r.action == "AddPortMapping"]
    # The table told us: no doomed attempt on 5000.
    assert all(a["NewExternalPort"] != "5000" for a in adds)
    assert "DeletePortMapping" not in fake.actions()


async def test_strict_port_in_use_adds_nothing(fake: FakeIGD, pm: PortMapper) -> None:
    _put(fake, 5000, OTHER)
    with pytest.raises(PortInUse) as info:
        await pm.map_port(5000, strict=True)
    assert isinstance(info.value, MappingFailed)
    assert info.value.holder is not None
    assert info.value.holder.internal_client == OTHER
    assert "AddPortMapping" not in fake.actions()
    assert "AddAnyPortMapping" not in fake.actions()
    assert "DeletePortMapping" not in fake.actions()
    assert list(fake.mappings) == [("TCP", 5000)]
    assert fake.mappings[("TCP", 5000)].internal_client == OTHER


async def test_conflict_718_unknown_to_cache_retries_another_port(
    fake: FakeIGD, pm: PortMapper
) -> None:
    await pm.map_port(5000)
    _put(fake, 6000, OTHER)  # appears after our enumeration
    fake.requests.clear()
    mapping = await pm.map_port(6000)
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
    again = await pm.map_port(6001, external_port=6000, description="second")
    assert again.external_port != 6000
    adds = [r.args["NewExternalPort"] for r in fake.requests if r.action == "AddPortMapping"]
    assert "6000" not in adds


async def test_conflict_718_strict_is_port_in_use(fake: FakeIGD, pm: PortMapper) -> None:
    await pm.map_port(5000)
    _put(fake, 6000, OTHER)
    with pytest.raises(PortInUse):
        await pm.map_port(6000, strict=True)
    assert fake.mappings[("TCP", 6000)].internal_client == OTHER
    assert len(_ours(fake)) == 1


async def test_718_for_a_free_port_is_a_refusal_not_a_conflict(
    fake: FakeIGD, pm: PortMapper
) -> None:
    """Issue 10: secure mode answers 718 for a free port when the internal client is not
    the requester. That is a refusal for that client: stop after one add and say so
    (was: 8 adds on other ports, AddAnyPortMapping, then a misleading 606/PortInUse)."""
    fake.quirks.fail_actions = {"AddPortMapping": 718}
    for strict in (False, True):
        fake.requests.clear()
        with pytest.raises(MappingRefused, match="refuses to map TCP 5000 to 192.168.1.3"):
            await pm.map_port(5000, internal_client="192.168.1.3", strict=strict)
        assert fake.actions().count("AddPortMapping") == 1
        assert "AddAnyPortMapping" not in fake.actions()
    assert fake.mappings == {}


async def test_every_port_really_taken(fake: FakeIGD, pm: PortMapper) -> None:
    """Each add loses the race to another host: v2 lets the gateway choose, v1 gives up."""
    real = fake._add

    def taken(a: dict[str, str], port: int) -> int:
        if fake.requests[-1].action == "AddPortMapping":
            _put(fake, port, OTHER)  # another host got there first
        return real(a, port)

    fake._add = taken  # type: ignore[method-assign]
    await pm.table()
    if fake.version == 2:
        mapping = await pm.map_port(5000)
        assert "AddAnyPortMapping" in fake.actions()
        assert fake.mappings[("TCP", mapping.external_port)].internal_client == ME
    else:
        with pytest.raises(MappingFailed, match="no free external TCP port"):
            await pm.map_port(5000)
        assert _ours(fake) == []
    adds = fake.actions().count("AddPortMapping")
    assert 1 < adds <= 8  # bounded attempts


@pytest.mark.parametrize("version", [1, 2])
async def test_permanent_only_gateway(version: int) -> None:
    q = Quirks(permanent_only=True)
    async with FakeIGD("127.0.0.1", version=version, quirks=q) as fake:
        async with await Gateway.from_location(fake.location) as gw, PortMapper(gw) as pm:
            mapping = await pm.map_port(5000, lease=600)
            assert mapping.permanent_only is True
            if version == 1:
                assert mapping.lease == 0
                assert fake.mappings[("TCP", 5000)].lease == 0
            leases = [
                r.args["NewLeaseDuration"] for r in fake.requests if r.action == "AddPortMapping"
            ]
            assert leases == ["600", "0"]


async def test_our_stale_mapping_is_deleted(fake: FakeIGD, pm: PortMapper) -> None:
    _put(fake, 7000, ME, internal_port=5000, desc="aioigd")  # ours, from an earlier run
    _put(fake, 7001, OTHER, internal_port=5000, desc="aioigd")  # not ours: other client
    _put(fake, 7002, ME, internal_port=5000, desc="another app")  # ours, other description
    _put(fake, 7003, ME, internal_port=5001, desc="aioigd")  # ours, other internal port
    mapping = await pm.map_port(5000, remove_stale=True)
    assert mapping.external_port == 5000
    deletes = [r.args["NewExternalPort"] for r in fake.requests if r.action == "DeletePortMapping"]
    assert deletes == ["7000"]
    assert ("TCP", 7000) not in fake.mappings
    for port in (7001, 7002, 7003):
        assert ("TCP", port) in fake.mappings


async def test_a_second_external_port_for_the_same_internal_port_keeps_the_first(
    fake: FakeIGD, pm: PortMapper
) -> None:
    """Issue 10: only the entry on the wanted external port may be replaced by default."""
    first = await pm.map_port(5000, external_port=7000)
    second = await pm.map_port(5000, external_port=7001)
    assert "DeletePortMapping" not in fake.actions()
    assert {first.external_port, second.external_port} == {7000, 7001}
    assert all(("TCP", p) in fake.mappings for p in (7000, 7001))


async def test_a_taken_port_says_which_was_wanted(fake: FakeIGD, pm: PortMapper) -> None:
    _put(fake, 5000, OTHER)
    mapping = await pm.map_port(5000)
    assert mapping.external_port != 5000 and mapping.wanted_port == 5000
    assert mapping.as_dict()["wanted_port"] == 5000


async def test_verified_with_get_specific(fake: FakeIGD, pm: PortMapper) -> None:
    await pm.map_port(5000)
    assert fake.actions()[-1] == "GetSpecificPortMappingEntry"
    assert fake.actions().count("GetSpecificPortMappingEntry") == 1


async def test_verification_failure_is_mapping_failed(fake: FakeIGD, pm: PortMapper) -> None:
    """The gateway says OK to the add but does not list it."""
    fake.quirks.fail_actions = {"GetSpecificPortMappingEntry": 714}
    with pytest.raises(MappingFailed):
        await pm.keep(5000)
    assert pm.active() == []
    assert pm.kept() == []


async def test_unmanaged_mapping_stays(fake: FakeIGD) -> None:
    """map_port is one-shot: neither the mapper's close nor the gateway's deletes it."""
    async with await Gateway.from_location(fake.location) as gw:
        async with PortMapper(gw) as pm:
            mapping = await pm.map_port(5000)
            assert pm.active() == []
            assert pm.kept() == []
        assert ("TCP", mapping.external_port) in fake.mappings
    assert ("TCP", mapping.external_port) in fake.mappings


async def test_argument_validation(fake: FakeIGD, pm: PortMapper) -> None:
    for bad in [
        {"internal_port": 0},
        {"internal_port": 70000},
        {"internal_port": 80, "external_port": 0},
        {"internal_port": 80, "lease": -5},
        {"internal_port": 80, "protocol": "SCTP"},
    ]:
        with pytest.raises(ValueError):
            await pm.map_port(**bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await pm.keep(**bad)  # type: ignore[arg-type]
    assert fake.actions() == []
    assert pm.kept() == []


# -- renewal ----------------------------------------------------------------------------

#: What one renewal sends: the entry and the external address (concurrently), then the add.
RENEWAL = ["GetSpecificPortMappingEntry", "GetExternalIPAddress", "AddPortMapping"]


def _assert_renewals(actions: list[str], count: int) -> None:
    """``actions`` are ``count`` renewals, each in the order described by RENEWAL."""
    assert len(actions) == 3 * count, actions
    for i in range(count):
        one = actions[3 * i : 3 * i + 3]
        assert Counter(one[:2]) == Counter(RENEWAL[:2]), actions
        assert one[2] == "AddPortMapping", actions


async def test_renewal_and_reboot() -> None:
    async with FakeIGD("127.0.0.1") as fake:
        async with await Gateway.from_location(fake.location) as gw, PortMapper(gw) as pm:
            kept = await pm.keep(5000, lease=2)
            mapping = kept.current
            assert fake.actions().count("AddPortMapping") == 1
            fake.requests.clear()
            await asyncio.sleep(1.5)
            assert fake.actions().count("AddPortMapping") == 1  # renewed at half the lease
            _assert_renewals(fake.actions(), 1)
            add = next(r for r in fake.requests if r.action == "AddPortMapping").args
            assert add["NewLeaseDuration"] == "2"
            assert pm.active() == [mapping]
            assert kept.current == mapping
            assert kept.state is State.ACTIVE

            fake.reboot()
            assert fake.mappings == {}
            fake.requests.clear()
            await asyncio.sleep(1.1)
            _assert_renewals(fake.actions(), 1)  # the entry was gone: re-added
            held = fake.mappings[("TCP", 5000)]
            assert held.internal_client == ME and held.lease == 2
            assert kept.state is State.RECOVERED
        assert fake.mappings == {}  # close released it
        assert kept.state is State.RELEASED


async def test_renewal_failure_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    """A failing renewal is retried with back-off, not in a tight loop; the mapping is
    ``renewing`` while its lease may still hold, and the change is logged once (INFO),
    not once per attempt."""
    caplog.set_level(logging.DEBUG, logger="aioigd")
    async with FakeIGD("127.0.0.1") as fake:
        async with await Gateway.from_location(fake.location) as gw, PortMapper(gw) as pm:
            kept = await pm.keep(5000, lease=2)
            caplog.clear()
            fake.quirks.fail_actions = {"AddPortMapping": 501}
            await asyncio.sleep(1.5)
            assert kept.state is State.RENEWING
            assert isinstance(kept.error, ActionFailed)
            assert fake.actions().count("AddPortMapping") == 2  # the renewal at 1 s
            infos = [r for r in caplog.records if r.levelno == logging.INFO]
            assert len(infos) == 1, [r.getMessage() for r in infos]
            assert "renewal failed" in infos[0].getMessage()
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
            await asyncio.sleep(0.5)
            fake.quirks.fail_actions = {}
            assert fake.actions().count("AddPortMapping") <= 6
            # The retries go on, and bring it back once the gateway accepts again.
            async with asyncio.timeout(10):
                await kept.wait_for(State.ACTIVE, State.RECOVERED)
            assert ("TCP", 5000) in fake.mappings
            failed = [r for r in caplog.records if "renewal failed" in r.getMessage()]
            assert len(failed) == 1


async def _cancel_keepers(gw: Gateway) -> None:
    """Clean up keeper tasks a buggy close() may have left (keeps other tests clean)."""
    me = asyncio.current_task()
    stray = [
        t for t in asyncio.all_tasks() if t is not me and t.get_name().startswith("aioigd-keeper")
    ]
    for t in stray:
        t.cancel()
    await asyncio.gather(*stray, return_exceptions=True)
    await gw.session.close()


async def test_mapping_same_port_twice_then_close_stops_all_renewals() -> None:
    async with FakeIGD("127.0.0.1") as fake:
        gw = await Gateway.from_location(fake.location)
        try:
            pm = PortMapper(gw)
            first = await pm.keep(5000, lease=2)
            second = await pm.keep(5000, lease=2)
            assert first.external_port == second.external_port == 5000
            assert len(pm.active()) == 1
            assert pm.kept() == [second]
            assert await pm.close() == []
            assert fake.mappings == {}
            adds = fake.actions().count("AddPortMapping")
            await asyncio.sleep(1.2)
            assert fake.actions().count("AddPortMapping") == adds, "renewal after close()"
            assert fake.mappings == {}
        finally:
            await _cancel_keepers(gw)


async def test_external_ip_unavailable_still_maps(fake: FakeIGD, pm: PortMapper) -> None:
    fake.quirks.external_ip_value = "0.0.0.0"
    mapping = await pm.map_port(5000)
    assert mapping.external_ip is None
    assert ("TCP", 5000) in fake.mappings


async def test_renew_now(fake: FakeIGD, pm: PortMapper) -> None:
    """The keeper's backend call: a renewal asks for the entry and the address, then adds;
    after a reboot the entry is re-added (``recreated``)."""
    kept = await pm.keep(5000, lease=600)
    fake.requests.clear()
    outcome = await pm.refresh(kept, Action.RENEW)
    _assert_renewals(fake.actions(), 1)
    assert outcome.subject == kept.current
    assert outcome.granted_lease == 600 and not outcome.recreated

    fake.reboot()
    fake.requests.clear()
    outcome = await pm.refresh(kept, Action.RENEW)
    _assert_renewals(fake.actions(), 1)
    assert outcome.recreated
    renewed = outcome.subject
    assert renewed.external_port == 5000
    assert ("TCP", 5000) in fake.mappings

    # A check asks the same questions and adds nothing while the entry is there.
    fake.requests.clear()
    outcome = await pm.refresh(kept, Action.CHECK)
    assert Counter(fake.actions()) == Counter(RENEWAL[:2])
    assert outcome.granted_lease is None and not outcome.recreated


# -- release ----------------------------------------------------------------------------


async def test_release_deletes(fake: FakeIGD, pm: PortMapper) -> None:
    kept = await pm.keep(5000)
    await pm.release(kept)
    assert fake.mappings == {}
    assert fake.actions()[-1] == "DeletePortMapping"
    assert pm.active() == []
    assert kept.state is State.RELEASED
    await pm.release(kept)  # released already: no error
    await pm.release(kept.current)  # gone from the gateway: no error
    # A value that is not kept is checked first (its port may be another host's by now).
    assert fake.actions()[-1] == "GetSpecificPortMappingEntry"

    one_shot = await pm.map_port(5001)
    await pm.release(one_shot)
    assert fake.mappings == {}
    assert fake.actions()[-2:] == ["GetSpecificPortMappingEntry", "DeletePortMapping"]


async def test_release_of_a_value_never_deletes_another_hosts_entry(
    fake: FakeIGD, pm: PortMapper
) -> None:
    one_shot = await pm.map_port(5001)
    _put(fake, 5001, OTHER)  # expired and taken by another host meanwhile
    await pm.release(one_shot)
    assert fake.mappings[("TCP", 5001)].internal_client == OTHER


async def test_mapped_deletes_on_exit(fake: FakeIGD, pm: PortMapper) -> None:
    async with pm.mapped(5000, lease=600) as kept:
        assert isinstance(kept, KeptMapping)
        assert ("TCP", kept.external_port) in fake.mappings
        assert pm.active() == [kept.current]
    assert fake.mappings == {}
    assert pm.active() == []
    assert kept.state is State.RELEASED


async def test_mapped_deletes_on_exception(fake: FakeIGD, pm: PortMapper) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with pm.mapped(5000) as kept:
            assert ("TCP", kept.external_port) in fake.mappings
            raise RuntimeError("boom")
    assert fake.mappings == {}


async def test_mapped_deletes_on_cancellation(fake: FakeIGD, pm: PortMapper) -> None:
    entered = asyncio.Event()

    async def hold() -> None:
        async with pm.mapped(5000):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold())
    await asyncio.wait_for(entered.wait(), 5)
    assert _ours(fake)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.mappings == {}


async def test_mapper_context_releases_kept_mappings(fake: FakeIGD) -> None:
    async with await Gateway.from_location(fake.location) as gw:
        async with PortMapper(gw) as pm:
            await pm.keep(5000)
            await pm.keep(5001, protocol="UDP")
            _put(fake, 9999, OTHER)
        assert list(fake.mappings) == [("TCP", 9999)]  # never touches other clients


async def test_gateway_context_deletes_nothing(fake: FakeIGD) -> None:
    """A Gateway is an action client: leaving it only closes its session."""
    async with await Gateway.from_location(fake.location) as gw:
        pm = PortMapper(gw)
        await pm.keep(5000)
        await pm.map_port(5001)
    assert sorted(fake.mappings) == [("TCP", 5000), ("TCP", 5001)]
    assert "DeletePortMapping" not in fake.actions()
    # The mapper was not closed: closing it now cannot reach the closed session.
    leftovers = await pm.close()
    assert [x.subject.external_port for x in leftovers] == [5000]


async def test_close_without_release_keeps_mappings(fake: FakeIGD) -> None:
    async with await Gateway.from_location(fake.location) as gw:
        pm = PortMapper(gw)
        kept = await pm.keep(5000)
        assert await pm.close(release=False) == []
        assert ("TCP", 5000) in fake.mappings
        assert kept.state is State.RELEASED
        with pytest.raises(RuntimeError):
            await pm.map_port(5001)
        with pytest.raises(RuntimeError):
            await pm.keep(5001)


async def test_close_twice_is_harmless(fake: FakeIGD) -> None:
    async with await Gateway.from_location(fake.location) as gw:
        pm = PortMapper(gw)
        await pm.keep(5000)
        assert await pm.close() == []
        assert await pm.close() == []
        assert fake.mappings == {}


async def test_close_with_gateway_gone_returns_failures() -> None:
    fake = FakeIGD("127.0.0.1")
    await fake.start()
    gw = await Gateway.from_location(fake.location, http_timeout=1.0)
    pm = PortMapper(gw, own_gateway=True)
    try:
        first = await pm.keep(5000)
        second = await pm.keep(5001)
        await fake.stop()
        t0 = time.monotonic()
        failed = await pm.close()
        assert time.monotonic() - t0 < 3.0
    finally:
        await pm.close(release=False)  # a failed step above must not leak the session
        await fake.stop()
    assert all(isinstance(x, Leftover) for x in failed)
    assert sorted(x.subject.external_port for x in failed) == sorted(
        [first.external_port, second.external_port]
    )
    assert all(isinstance(x.error, IGDConnectionError) for x in failed)
    assert all(x.gateway == fake.location for x in failed)
    assert first.state is State.RELEASED and second.state is State.RELEASED


async def test_close_with_gateway_hanging_returns_failures() -> None:
    async with FakeIGD("127.0.0.1") as fake:
        gw = await Gateway.from_location(fake.location, http_timeout=10.0)
        pm = PortMapper(gw, own_gateway=True)
        try:
            await pm.keep(5000)
            fake.quirks.hang_actions = frozenset({"DeletePortMapping"})
            t0 = time.monotonic()
            failed = await pm.close()
            # Generous over the 3 s cleanup timeout, below the 10 s HTTP one it must not wait for.
            assert time.monotonic() - t0 < 8.0
        finally:
            await pm.close(release=False)
        assert len(failed) == 1
        assert isinstance(failed[0].error, IGDError)


# -- cancellation -----------------------------------------------------------------------


async def _cancel_once(host: str, version: int, cancel_after: float) -> list[str]:
    """Start keep() against a slow fake, cancel it after ``cancel_after`` s; return the
    actions the fake saw. Fails if anything of ours is left in the fake's table."""
    async with FakeIGD(host, version=version) as fake:
        async with await Gateway.from_location(fake.location, http_timeout=5.0) as gw:
            async with PortMapper(gw) as pm:
                fake.quirks.delay = 0.3
                fake.requests.clear()
                task = asyncio.create_task(pm.keep(5000, lease=600))
                await asyncio.sleep(cancel_after)
                task.cancel()
                try:
                    await asyncio.wait_for(task, 10)
                except asyncio.CancelledError:
                    pass
                else:
                    # Finished before the cancel landed: then it is kept and released below.
                    assert pm.active()
                    await pm.release(task.result())
                # Let requests the fake is still working on finish.
                await asyncio.sleep(0.7)
                # Nobody else maps on this fake: anything left is ours.
                assert fake.mappings == {}, (version, cancel_after, fake.actions())
        return fake.actions()


@pytest.mark.parametrize("version", [1, 2])
async def test_cancel_map_port_mid_flight_leaves_nothing(version: int) -> None:
    """Cancel at several points (delay 0.3 s per answer): before the add, while the add is
    in flight, while it is being verified, and after. Each run has its own fake and host."""
    # Both read the table in two steps (a size probe, then the listings on v2, one window
    # of indexes on v1): the add starts 0.3 s later than it would without the probe.
    shift = 0.3
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
        async with await Gateway.from_location(fake.location, http_timeout=5.0) as gw:
            pm = PortMapper(gw)
            fake.quirks.delay = 0.3
            # 0-0.3 IP + table size probe, 0.3-0.6 listings, 0.6-0.9 add, 0.9-1.2 verify,
            # 1.2-1.5 delete of the leftover.
            task = asyncio.create_task(pm.map_port(5000, lease=600, remove_stale=True))
            await asyncio.sleep(1.3)
            assert fake.actions()[-1] == "DeletePortMapping"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.4)
            assert fake.mappings == {}, fake.actions()
            assert await pm.close() == []


async def test_failing_stale_delete_does_not_fail_the_new_mapping(
    fake: FakeIGD, pm: PortMapper
) -> None:
    _put(fake, 7000, ME, internal_port=5000, desc="aioigd")
    fake.quirks.fail_actions = {"DeletePortMapping": 606}
    try:
        kept = await pm.keep(5000)
    except IGDError:
        # If it must fail, it must not leave the new mapping behind.
        assert ("TCP", 5000) not in fake.mappings, "new mapping leaked after a failed keep"
        raise
    finally:
        fake.quirks.fail_actions = {}
    assert kept.external_port == 5000
    assert pm.active() == [kept.current]


async def test_listing_not_authorized_still_maps(fake: FakeIGD, pm: PortMapper) -> None:
    listing = "GetListOfPortMappings" if fake.version == 2 else "GetGenericPortMappingEntry"
    fake.quirks.fail_actions = {listing: 606}
    mapping = await pm.map_port(5000)
    assert ("TCP", mapping.external_port) in fake.mappings


async def test_external_ip_is_fetched_again_after_its_ttl(
    fake: FakeIGD, pm: PortMapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WAN reconnect changes the address: after EXTERNAL_IP_TTL the next map asks again,
    alongside add + verify (any order)."""
    import aioigd.mapflow

    await pm.map_port(5000)
    monkeypatch.setattr(aioigd.mapflow, "EXTERNAL_IP_TTL", 0.0)
    fake.external_ip = "198.18.7.7"
    fake.requests.clear()
    again = await pm.map_port(5001)
    actions = fake.actions()
    assert Counter(actions) == Counter(
        ["GetExternalIPAddress", "AddPortMapping", "GetSpecificPortMappingEntry"]
    )
    assert actions.index("AddPortMapping") < actions.index("GetSpecificPortMappingEntry")
    assert again.external_ip == "198.18.7.7"


async def test_prepare_asks_once_and_the_map_after_it_sends_only_add_and_check() -> None:
    async with FakeIGD("127.0.0.1") as fake, await Gateway.from_location(fake.location) as gw:
        pm = PortMapper(gw)
        assert await pm.prepare(5000) == "203.0.113.7"
        assert sorted(fake.actions()) == ["GetExternalIPAddress", "GetSpecificPortMappingEntry"]
        assert pm.flow.expected_port("TCP", 5000, ME) == 5000
        fake.requests.clear()
        mapping = await pm.map_port(5000)
        assert mapping.external_port == 5000 and mapping.external_ip == "203.0.113.7"
        assert fake.actions() == ["AddPortMapping", "GetSpecificPortMappingEntry"]


async def test_prepare_of_a_port_another_host_holds_predicts_nothing() -> None:
    async with FakeIGD("127.0.0.1") as fake, await Gateway.from_location(fake.location) as gw:
        fake.mappings[("TCP", 5000)] = FakeMapping(
            "", 5000, "TCP", 22, "192.168.1.99", True, "someone else", 0, None
        )
        pm = PortMapper(gw)
        await pm.prepare(5000)
        assert pm.flow.expected_port("TCP", 5000, ME) is None
        assert pm.flow.expected_port("TCP", 5000, "192.168.1.99") == 5000
        mapping = await pm.map_port(5000)
        assert mapping.external_port != 5000
        assert fake.mappings[("TCP", 5000)].internal_client == "192.168.1.99"
