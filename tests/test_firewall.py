"""WANIPv6FirewallControl against the in-process fake firewall on ::1."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

import aioigd
from aioigd.cli import main
from aioigd.errors import (
    ActionNotSupported,
    FirewallDisabled,
    InboundPinholeNotAllowed,
    NoSuchPinhole,
    UPnPError,
)
from aioigd.firewall import FirewallControl, FirewallUnavailable, KeptPinhole
from aioigd.keeper import Leftover
from aioigd.lifecycle import State
from aioigd.models import Pinhole
from aioigd.testing import FakeIGD


@pytest.fixture
async def fake6() -> AsyncIterator[FakeIGD]:
    async with FakeIGD("::1", firewall=True) as fake:
        yield fake


@pytest.fixture
async def fc(fake6: FakeIGD) -> AsyncIterator[FirewallControl]:
    async with await aioigd.Gateway.from_location(fake6.location) as gw:
        async with FirewallControl.from_gateway(gw) as control:
            yield control


async def test_every_action_typed(fake6: FakeIGD, fc: FirewallControl) -> None:
    status = await fc.get_firewall_status()
    assert status.firewall_enabled and status.inbound_pinhole_allowed
    uid = await fc.add_pinhole(8000, "TCP", lease=60)
    assert uid in fake6.pinholes
    assert fake6.pinholes[uid].key == ("", 0, "::1", 8000, 6)
    # the same 5-tuple again extends it and returns the same id (spec)
    assert await fc.add_pinhole(8000, "TCP", lease=120) == uid
    await fc.update_pinhole(uid, 300)
    assert await fc.get_pinhole_packets(uid) == 0
    assert await fc.check_pinhole_working(uid) is False  # 709 = no traffic yet
    fake6.pinholes[uid].packets = 3
    assert await fc.get_pinhole_packets(uid) == 3
    assert await fc.check_pinhole_working(uid) is True
    await fc.delete_pinhole(uid)
    assert not fake6.pinholes
    with pytest.raises(NoSuchPinhole) as err:
        await fc.delete_pinhole(uid)
    assert err.value.code == 704 and err.value.action == "DeletePinhole"
    with pytest.raises(UPnPError) as err2:
        await fc.get_outbound_pinhole_timeout(8000)
    assert err2.value.code == 602


async def test_arguments_sent_in_canonical_form(fake6: FakeIGD, fc: FirewallControl) -> None:
    await fc.add_pinhole(9000, "UDP", lease=10, remote_host="2001:DB8:0:0::1", remote_port=5)
    args = fake6.requests[-1].args
    assert args == {
        "RemoteHost": "2001:db8::1",
        "RemotePort": "5",
        "InternalClient": "::1",
        "InternalPort": "9000",
        "Protocol": "17",
        "LeaseTime": "10",
    }


@pytest.mark.parametrize("lease", [0, 86401, -1])
async def test_lease_outside_1_to_86400_is_refused_locally(
    fake6: FakeIGD, fc: FirewallControl, lease: int
) -> None:
    with pytest.raises(ValueError):
        await fc.add_pinhole(8000, lease=lease)
    assert not [r for r in fake6.requests if r.action == "AddPinhole"]


async def test_open_pinhole_checks_firewall_status_first(
    fake6: FakeIGD, fc: FirewallControl
) -> None:
    fake6.quirks.firewall_enabled = False
    with pytest.raises(FirewallUnavailable, match="disabled"):
        await fc.open_pinhole(8000)
    fake6.quirks.firewall_enabled = True
    fake6.quirks.inbound_pinhole_allowed = False
    with pytest.raises(FirewallUnavailable, match="not allow"):
        await fc.open_pinhole(8000)
    assert "AddPinhole" not in [r.action for r in fake6.requests]
    # The raw actions get the gateway's typed faults.
    with pytest.raises(InboundPinholeNotAllowed):
        await fc.add_pinhole(8000)
    fake6.quirks.firewall_enabled = False
    with pytest.raises(FirewallDisabled):
        await fc.add_pinhole(8000)


async def test_other_clients_address_is_refused_606(fake6: FakeIGD) -> None:
    async with await aioigd.Gateway.from_location(fake6.location) as gw:
        # We cannot bind to another address on lo, so name one we are not.
        fc = FirewallControl(gw.firewall, gw.location, internal_client="::1")  # type: ignore[arg-type]
        async with fc:
            fake6.quirks.pinhole_owner_check = True
            fc.internal_client = "2001:db8::99"
            with pytest.raises(aioigd.ActionNotAuthorized):
                await fc.add_pinhole(8000)


async def test_open_pinhole_is_one_shot(fake6: FakeIGD, fc: FirewallControl) -> None:
    hole = await fc.open_pinhole(8000, lease=2)
    assert isinstance(hole, Pinhole)
    assert hole.unique_id in fake6.pinholes
    assert (hole.internal_client, hole.internal_port, hole.lease) == ("::1", 8000, 2)
    assert fc.active() == [] and fc.kept() == []
    await asyncio.sleep(1.3)
    assert "UpdatePinhole" not in [r.action for r in fake6.requests]
    await fc.release(hole)
    assert not fake6.pinholes


async def test_managed_pinhole_renews_and_is_re_added_after_loss(
    fake6: FakeIGD, fc: FirewallControl
) -> None:
    hole = await fc.keep_pinhole(8000, lease=2)
    assert isinstance(hole, KeptPinhole)
    first = hole.current
    await asyncio.sleep(1.3)
    assert "UpdatePinhole" in [r.action for r in fake6.requests]
    assert hole.state is State.ACTIVE
    fake6.pinholes.clear()  # router reboot
    for _ in range(30):
        await asyncio.sleep(0.1)
        # Not "the fake has a pinhole again": it has one before its reply reaches us.
        if hole.state is State.RECOVERED:
            break
    assert fake6.pinholes, "the lost pinhole was not re-added"
    (renewed,) = fc.active()
    assert renewed.unique_id != first.unique_id
    assert hole.unique_id == renewed.unique_id
    assert hole.state is State.RECOVERED
    await fc.release(first)  # release by the original value still finds it
    assert not fake6.pinholes
    assert fc.active() == []
    assert hole.state is State.RELEASED


async def test_close_reports_what_it_could_not_delete(fake6: FakeIGD) -> None:
    async with await aioigd.Gateway.from_location(fake6.location) as gw:
        fc = FirewallControl.from_gateway(gw, http_timeout=1.0)
        kept = await fc.keep_pinhole(8000, lease=60)
        await fc.open_pinhole(8001, lease=60)  # one-shot: not deleted by close
        fake6.quirks.fail_actions = {"DeletePinhole": 501}
        leftovers = await fc.close()
        assert [type(x) for x in leftovers] == [Leftover]
        assert leftovers[0].subject == kept.current
        assert isinstance(leftovers[0].error, aioigd.UPnPError)
        assert leftovers[0].gateway == fake6.location
        assert len(fake6.pinholes) == 2
        assert await fc.close() == []


async def test_context_manager_deletes_on_exit_and_on_cancel(
    fake6: FakeIGD, fc: FirewallControl
) -> None:
    async with fc.pinhole(8000, lease=60) as hole:
        assert isinstance(hole, KeptPinhole)
        assert hole.unique_id in fake6.pinholes
        assert fc.active() == [hole.current]
    assert not fake6.pinholes
    assert hole.state is State.RELEASED

    entered = asyncio.Event()

    async def user() -> None:
        async with fc.pinhole(8001, lease=60):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(user())
    await entered.wait()
    assert fake6.pinholes
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not fake6.pinholes


async def test_cancelled_add_leaves_nothing(fake6: FakeIGD, fc: FirewallControl) -> None:
    fake6.quirks.delay = 0.2
    task = asyncio.create_task(fc.open_pinhole(8000, lease=60))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if any(r.action == "AddPinhole" for r in fake6.requests):
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)  # let the server finish the add it had received
    fake6.quirks.delay = 0
    assert not fake6.pinholes or all(
        h.expires - asyncio.get_running_loop().time() < 5 for h in fake6.pinholes.values()
    )


async def test_ipv4_only_gateway_has_no_pinholes() -> None:
    async with FakeIGD("127.0.0.1", firewall=True) as fake:
        async with await aioigd.Gateway.from_location(fake.location) as gw:
            with pytest.raises(ActionNotSupported, match="IPv6"):
                FirewallControl.from_gateway(gw)
    async with FakeIGD("::1") as fake:
        async with await aioigd.Gateway.from_location(fake.location) as gw:
            with pytest.raises(ActionNotSupported, match="WANIPv6FirewallControl"):
                FirewallControl.from_gateway(gw)


async def test_discover_over_ipv6_unicast(fake6: FakeIGD) -> None:
    gw = await aioigd.discover(
        timeout=2,
        ipv4=False,
        ipv6=True,
        multicast=False,
        default_gateways=False,
        unicast=[f"[::1]:{fake6.ssdp_port}"],
    )
    async with gw:
        assert gw.firewall is not None
        assert gw.firewall.control_url.startswith("http://[::1]:")


# -- CLI -------------------------------------------------------------------------------


@pytest.fixture
def fake6_thread() -> Iterator[FakeIGD]:
    """The fake on its own loop in a thread, so the CLI can run asyncio.run()."""
    loop = asyncio.new_event_loop()
    fake = FakeIGD("::1", firewall=True)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    yield fake
    asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_pinhole_lifecycle(fake6_thread: FakeIGD) -> None:
    gw = ("--gateway", fake6_thread.location)
    code, out, _ = cli("pinhole", "status", "--json", *gw)
    assert code == 0
    assert json.loads(out) == {
        "firewall_enabled": True,
        "inbound_pinhole_allowed": True,
        "location": fake6_thread.location,
    }
    code, out, err = cli("pinhole", "add", "8000", "--lease", "600", "--json", *gw)
    assert code == 0, err
    hole = json.loads(out)
    assert hole["internal_client"] == "::1" and hole["internal_port"] == 8000
    uid = str(hole["unique_id"])
    assert int(uid) in fake6_thread.pinholes, "without --hold the pinhole stays"
    assert cli("pinhole", "update", uid, "--lease", "900", *gw)[0] == 0
    code, out, _ = cli("pinhole", "packets", uid, "--json", *gw)
    assert json.loads(out) == {"unique_id": int(uid), "packets": 0}
    code, out, _ = cli("pinhole", "check", uid, *gw)
    assert code == 0 and "no traffic yet" in out
    assert cli("pinhole", "delete", uid, *gw)[0] == 0
    assert not fake6_thread.pinholes
    code, out, err = cli("pinhole", "delete", uid, *gw)
    assert code == 4
    assert err.count("\n") == 1 and "704" in err and "Traceback" not in err
    code, _, err = cli("pinhole", "add", "8000", "--lease", "0", *gw)
    assert code == 2


def test_cli_pinhole_disabled_firewall_is_one_clear_line(fake6_thread: FakeIGD) -> None:
    fake6_thread.quirks.firewall_enabled = False
    code, out, err = cli("pinhole", "add", "8000", "--gateway", fake6_thread.location)
    assert code == 1
    assert err.startswith("aioigd: error:") and "disabled" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "fault"),
    [
        ({"InternalPort": "0"}, aioigd.errors.InternalPortWildcardingNotAllowed),
        ({"Protocol": "65535"}, aioigd.errors.ProtocolWildcardingNotAllowed),
        ({"InternalClient": "*"}, aioigd.errors.PinholeWildCardNotPermittedInSrcIP),
        ({"Protocol": "1"}, aioigd.errors.ProtocolNotSupported),
        ({"LeaseTime": "0"}, aioigd.InvalidArgs),
    ],
)
async def test_wildcards_the_gateway_refuses_are_typed(
    fake6: FakeIGD, fc: FirewallControl, args: dict[str, str], fault: type[Exception]
) -> None:
    """aioigd never sends these itself (it validates first); sent raw, the gateway's
    firewall-specific 7xx codes decode to the firewall's exception classes."""
    base = {
        "RemoteHost": "",
        "RemotePort": "0",
        "InternalClient": "::1",
        "InternalPort": "8000",
        "Protocol": "6",
        "LeaseTime": "60",
    }
    base.update(args)
    with pytest.raises(fault) as err:
        await fc.session.call(
            fc.service.control_url, fc.service.service_type, "AddPinhole", list(base.items())
        )
    assert isinstance(err.value, aioigd.UPnPError)
    assert err.value.action == "AddPinhole"


async def test_fault_is_in_the_traffic_log(
    fake6: FakeIGD, fc: FirewallControl, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aioigd.traffic")
    with pytest.raises(NoSuchPinhole):
        await fc.delete_pinhole(4242)
    faults = [r.getMessage() for r in caplog.records if "fault:" in r.getMessage()]
    assert len(faults) == 1 and "DeletePinhole: UPnP error 704" in faults[0]
