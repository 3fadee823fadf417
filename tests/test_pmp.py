"""PCP / NAT-PMP clients, PmpMapper and the protocol probe against FakePcpServer on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

from aioigd import NetworkPolicyError
from aioigd.anymapper import map_first, parse_protocols, probe_gateway
from aioigd.deadlines import deadline
from aioigd.errors import (
    IGDConnectionError,
    IGDTimeoutError,
    MappingRefused,
    PmpAddressMismatch,
    PmpError,
    PmpNotAuthorized,
    PmpUnsupportedVersion,
    PortInUse,
)
from aioigd.lifecycle import State
from aioigd.models import Transport
from aioigd.multilayer import MultiLayerMapper
from aioigd.pmp import NatPmpClient, PcpClient, retransmit_delays
from aioigd.pmpmapper import PmpMapper
from aioigd.testing import FakeIGD, FakePcpServer, PcpQuirks

TCP = Transport.TCP
NONCE = b"n" * 12


@contextlib.asynccontextmanager
async def server(**kw: object) -> AsyncIterator[FakePcpServer]:
    async with FakePcpServer(**kw) as fake:  # type: ignore[arg-type]
        yield fake


def pcp(fake: FakePcpServer) -> PcpClient:
    return PcpClient(fake.host, port=fake.port)


def natpmp(fake: FakePcpServer) -> NatPmpClient:
    return NatPmpClient(fake.host, port=fake.port)


def test_retransmit_schedule_doubles_within_the_deadline() -> None:
    assert retransmit_delays(0.25, 2.0) == [0.25, 0.75, 1.75]
    assert retransmit_delays(3.0, 20.0) == [3.0, 9.0]
    assert retransmit_delays(1.0, 10_000.0, cap=4.0)[:5] == [1.0, 3.0, 7.0, 11.0, 15.0]


async def test_pcp_map_renew_delete() -> None:
    async with server() as fake:
        async with pcp(fake) as client:
            await client.probe()
            grant = await client.map(TCP, 7000, lifetime=600, nonce=NONCE, suggested_port=7000)
            assert (grant.external_ip, grant.external_port, grant.lifetime) == (
                "203.0.113.7", 7000, 600,
            )  # fmt: skip
            again = await client.map(TCP, 7000, lifetime=600, nonce=NONCE, suggested_port=7000)
            assert again.external_port == 7000 and len(fake.table) == 1
            await client.map(TCP, 7000, lifetime=0, nonce=NONCE)
            assert fake.table == {}


async def test_pcp_delete_with_another_nonce_is_not_authorized() -> None:
    async with server() as fake, pcp(fake) as client:
        await client.map(TCP, 7000, lifetime=600, nonce=NONCE)
        with pytest.raises(PmpNotAuthorized):
            await client.map(TCP, 7000, lifetime=0, nonce=b"x" * 12)
        assert len(fake.table) == 1


async def test_lost_requests_are_sent_again_and_answers_from_elsewhere_ignored() -> None:
    quirks = PcpQuirks(drop=2, spoof_first=True, wrong_nonce_first=True, garbage_first=b"\x02")
    async with server(quirks=quirks) as fake, pcp(fake) as client:
        grant = await client.map(
            TCP, 7000, lifetime=600, nonce=NONCE, suggested_port=7000, request_timeout=5.0
        )
        assert grant.external_port == 7000
        maps = [r for r in fake.requests if r.opcode == 1]
        assert len(maps) == 3  # two lost, the third answered
        assert fake.table[("TCP", "127.0.0.1", 7000)].nonce == NONCE


async def test_no_answer_is_a_timeout_with_bounded_sends() -> None:
    async with server(quirks=PcpQuirks(drop=1000)) as fake, pcp(fake) as client:
        with pytest.raises(IGDTimeoutError):
            await client.map(TCP, 7000, lifetime=600, nonce=NONCE, request_timeout=1.0)
        assert len(fake.requests) == 1 + len(retransmit_delays(0.25, 1.0))


async def test_the_command_deadline_bounds_pcp_and_natpmp_requests() -> None:
    # deadline() bounds every request in the block, UPnP or not: a silent gateway
    # costs the time left, not the request's own 30 s, and nothing is sent after it.
    async with server(quirks=PcpQuirks(drop=1000)) as fake:
        loop = asyncio.get_running_loop()
        for client in (pcp(fake), natpmp(fake)):
            async with client:
                start = loop.time()
                with deadline(0.6), pytest.raises(IGDTimeoutError):
                    await client.probe(request_timeout=30.0)
                assert loop.time() - start < 10.0  # generous; without the deadline: 30 s
        sent = len(fake.requests)
        assert sent == 2 * (1 + len(retransmit_delays(0.25, 0.6)))  # one resend each
        async with pcp(fake) as client:
            with deadline(0.5) as at:
                await asyncio.sleep(max(0.0, at - loop.time()) + 0.01)
                with pytest.raises(IGDTimeoutError, match="deadline has passed"):
                    await client.probe(request_timeout=30.0)
        assert len(fake.requests) == sent


async def test_nothing_listening_fails_at_once() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The ICMP port-unreachable ends the request: a connection error, not a timeout.
    async with PcpClient("127.0.0.1", port=port) as client:
        with pytest.raises(IGDConnectionError) as info:
            await client.probe(request_timeout=30.0)
        assert not isinstance(info.value, IGDTimeoutError)


async def test_loopback_only_mode_refuses_other_gateways() -> None:
    client = PcpClient("192.0.2.1")
    with pytest.raises(NetworkPolicyError):
        await client.probe()
    assert client._endpoint is None  # no socket was opened


async def test_natpmp_only_gateway() -> None:
    async with server(quirks=PcpQuirks(natpmp_only=True)) as fake:
        async with pcp(fake) as client:
            with pytest.raises(PmpUnsupportedVersion):
                await client.probe()
        async with natpmp(fake) as client:
            assert await client.external_ip() == "203.0.113.7"
            grant = await client.map(TCP, 7000, lifetime=600, nonce=b"", suggested_port=7000)
            assert (grant.external_ip, grant.external_port) == ("203.0.113.7", 7000)
            await client.map(TCP, 7000, lifetime=0, nonce=b"")
            assert fake.table == {}


async def test_address_mismatch_says_a_nat_is_in_between() -> None:
    async with server() as fake, pcp(fake) as client:
        with pytest.raises(PmpAddressMismatch):
            await client.map(TCP, 7000, lifetime=60, nonce=NONCE, client_ip="10.9.9.9")


@pytest.mark.parametrize("make", [pcp, natpmp])
async def test_strict_never_takes_another_port(make: object) -> None:
    async with server(taken={("TCP", 7000)}) as fake:
        async with PmpMapper(make(fake)) as mapper:  # type: ignore[operator]
            with pytest.raises(PortInUse):
                await mapper.map_port(7000, strict=True)
            assert fake.table == {}  # NAT-PMP's other port was given back
            moved = await mapper.map_port(7000)
            assert moved.external_port != 7000 and moved.wanted_port == 7000


async def test_kept_mappings_are_renewed_and_deleted_on_close() -> None:
    async with server(quirks=PcpQuirks(max_lifetime=2)) as fake:
        mapper = PmpMapper(pcp(fake), check_interval=None)
        kept = await mapper.keep(7000, lease=600)
        assert kept.current.mechanism == "pcp" and kept.lease == 2
        assert kept.current.gateway == f"pcp://127.0.0.1:{fake.port}"
        await asyncio.wait_for(_next(kept, "renewed"), 10)
        assert await mapper.close() == []
        assert fake.table == {}
        assert fake.requests[-1].lifetime == 0


async def _next(kept: object, name: str) -> None:
    async for event in kept.events():  # type: ignore[attr-defined]
        if event.name == name:
            return


async def test_a_restart_seen_in_the_epoch_renews_every_mapping_at_once() -> None:
    async with server(quirks=PcpQuirks(max_lifetime=3)) as fake:
        fake.advance_epoch(1000)  # it has been up for a while
        async with PmpMapper(pcp(fake), check_interval=None) as mapper:
            a = await mapper.keep(7000, lease=600)
            b = await mapper.keep(7001, lease=600)
            fake.restart()  # table empty, epoch back to 0
            await asyncio.wait_for(_next(a, "recovered"), 10)
            await asyncio.wait_for(b.wait_for(State.RECOVERED), 5)
            assert {k[2] for k in fake.table} == {7000, 7001}
            assert mapper.client.restarts == 1


async def test_probe_prefers_upnp_but_uses_pcp_when_upnp_is_silent() -> None:
    async with FakeIGD("127.0.0.1") as igd, FakePcpServer("127.0.0.1", 5351) as fake:

        async def upnp() -> object:
            from aioigd.gateway import Gateway

            return await Gateway.from_location(igd.location)

        found = await probe_gateway("127.0.0.1", upnp=upnp, wait_all=True)  # type: ignore[arg-type]
        assert found.speaks == ["upnp", "pcp", "natpmp"]
        await found.aclose()

        async def silent() -> object:
            await asyncio.sleep(30)
            raise AssertionError

        found = await probe_gateway("127.0.0.1", upnp=silent, search_timeout=5.0)  # type: ignore[arg-type]
        # UPnP got the preference window after PCP answered, then was given up on.
        assert found.speaks[0] == "pcp" and "upnp" in found.failures
        mapper, mapping = await map_first(found, lambda m: m.map_port(7000), check_interval=None)
        assert mapping.mechanism == "pcp" and fake.table
        await mapper.close(release=False)
        order = await probe_gateway(
            "127.0.0.1", protocols=parse_protocols("natpmp,pcp"), wait_all=True
        )
        assert order.speaks == ["natpmp", "pcp"]
        await order.aclose()


def test_protocol_lists_are_checked() -> None:
    assert parse_protocols("PCP, upnp,pcp") == ("pcp", "upnp")
    with pytest.raises(ValueError):
        parse_protocols("upnp,stun")
    with pytest.raises(ValueError):
        parse_protocols("")


async def test_multilayer_upnp_then_pcp() -> None:
    """Layer 1 UPnP (private WAN), layer 2 PCP only; the PCP layer maps the first
    layer's external endpoint."""
    async with (
        FakeIGD("127.0.0.2", external_ip="10.0.1.2") as igd,
        FakePcpServer("127.0.0.3", 5351, external_ip="33.0.0.1",
                      quirks=PcpQuirks(ignore_source=True)) as fake,
    ):  # fmt: skip
        m = MultiLayerMapper(
            7000, via=[igd.location, "127.0.0.3"], probe_target=None, search_timeout=1.0
        )
        async with m as result:
            assert result.complete
            assert [x.mechanism for x in result.layers] == ["upnp", "pcp"]
            top = result.layers[1]
            assert (top.internal_client, top.internal_port) == ("10.0.1.2", 7000)
            assert result.public_ip == "33.0.0.1"
            assert ("TCP", "10.0.1.2", 7000) in fake.table
        assert fake.table == {} and not igd.mappings


