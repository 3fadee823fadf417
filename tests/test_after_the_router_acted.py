"""Issue 10 on the FakeIGD: nothing left behind whatever fails after AddPortMapping was sent,
one malformed entry does not spoil the table, and ``delete`` of nothing says so.

The leak rule is swept over every step of the map flow that follows the add.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from aioigd import BehindAnotherNAT, Gateway, IGDError, PortMapper, UPnPError
from aioigd.cli import ExitCode, main
from aioigd.testing import FakeIGD, FakeMapping, Quirks

ME = "127.0.0.1"


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeIGD]:
    async with FakeIGD(version=request.param) as f:
        yield f


# Every way the flow can break once the router has acted: the add's own reply is unreadable
# or never comes, the verification reply is, or the external-address reply is garbage.
BREAKS = {
    "add-reply-garbage": Quirks(garbage_after=frozenset({"AddPortMapping"})),
    "add-reply-lost": Quirks(hang_after=frozenset({"AddPortMapping"})),
    "verify-reply-garbage": Quirks(garbage_after=frozenset({"GetSpecificPortMappingEntry"})),
    "verify-reply-lost": Quirks(hang_after=frozenset({"GetSpecificPortMappingEntry"})),
    "external-ip-garbage": Quirks(external_ip_value="not an address"),
    "external-ip-loopback": Quirks(external_ip_value="127.0.0.1"),
    "external-ip-lost": Quirks(hang_actions=frozenset({"GetExternalIPAddress"})),
}


@pytest.mark.parametrize("name", list(BREAKS))
async def test_whatever_fails_after_the_add_nothing_is_left_behind(
    fake: FakeIGD, name: str
) -> None:
    gw = await Gateway.from_location(fake.location, http_timeout=0.5)
    async with gw, PortMapper(gw) as pm:
        await pm.table()  # the listing is not what is being broken
        fake.quirks = BREAKS[name]
        with pytest.raises(IGDError) as info:
            await pm.map_port(5000, lease=600)
        fake.quirks = Quirks()
    assert "AddPortMapping" in fake.actions()  # the router acted ...
    assert fake.mappings == {}, f"{name}: mapping left behind"  # ... and it was undone
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "removed" in notes or "not created" in notes, notes  # and it says so


async def test_cleanup_never_deletes_another_hosts_entry(fake: FakeIGD) -> None:
    gw = await Gateway.from_location(fake.location, http_timeout=0.5)
    async with gw, PortMapper(gw) as pm:
        await pm.table()
        fake.quirks = Quirks(garbage_after=frozenset({"AddPortMapping"}))
        real = fake._do_AddPortMapping

        def add_then_lose_the_port(a: dict[str, str]) -> list[tuple[str, str]]:
            real(a)  # the add worked, then another host got the port (a lease race)
            fake.mappings[("TCP", 5000)] = FakeMapping(
                "", 5000, "TCP", 5000, "192.168.1.9", True, "x", 0, None
            )
            return []

        fake._do_AddPortMapping = add_then_lose_the_port  # type: ignore[method-assign]
        with pytest.raises(IGDError) as info:
            await pm.map_port(5000, lease=600)
    assert fake.mappings[("TCP", 5000)].internal_client == "192.168.1.9"
    assert "left alone" in " ".join(info.value.__notes__)


# -- one bad entry ---------------------------------------------------------------------------


def _entry(port: int, client: str = ME) -> FakeMapping:
    return FakeMapping("", port, "TCP", 7000, client, True, "someone", 0, None)


BAD_CLIENT = "h" * 300  # an internal client no real entry has


async def test_one_malformed_entry_is_skipped_and_the_table_still_read(fake: FakeIGD) -> None:
    fake.mappings[("TCP", 7001)] = _entry(7001)
    fake.mappings[("TCP", 7002)] = _entry(7002, BAD_CLIENT)
    fake.mappings[("TCP", 7003)] = _entry(7003)
    if fake.version == 1:  # entry by entry: the ExternalPort 99999
        fake.mappings[("TCP", 99999)] = _entry(99999)
    async with await Gateway.from_location(fake.location) as gw:
        entries = await gw.port_mappings()
        assert sorted(e.external_port for e in entries) == [7001, 7003]
        assert len(gw.skipped_entries) == (2 if fake.version == 1 else 1)
        assert any("99999" in s for s in gw.skipped_entries) == (fake.version == 1)
        async with PortMapper(gw) as pm:
            mapping = await pm.map_port(7001, lease=600)  # mapping still works
            assert mapping.external_port == 7001


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def threaded_fake() -> Iterator[FakeIGD]:
    """A FakeIGD on its own loop in a thread, for the CLI (which runs its own loop)."""
    ready = threading.Event()
    holder: dict[str, object] = {}
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        async with FakeIGD(version=2) as f:
            holder["fake"] = f
            ready.set()
            while not holder.get("stop"):
                await asyncio.sleep(0.02)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    fake = holder["fake"]
    assert isinstance(fake, FakeIGD)
    yield fake
    holder["stop"] = True
    thread.join(5)
    loop.close()


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_list_prints_the_good_entries_and_a_note(threaded_fake: FakeIGD) -> None:
    threaded_fake.mappings[("TCP", 7001)] = _entry(7001)
    threaded_fake.mappings[("TCP", 7002)] = _entry(7002, BAD_CLIENT)
    code, out, err = run_cli("list", "--gateway", threaded_fake.location, "--json")
    assert code == ExitCode.OK, err
    listed = json.loads(out)
    assert [e["external_port"] for e in listed["port_mappings"]] == [7001]
    assert listed["skipped_entries"] == 1
    assert err.count("skipped a malformed entry") == 1 and "not valid" in err


def test_cli_delete_of_nothing_says_not_found(threaded_fake: FakeIGD) -> None:
    threaded_fake.quirks.delete_missing_ok = True  # miniupnpd answers 200 for nothing
    code, out, err = run_cli("delete", "7005", "--gateway", threaded_fake.location)
    assert code == ExitCode.UPNP_FAULT
    assert out == "" and "714" in err and err.count("\n") == 1
    assert "DeletePortMapping" not in threaded_fake.actions()


def test_cli_add_whose_reply_is_garbage_fails_and_says_it_cleaned_up(
    threaded_fake: FakeIGD,
) -> None:
    threaded_fake.quirks.garbage_after = frozenset({"AddPortMapping"})
    code, out, err = run_cli("add", "7006", "--gateway", threaded_fake.location)
    assert code == ExitCode.ERROR
    assert threaded_fake.mappings == {}
    assert "removed the TCP 7006 mapping it may have created" in err and err.count("\n") == 1


# -- double NAT explained ------------------------------------------------------------------


@pytest.mark.parametrize("wan", ["", "192.168.0.2", "100.72.1.9"])
async def test_501_behind_another_nat_is_explained(fake: FakeIGD, wan: str) -> None:
    """miniupnpd with a private WAN: GetExternalIPAddress empty, AddPortMapping 501."""
    fake.quirks.external_ip_value = wan
    fake.quirks.fail_actions = {"AddPortMapping": 501}
    gw = await Gateway.from_location(fake.location)
    async with gw, PortMapper(gw) as pm:
        with pytest.raises(BehindAnotherNAT) as info:
            await pm.map_port(5000)
    text = str(info.value)
    assert f"router at {fake.host}" in text and "behind another NAT" in text
    assert (wan or "reports no WAN address") in text and "--layers auto" in text
    assert info.value.external_ip == (wan or None)
    assert isinstance(info.value.__cause__, UPnPError) and info.value.__cause__.code == 501


async def test_501_with_a_public_wan_stays_the_fault(fake: FakeIGD) -> None:
    fake.quirks.fail_actions = {"AddPortMapping": 501}
    gw = await Gateway.from_location(fake.location)
    async with gw, PortMapper(gw) as pm:
        with pytest.raises(UPnPError) as info:
            await pm.map_port(5000)
    assert info.value.code == 501 and not isinstance(info.value, BehindAnotherNAT)


def test_cli_external_ip_without_an_address_hints_at_double_nat(threaded_fake: FakeIGD) -> None:
    threaded_fake.quirks.external_ip_value = ""
    code, out, err = run_cli("external-ip", "--gateway", threaded_fake.location)
    assert code != ExitCode.OK and out == ""
    assert "behind another NAT" in err and err.count("\n") == 1


# -- which WAN connection ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "ppp", "dead"),
    [(1, False, "ip"), (1, True, "ip"), (2, False, "ip"), (1, False, "ppp")],
    ids=["ip1-behind-dead-ip1", "ppp-behind-dead-ip1", "ip2-beside-dead-ip1", "ip1-dead-ppp"],
)
async def test_a_dead_wan_listed_first_is_not_used(version: int, ppp: bool, dead: str) -> None:
    """Issue 10: with the first WAN Disconnected, external-ip failed and add mapped onto it."""
    async with FakeIGD(version=version, ppp=ppp, quirks=Quirks(dead_wan_first=dead)) as fake:
        gw = await Gateway.from_location(fake.location)
        async with gw, PortMapper(gw) as pm:
            assert len(gw.description.connection_services()) == 2
            assert gw.service.control_url.endswith(fake.control_path)
            assert gw.choice.startswith("connected, external address 203.0.113.7")
            assert "disconnected" in gw.choice
            assert await gw.get_external_ip_address() == "203.0.113.7"
            mapping = await pm.map_port(5000, lease=600)
            assert fake.mappings[("TCP", mapping.external_port)].internal_client == ME
        dead_requests = [r.action for r in fake.requests if r.path == "/ctl/DeadConn"]
        # Asked twice while choosing; then every step of the map flow went to the live one.
        assert sorted(dead_requests) == ["GetExternalIPAddress", "GetStatusInfo"]


async def test_one_wan_connection_is_not_probed(fake: FakeIGD) -> None:
    async with await Gateway.from_location(fake.location) as gw:
        assert gw.choice == "the only WAN connection service"
    assert fake.actions() == []


# -- lossy links ---------------------------------------------------------------------------


async def test_a_reset_request_is_sent_again_within_the_timeout(fake: FakeIGD) -> None:
    """Issue 10: under loss one request failing made the whole map fail (and leak)."""
    gw = await Gateway.from_location(fake.location, http_timeout=2.0)
    async with gw, PortMapper(gw) as pm:
        await pm.table()
        for lost in ("AddPortMapping", "GetSpecificPortMappingEntry", "GetExternalIPAddress"):
            pm.flow.forget_external_ip()  # ask for it each time (no 10 s cache)
            fake.requests.clear()
            fake.quirks.lose_requests, fake.quirks.lose_action = 1, lost
            mapping = await pm.map_port(5000, lease=600)
            assert fake.mappings[("TCP", mapping.external_port)].internal_client == ME
            assert fake.quirks.lose_requests == 0
            # Exactly the lost one was sent twice; nothing else was repeated.
            assert sorted(fake.actions()) == sorted(
                [lost, "AddPortMapping", "GetSpecificPortMappingEntry", "GetExternalIPAddress"]
            ), (lost, fake.actions())


async def test_add_any_port_mapping_is_never_sent_twice() -> None:
    async with FakeIGD(version=2) as fake:
        gw = await Gateway.from_location(fake.location, http_timeout=2.0)
        async with gw:
            fake.quirks.lose_requests = 1
            with pytest.raises(IGDError):
                await gw.add_any_port_mapping(
                    5000, protocol="TCP", internal_port=5000, internal_client=ME
                )
            assert fake.actions() == ["AddAnyPortMapping"]


async def test_a_request_reset_every_time_fails_within_the_timeout(fake: FakeIGD) -> None:
    from aioigd.session import MAX_ATTEMPTS

    gw = await Gateway.from_location(fake.location, http_timeout=1.0)
    async with gw:
        fake.quirks.lose_requests = MAX_ATTEMPTS
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(IGDError):
            await gw.get_external_ip_address()
        # Resets are instant; under two timeouts (1 s each) shows the retries share one.
        assert loop.time() - start < 1.9
        assert fake.actions() == ["GetExternalIPAddress"] * MAX_ATTEMPTS


async def test_m_search_is_sent_again_across_the_whole_window() -> None:
    """Issue 10: resends stopped at 1.5 s of a 3 s window; under 80% loss that lost answers."""
    from aioigd.discovery import SearchOptions, discover

    async with FakeIGD() as fake:
        fake.quirks.ignore_searches = 4  # the sends at 0, 0.25, 0.75 and 1.5 s are lost
        opts = SearchOptions(
            timeout=3.0,
            multicast=False,
            default_gateways=False,
            unicast=[(fake.host, fake.ssdp_port)],
        )
        async with await discover(opts) as gw:
            assert gw.location == fake.location
        assert fake.searches == 5
