"""Discovery against in-process FakeIGDs, on loopback only.

Every search here is unicast to a fake's own SSDP port (``loopback_search``):
no multicast, no default gateways.

No test asserts a wall-clock budget tuned to an idle machine. "Returns on the first answer"
is shown with a search window (``LONG_WINDOW``) far longer than the bound (``FIRST_ANSWER``);
"ends with its window" with a generous ``BOUNDED``; what is counted is requests.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

import aioigd
from aioigd import GatewayNotFound, IGDError, SearchOptions, discover, discover_all, search
from aioigd.discovery import MAX_LOCATIONS
from aioigd.testing import FakeIGD, Quirks
from tests.conftest import loopback_search

#: A search window that a first-answer search must not wait for.
LONG_WINDOW = 30.0
#: A first-answer search returns within this (loopback answers take milliseconds).
FIRST_ANSWER = 10.0
#: A search that waits for its (short) window ends within this: it does not hang past it.
BOUNDED = 10.0


def _unicast(*fakes: FakeIGD, **kwargs: Any) -> dict[str, Any]:
    """Search keywords covering several fakes (still loopback only)."""
    return {
        "timeout": 2.0,
        "multicast": False,
        "default_gateways": False,
        "unicast": [(f.host, f.ssdp_port) for f in fakes],
        **kwargs,
    }


def _gets(fake: FakeIGD) -> int:
    return sum(1 for r in fake.requests if r.method == "GET")


@pytest.fixture
async def leak_check() -> AsyncIterator[list[dict[str, Any]]]:
    """Record loop exception-handler calls (e.g. 'Unclosed client session') and
    ResourceWarnings; fail the test if any appear."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield seen
        await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)
    loop.set_exception_handler(old)
    resource = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not resource, [str(w.message) for w in resource]
    assert not seen, [c.get("message") for c in seen]


# -- the happy path ------------------------------------------------------------------------


async def test_discover_returns_on_first_answer_fast(fake_igd: FakeIGD, leak_check: Any) -> None:
    t0 = time.monotonic()
    gw = await discover(**loopback_search(fake_igd, timeout=LONG_WINDOW))
    elapsed = time.monotonic() - t0
    try:
        assert elapsed < FIRST_ANSWER, f"discover took {elapsed:.2f}s: it waited for its window"
        assert gw.location == fake_igd.location
        assert gw.udn == fake_igd.udn
        assert gw.is_v2
        assert gw.search is not None and gw.search.sender == "127.0.0.1"
        assert fake_igd.searches >= 1
    finally:
        await gw.close()


async def test_discover_accepts_search_options_object(fake_igd: FakeIGD) -> None:
    opts = SearchOptions(**loopback_search(fake_igd))
    async with await discover(opts) as gw:
        assert gw.location == fake_igd.location


async def test_discover_unicast_host_port_string(fake_igd: FakeIGD) -> None:
    kw = loopback_search(fake_igd)
    kw["unicast"] = [f"{fake_igd.host}:{fake_igd.ssdp_port}"]
    async with await discover(**kw) as gw:
        assert gw.location == fake_igd.location


async def test_search_yields_raw_answers(fake_igd: FakeIGD) -> None:
    opts = SearchOptions(**loopback_search(fake_igd, timeout=0.3))
    answers = [a async for a in search(opts)]
    assert answers
    assert all(a.location == fake_igd.location for a in answers)
    assert all(a.sender == "127.0.0.1" for a in answers)
    assert {a.st for a in answers} <= set(opts.search_targets)


async def test_search_can_keep_only_each_senders_first_answer_per_location(
    fake_igd: FakeIGD,
) -> None:
    fake_igd.quirks = Quirks(ssdp_copies=3)
    opts = SearchOptions(**loopback_search(fake_igd, timeout=0.3))
    every = [a async for a in search(opts)]
    assert len(every) >= 3 * len(opts.search_targets)
    first = [a async for a in search(opts, first_per_location=True)]
    assert [(a.sender, a.location) for a in first] == [("127.0.0.1", fake_igd.location)]


