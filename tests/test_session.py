"""SoapSession and Gateway.from_location over real HTTP to the FakeIGD (loopback).

Quirks real routers show must work: HTTP/1.0 with application/octet-stream
(the seed's Broadcom router), chunked bodies, Connection: close after every
answer. With a keep-alive gateway, one TCP connection carries every action.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from aioigd import (
    Gateway,
    IGDConnectionError,
    PortMapper,
    RemoteProtocolError,
    SoapSession,
    UnsafeURLError,
)
from aioigd.deadlines import current_deadline
from aioigd.errors import IGDError, IGDTimeoutError, InvalidAction, NoSuchEntryInArray
from aioigd.gateway import ENUMERATION_WINDOW
from aioigd.session import MIN_ATTEMPT, attempt_budget, deadline
from aioigd.testing import FakeIGD, Quirks
from aioigd.testing.model import fault_body

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
        async with await Gateway.from_location(fake.location, http_timeout=2.0) as gw:
            assert gw.service.service_type == fake.service_type
            assert await gw.get_external_ip_address() == "203.0.113.7"
            await gw.add_port_mapping(
                4000, protocol="TCP", internal_port=4000, internal_client="192.168.1.20", lease=600
            )
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
        async with await Gateway.from_location(fake.location, http_timeout=2.0) as gw:
            assert "WANPPPConnection:1" in gw.service.service_type
            assert await gw.port_mappings() == []
            # Index 0 is the empty placeholder, index 1 is 713: one window of indexes.
            assert fake.actions() == ["GetGenericPortMappingEntry"] * ENUMERATION_WINDOW
            async with PortMapper(gw) as pm:
                mapping = await pm.map_port(5555, internal_client="192.168.1.77", lease=600)
            assert mapping.external_port == 5555
            assert ("TCP", 5555) in fake.mappings


async def test_keep_alive_one_connection_for_many_actions(fake_igd: FakeIGD) -> None:
    async with await Gateway.from_location(fake_igd.location) as gw:
        for _ in range(5):
            await gw.get_external_ip_address()
        await gw.get_status_info()
        await gw.get_nat_rsip_status()
        await gw.add_port_mapping(
            4100, protocol="UDP", internal_port=4100, internal_client="192.168.1.2"
        )
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


# -- lossy links: deadline and retries (issue 10) ------------------------------------------------

WAN = "urn:schemas-upnp-org:service:WANIPConnection:1"
_EXTIP_REPLY = (
    '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    '<s:Body><u:GetExternalIPAddressResponse xmlns:u="' + WAN + '">'
    "<NewExternalIPAddress>203.0.113.9</NewExternalIPAddress>"
    "</u:GetExternalIPAddressResponse></s:Body></s:Envelope>"
).encode()


class Scripted:
    """A raw HTTP server on loopback: plays one behaviour per connection, in order
    ("hang": read the request, never answer; "drop": read it, close; "ok": 200;
    a number: that UPnP fault), then "ok" forever. Records the actions it read."""

    def __init__(self, *plays: str | int) -> None:
        self.plays = list(plays)
        self.actions: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._stop = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._stop.set()
        self._server.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ctl/IPConn"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._play(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _play(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        action = ""
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            if name.lower() == "soapaction":
                action = value.strip().strip('"').rpartition("#")[2]
        await reader.readexactly(length)
        self.actions.append(action)
        play = self.plays.pop(0) if self.plays else "ok"
        if play == "hang":
            await self._stop.wait()
        elif play == "ok":
            body = _EXTIP_REPLY if action == "GetExternalIPAddress" else b""
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif isinstance(play, int):
            body = fault_body(play)
            writer.write(b"HTTP/1.1 500 Err\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


@pytest.mark.parametrize(
    ("remaining", "attempt", "expected"),
    [
        (5.0, 0, 1.25),  # a quarter of the time for the first of three attempts
        (3.75, 1, 1.25),  # then a third of what is left
        (2.5, 2, 2.5),  # the last gets everything left: half of the whole
        (2.0, 0, 2.0),  # too little for two attempts of MIN_ATTEMPT: one gets all
        (3.0, 0, MIN_ATTEMPT),  # never shorter than a SYN retransmit
        (30.0, 5, 30.0),
    ],
)
def test_attempt_budget(remaining: float, attempt: int, expected: float) -> None:
    assert attempt_budget(remaining, attempt) == pytest.approx(expected)


async def test_an_unanswered_question_is_asked_again_in_time() -> None:
    async with Scripted("hang") as server:
        async with SoapSession("127.0.0.1", timeout=4.0) as s:
            loop = asyncio.get_running_loop()
            start = loop.time()
            out = await s.call(server.url, WAN, "GetExternalIPAddress")
            took = loop.time() - start
        assert out == {"NewExternalIPAddress": "203.0.113.9"}
        assert server.actions == ["GetExternalIPAddress"] * 2
        assert MIN_ATTEMPT <= took < 4.0  # the first attempt was cut short, within the timeout


async def test_add_any_port_mapping_is_not_sent_again_after_a_timeout() -> None:
    async with Scripted("hang") as server:
        async with SoapSession("127.0.0.1", timeout=1.0) as s:
            with pytest.raises(IGDTimeoutError, match="no answer within 1 s"):
                await s.call(server.url, WAN, "AddAnyPortMapping")
        assert server.actions == ["AddAnyPortMapping"]


async def test_a_delete_whose_reply_was_lost_is_done() -> None:
    """The first copy deleted the mapping and its reply was lost; the second copy's 714
    means done, not "not found"."""
    async with Scripted("drop", 714) as server:
        async with SoapSession("127.0.0.1", timeout=3.0) as s:
            assert await s.call(server.url, WAN, "DeletePortMapping") == {}
        assert server.actions == ["DeletePortMapping"] * 2
    async with Scripted(714) as server:  # a first answer of 714 stays "no such entry"
        async with SoapSession("127.0.0.1", timeout=3.0) as s:
            with pytest.raises(NoSuchEntryInArray):
                await s.call(server.url, WAN, "DeletePortMapping")


async def test_the_command_deadline_bounds_every_request() -> None:
    async with Scripted("hang", "hang", "hang") as server:
        async with SoapSession("127.0.0.1", timeout=20.0) as s:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with deadline(0.6), pytest.raises(IGDTimeoutError):
                await s.call(server.url, WAN, "GetExternalIPAddress")
            assert loop.time() - start < 5.0  # generous; without the deadline: 20 s
            with deadline(0.0), pytest.raises(IGDTimeoutError, match="deadline"):
                await s.call(server.url, WAN, "GetExternalIPAddress")
        assert len(server.actions) == 1  # 0.6 s is too short to cut: one attempt, none after


async def test_deadline_is_inherited_by_tasks_and_never_extended() -> None:
    loop = asyncio.get_running_loop()
    with deadline(10.0) as outer:
        with deadline(60.0) as inner:
            assert inner == outer  # a nested deadline never extends an outer one
        seen = await asyncio.create_task(_current_deadline())
    assert seen == outer
    assert outer <= loop.time() + 10.0
    assert await _current_deadline() is None


async def _current_deadline() -> float | None:
    return current_deadline()


class RawReply:
    """Serves one canned reply (bytes) to every connection, then closes."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawReply:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.reply)
            await writer.drain()
        writer.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
        b"SMTP 220 hello\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
        b"HTTP/1.1 301 Moved\r\nLocation: http://evil/\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["empty", "cut-head", "cut-body", "not-http", "two-lengths", "redirect", "bad-chunk"],
)
async def test_broken_replies_are_typed_errors(reply: bytes) -> None:
    """Whatever a broken gateway sends back, the caller gets an IGDError, in time."""
    async with RawReply(reply) as server:
        async with SoapSession("127.0.0.1", timeout=3.0) as s:
            with pytest.raises(IGDError):
                await s.get(f"http://127.0.0.1:{server.port}/d.xml")