async def test_another_lan_host_is_a_third_party_mapping() -> None:
    """An internal client other than this host: PCP says so with THIRD_PARTY (and the
    client address field stays ours), NAT-PMP refuses rather than map this host."""
    async with server(quirks=PcpQuirks(allow_third_party=True)) as fake:
        async with PmpMapper(pcp(fake)) as mapper:
            m = await mapper.map_port(7000, internal_client="127.0.0.9")
            assert m.internal_client == "127.0.0.9"
            assert ("TCP", "127.0.0.9", 7000) in fake.table
            await mapper.release(m)
            assert fake.table == {}
        fake.quirks.allow_third_party = False
        async with PmpMapper(pcp(fake)) as mapper:
            with pytest.raises(PmpError, match="UNSUPP_OPTION"):
                await mapper.map_port(7000, internal_client="127.0.0.9")
        async with PmpMapper(natpmp(fake)) as mapper:
            with pytest.raises(MappingRefused, match="only for the host that asks"):
                await mapper.map_port(7000, internal_client="127.0.0.9")
        assert fake.table == {}
        # Behind another NAT the internal client is that NAT's address: no THIRD_PARTY.
        fake.quirks.ignore_source = True
        before = len(fake.requests)
        async with PmpMapper(pcp(fake), behind_nat=True) as mapper:
            m = await mapper.map_port(7000, internal_client="10.0.1.2")
            assert ("TCP", "10.0.1.2", 7000) in fake.table
            maps = [r.data for r in fake.requests[before:] if r.opcode == 1]
            assert maps and all(len(data) == 60 for data in maps)  # no option at all