async def test_a_spoofed_answer_for_a_location_does_not_hide_the_real_one() -> None:
    async with FakeIGD("127.0.0.2") as real, FakeIGD("127.0.0.3") as rogue:
        # The rogue answers first, claiming the real router's LOCATION: refused as foreign,
        # and the real router's own answer for that LOCATION still counts.
        rogue.quirks = Quirks(ssdp_location=real.location)
        opts = SearchOptions(
            timeout=0.5,
            multicast=False,
            default_gateways=False,
            unicast=[(rogue.host, rogue.ssdp_port), (real.host, real.ssdp_port)],
        )
        answers = [a async for a in search(opts, first_per_location=True)]
        assert [(a.sender, a.location) for a in answers] == [("127.0.0.2", real.location)]
        assert any("127.0.0.3" in why for why in opts.refused)


async def test_search_with_nothing_to_search_is_refused() -> None:
    opts = SearchOptions(multicast=False, default_gateways=False, unicast=[])
    with pytest.raises(ValueError):
        async for _ in search(opts):
            pass


async def test_discover_all_collects_two_fakes_and_dedups(leak_check: Any) -> None:
    q = Quirks(ssdp_copies=5)
    async with FakeIGD("127.0.0.2", quirks=q) as a, FakeIGD("127.0.0.3", quirks=q) as b:
        t0 = time.monotonic()
        gateways = await discover_all(**_unicast(a, b, timeout=0.4))
        elapsed = time.monotonic() - t0
        try:
            assert sorted(g.location for g in gateways) == sorted([a.location, b.location])
            assert len({g.udn for g in gateways}) == 2
            # 5 copies x several STs x resends, but each description is fetched once.
            assert _gets(a) == 1
            assert _gets(b) == 1
            assert elapsed < BOUNDED
        finally:
            for gw in gateways:
                await gw.close()


async def test_discover_all_dedups_same_udn_on_two_locations(leak_check: Any) -> None:
    """Two fakes that claim the same UDN are one device: one Gateway comes back."""
    async with FakeIGD("127.0.0.2") as a, FakeIGD("127.0.0.3") as b:
        b.udn = a.udn
        gateways = await discover_all(**_unicast(a, b, timeout=0.4))
        try:
            assert len(gateways) == 1
        finally:
            for gw in gateways:
                await gw.close()


async def test_ssdp_flood_still_returns(leak_check: Any) -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(ssdp_copies=1000)) as fake:
        async with await discover(**loopback_search(fake, timeout=0.5)) as gw:
            assert gw.location == fake.location
        assert _gets(fake) == 1


async def test_ssdp_flood_returns_fast(leak_check: Any) -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(ssdp_copies=1000)) as fake:
        t0 = time.monotonic()
        async with await discover(**loopback_search(fake, timeout=LONG_WINDOW)) as gw:
            assert gw.location == fake.location
        assert time.monotonic() - t0 < FIRST_ANSWER


async def test_ssdp_flood_discover_all_stays_bounded(leak_check: Any) -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(ssdp_copies=1000)) as fake:
        t0 = time.monotonic()
        gateways = await discover_all(**loopback_search(fake, timeout=0.6))
        try:
            assert [g.location for g in gateways] == [fake.location]
            assert time.monotonic() - t0 < BOUNDED
            # Thousands of datagrams, a single description fetch.
            assert _gets(fake) == 1
        finally:
            for gw in gateways:
                await gw.close()


async def test_many_distinct_locations_fetch_is_capped(leak_check: Any) -> None:
    """More announced locations than MAX_LOCATIONS: fetches stay bounded."""
    fakes = [FakeIGD(f"127.0.1.{i}") for i in range(1, MAX_LOCATIONS + 4)]
    try:
        for f in fakes:
            await f.start()
        gateways = await discover_all(**_unicast(*fakes, timeout=0.5))
        try:
            assert len(gateways) <= MAX_LOCATIONS
            assert sum(_gets(f) for f in fakes) <= MAX_LOCATIONS
        finally:
            for gw in gateways:
                await gw.close()
    finally:
        for f in fakes:
            await f.stop()


# -- bad answers --------------------------------------------------------------------------


async def test_garbage_ssdp_reply_gives_gateway_not_found_after_timeout() -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(ssdp_reply=b"garbage")) as fake:
        t0 = time.monotonic()
        with pytest.raises(GatewayNotFound):
            await discover(**loopback_search(fake, timeout=0.3))
        elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < BOUNDED  # it waited for its window, and no longer
        assert fake.searches >= 1
        assert fake.requests == []


