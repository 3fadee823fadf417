"""SoapSession and Gateway.from_location over real HTTP to the FakeIGD (loopback).

Quirks real routers show must work: HTTP/1.0 with application/octet-stream
(the seed's Broadcom router), chunked bodies, Connection: close after every
answer. With a keep-alive gateway, one TCP connection carries every action.
"""

from __future__ import annotations

import pytest

from aioigd import (
    Gateway,
    IGDConnectionError,
    PortMapper,
    RemoteProtocolError,
    SoapSession,
    UnsafeURLError,
)
from aioigd.errors import InvalidAction
from aioigd.gateway import ENUMERATION_WINDOW
from aioigd.session import default_transport
from aioigd.testing import FakeIGD, Quirks

QUIRKS = {
    "plain": Quirks(),
    "seed-broadcom": Quirks(http10=True, octet_stream=True, empty_entry_at_zero=True),
    "http10": Quirks(http10=True),
    "octet_stream": Quirks(octet_stream=True),
    "chunked": Quirks(chunked=True),
    "connection_close": Quirks(connection_close=True),
    "chunked+close": Quirks(chunked=True, connection_close=True),
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("name", list(QUIRKS))
async def test_quirky_but_valid_gateways_work(name: str, version: int) -> None:
    q = QUIRKS[name]
    async with FakeIGD("127.0.0.1", version=version, quirks=q) as fake:
        async with await Gateway.from_location(fake.location, timeout=2.0) as gw:
            assert gw.service.service_type == fake.service_type
            assert await gw.get_external_ip_address() == "203.0.113.7"
            await gw.add_port_mapping(4000, "TCP", 4000, "192.168.1.20", lease=600)
            entry = await gw.get_specific_port_mapping_entry(4000, "TCP")
            assert entry.internal_client == "192.168.1.20"
            entries = await gw.port_mappings()
            assert [(e.external_port, e.internal_client) for e in entries] == [
                (4000, "192.168.1.20")
            ]
            await gw.delete_port_mapping(4000, "TCP")
        assert fake.mappings == {}
        if q.http10 or q.connection_close:
            # One connection per request: the client must not try to reuse closed ones.
            assert fake.connections == len(fake.requests)


async def test_seed_router_transcript_flow() -> None:
    """The seed's Broadcom: HTTP/1.0, octet-stream, empty entry at 0, 713 at the end,
    714 on GetSpecific for an unknown port, PPP service."""
    q = Quirks(http10=True, octet_stream=True, empty_entry_at_zero=True)
    async with FakeIGD("127.0.0.1", ppp=True, quirks=q) as fake:
        async with await Gateway.from_location(fake.location, timeout=2.0) as gw:
            assert "WANPPPConnection:1" in gw.service.service_type
            assert await gw.port_mappings() == []
            # Index 0 is the empty placeholder, index 1 is 713: one window of indexes.
            assert fake.actions() == ["GetGenericPortMappingEntry"] * ENUMERATION_WINDOW
            async with PortMapper(gw) as pm:
                mapping = await pm.map_port(5555, internal_client="192.168.1.77", lease=600)
            assert mapping.external_port == 5555
            assert ("TCP", 5555) in fake.mappings


@pytest.mark.skipif(
    default_transport() == "stdlib", reason="the stdlib client opens one connection per request"
)
async def test_keep_alive_one_connection_for_many_actions(fake_igd: FakeIGD) -> None:
    async with await Gateway.from_location(fake_igd.location) as gw:
        for _ in range(5):
            await gw.get_external_ip_address()
        await gw.get_status_info()
        await gw.get_nat_rsip_status()
        await gw.add_port_mapping(4100, "UDP", 4100, "192.168.1.2")
        await gw.get_specific_port_mapping_entry(4100, "UDP")
        await gw.delete_port_mapping(4100, "UDP")
        assert len(fake_igd.requests) == 11  # description GET + 10 actions
        assert fake_igd.connections == 1
        assert gw.session.stats.connections == 1
        assert gw.session.stats.requests == 11


async def test_connection_close_reconnects_each_time() -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(connection_close=True)) as fake:
        async with await Gateway.from_location(fake.location) as gw:
            for _ in range(4):
                await gw.get_external_ip_address()
            assert fake.connections == 5
            assert gw.session.stats.connections == 5


async def test_session_get_and_call_directly(fake_igd: FakeIGD) -> None:
    async with SoapSession("127.0.0.1", timeout=2.0) as session:
        body = await session.get(fake_igd.location)
        assert b"InternetGatewayDevice" in body
        control = f"http://127.0.0.1:{fake_igd.http_port}{fake_igd.control_path}"
        out = await session.call(control, fake_igd.service_type, "GetExternalIPAddress")
        assert out == {"NewExternalIPAddress": "203.0.113.7"}
        with pytest.raises(InvalidAction) as info:
            await session.call(control, fake_igd.service_type, "NoSuchAction")
        assert info.value.code == 401
        assert info.value.action == "NoSuchAction"


async def test_session_404_is_remote_protocol_error(fake_igd: FakeIGD) -> None:
    async with SoapSession("127.0.0.1", timeout=2.0) as session:
        with pytest.raises(RemoteProtocolError, match="404"):
            await session.get(f"http://127.0.0.1:{fake_igd.http_port}/nope.xml")


async def test_session_refuses_other_hosts_without_sending(fake_igd: FakeIGD) -> None:
    async with FakeIGD("127.0.0.9") as other:
        async with SoapSession("127.0.0.1", timeout=2.0) as session:
            with pytest.raises(UnsafeURLError):
                await session.get(other.location)
            with pytest.raises(UnsafeURLError):
                await session.call(
                    f"http://127.0.0.9:{other.http_port}{other.control_path}",
                    other.service_type,
                    "GetExternalIPAddress",
                )
            assert session.stats.requests == 0
        assert other.requests == []
        assert other.connections == 0


async def test_session_connection_refused_is_igd_connection_error() -> None:
    async with FakeIGD("127.0.0.1") as fake:
        location = fake.location
    async with SoapSession("127.0.0.1", timeout=2.0) as session:
        with pytest.raises(IGDConnectionError):
            await session.get(location)


async def test_session_close_is_idempotent_and_final(fake_igd: FakeIGD) -> None:
    """A closed session never opens a new aiohttp client: nothing could close that one."""
    session = SoapSession("127.0.0.1", timeout=2.0)
    await session.get(fake_igd.location)
    await session.close()
    await session.close()
    with pytest.raises(IGDConnectionError, match="closed"):
        await session.get(fake_igd.location)
    assert session.stats.requests == 1  # the refused one was never sent
    assert fake_igd.connections == 1


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/rootDesc.xml",
        "http://user:pw@127.0.0.1:1/rootDesc.xml",
        "http://127.0.0.1:1/" + "x" * 2000,
        "javascript:alert(1)",
    ],
    ids=["file", "ftp", "userinfo", "long", "javascript"],
)
async def test_from_location_refuses_unsafe_urls(location: str) -> None:
    with pytest.raises(UnsafeURLError):
        await Gateway.from_location(location)