async def test_gateway_not_found_is_an_igd_error_and_a_timeout() -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(ssdp_reply=b"garbage")) as fake:
        with pytest.raises(IGDError) as info:
            await discover(**loopback_search(fake, timeout=0.3))
        assert isinstance(info.value, TimeoutError)
        assert "0.3" in str(info.value)


async def test_answer_without_location_is_ignored() -> None:
    reply = b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nUSN: uuid:x::upnp:rootdevice\r\n\r\n"
    async with FakeIGD("127.0.0.1", quirks=Quirks(ssdp_reply=reply)) as fake:
        with pytest.raises(GatewayNotFound):
            await discover(**loopback_search(fake, timeout=0.4))
        assert fake.requests == []


async def test_foreign_location_refused_by_default() -> None:
    async with FakeIGD("127.0.0.9") as victim, FakeIGD("127.0.0.1") as liar:
        liar.quirks.ssdp_location = victim.location
        t0 = time.monotonic()
        with pytest.raises(GatewayNotFound) as info:
            await discover(**loopback_search(liar, timeout=0.3))
        assert time.monotonic() - t0 < BOUNDED
        assert "127.0.0.9" in str(info.value)  # the refusal is explained
        assert victim.requests == []
        assert victim.connections == 0
        assert liar.requests == []


async def test_foreign_location_refused_unreachable_port() -> None:
    q = Quirks(ssdp_location="http://127.0.0.9:1/rootDesc.xml")
    async with FakeIGD("127.0.0.1", quirks=q) as fake:
        with pytest.raises(GatewayNotFound):
            await discover(**loopback_search(fake, timeout=0.4))


async def test_foreign_location_accepted_when_allowed(leak_check: Any) -> None:
    async with FakeIGD("127.0.0.9") as target, FakeIGD("127.0.0.1") as announcer:
        announcer.quirks.ssdp_location = target.location
        kw = loopback_search(announcer, timeout=2.0, allow_foreign_location=True)
        async with await discover(**kw) as gw:
            assert gw.location == target.location
            assert await gw.get_external_ip_address() == "203.0.113.7"
        assert _gets(target) == 1


_ABSURD_LOCATIONS = {
    "file": "file:///etc/passwd",
    "ftp": "ftp://{host}/rootDesc.xml",
    "userinfo": "http://user:secret@{host}:{port}/rootDesc.xml",
    "2000chars": "http://{host}:{port}/" + "a" * 2000,
    "1100chars": "http://{host}:{port}/" + "a" * 1100,
    "https": "https://{host}:{port}/rootDesc.xml",
    "port0": "http://{host}:0/rootDesc.xml",
    "gopher": "gopher://{host}:{port}/_GET",
    "javascript": "javascript:alert(1)",
    "no-host": "http:///rootDesc.xml",
}


@pytest.mark.parametrize("allow_foreign", [False, True])
async def test_absurd_location_urls_are_never_fetched(allow_foreign: bool) -> None:
    """Each fake announces one absurd LOCATION that points back at itself."""
    fakes = {name: FakeIGD(f"127.0.2.{i}") for i, name in enumerate(_ABSURD_LOCATIONS, start=1)}
    try:
        for name, fake in fakes.items():
            await fake.start()
            template = _ABSURD_LOCATIONS[name]
            fake.quirks.ssdp_location = template.format(host=fake.host, port=fake.http_port)
        t0 = time.monotonic()
        kw = _unicast(*fakes.values(), timeout=0.4, allow_foreign_location=allow_foreign)
        with pytest.raises(GatewayNotFound):
            await discover_all(**kw)
        assert time.monotonic() - t0 < BOUNDED
        for name, fake in fakes.items():
            assert fake.searches >= 1, name
            assert fake.requests == [], name
            assert fake.connections == 0, name
    finally:
        for fake in fakes.values():
            await fake.stop()


async def test_broken_description_on_one_fake_the_other_wins(leak_check: Any) -> None:
    bad_q = Quirks(description_body=b"<not xml")
    async with FakeIGD("127.0.0.2", quirks=bad_q) as bad, FakeIGD("127.0.0.3") as good:
        gw = await discover(**_unicast(bad, good, timeout=0.5))
        try:
            assert gw.location == good.location
        finally:
            await gw.close()


async def test_hanging_description_on_one_fake_the_other_wins(leak_check: Any) -> None:
    hang_q = Quirks(hang_actions=frozenset({"GET"}))
    async with FakeIGD("127.0.0.2", quirks=hang_q) as hung, FakeIGD("127.0.0.3") as good:
        gw = await discover(**_unicast(hung, good, timeout=0.4, http_timeout=5.0))
        try:
            assert gw.location == good.location
        finally:
            await gw.close()


async def test_hanging_description_on_one_fake_the_other_wins_fast(leak_check: Any) -> None:
    hang_q = Quirks(hang_actions=frozenset({"GET"}))
    async with FakeIGD("127.0.0.2", quirks=hang_q) as hung, FakeIGD("127.0.0.3") as good:
        t0 = time.monotonic()
        kw = _unicast(hung, good, timeout=LONG_WINDOW, http_timeout=LONG_WINDOW)
        gw = await discover(**kw)
        try:
            assert gw.location == good.location
            assert time.monotonic() - t0 < FIRST_ANSWER  # not held up by the hung one
        finally:
            await gw.close()


async def test_discover_all_skips_the_broken_one(leak_check: Any) -> None:
    bad_q = Quirks(garbage_http=True)
    async with FakeIGD("127.0.0.2", quirks=bad_q) as bad, FakeIGD("127.0.0.3") as good:
        gateways = await discover_all(**_unicast(bad, good, timeout=0.4))
        try:
            assert [g.location for g in gateways] == [good.location]
        finally:
            for gw in gateways:
                await gw.close()


async def test_only_broken_descriptions_gives_gateway_not_found_with_reason() -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(description_body=b"<nope")) as fake:
        with pytest.raises(GatewayNotFound) as info:
            await discover(**loopback_search(fake, timeout=0.3))
        assert "well-formed" in str(info.value) or "description" in str(info.value)


async def test_description_fetch_timeout_bounded_by_http_timeout() -> None:
    """A gateway whose description never comes: discover_all ends near timeout + http_timeout."""
    hang_q = Quirks(hang_actions=frozenset({"GET"}))
    async with FakeIGD("127.0.0.1", quirks=hang_q) as fake:
        t0 = time.monotonic()
        with pytest.raises(GatewayNotFound):
            await discover_all(**loopback_search(fake, timeout=0.3, http_timeout=0.4))
        # Below the 5 s default request timeout: the configured 0.4 s is what ended it.
        assert time.monotonic() - t0 < 4.0


async def test_discover_cancelled_leaves_nothing_open(leak_check: Any) -> None:
    hang_q = Quirks(hang_actions=frozenset({"GET"}))
    async with FakeIGD("127.0.0.1", quirks=hang_q) as fake:
        task = asyncio.create_task(discover(**loopback_search(fake, timeout=3.0)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_top_level_exports() -> None:
    assert aioigd.discover is discover
    assert issubclass(GatewayNotFound, IGDError)


def test_host_subnets_are_listed_once_for_searches_side_by_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The searches of one multi-layer map each rank their answers by the host's subnets:
    # one listing (ifaddr, through ctypes) serves them all, and an old one is replaced.
    import ipaddress

    import aioigd.discovery as disc

    listings: list[int] = []

    def fake_list() -> list[ipaddress.IPv4Network]:
        listings.append(1)
        return [ipaddress.IPv4Network(f"10.0.{len(listings)}.0/24")]

    monkeypatch.setattr(disc, "_list_networks", fake_list)
    monkeypatch.setattr(disc, "_networks", None)
    now = 1000.0
    first = disc._local_networks(now)
    assert disc._local_networks(now + disc._NETWORKS_TTL / 2) == first
    assert len(listings) == 1
    now += 1.5 * disc._NETWORKS_TTL
    assert disc._local_networks(now) == (ipaddress.IPv4Network("10.0.2.0/24"),)
    disc._local_networks(now - 10 * disc._NETWORKS_TTL)  # a clock that went back: listed again
    assert len(listings) == 3
