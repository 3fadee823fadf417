"""Hostile and broken gateways: every failure is a typed IGDError, in bounded requests and memory.

Request timeouts are small (0.5 s). Nothing here measures elapsed time: each call runs
under a guard (``GUARD``, 4 s) shorter than the 5 s default request timeout, so an
``IGDTimeoutError`` inside it can only be the configured timeout firing, and a hang (or a
default timeout used by mistake) fails with the guard's plain ``TimeoutError``. Work that is
only CPU (parsing hostile XML) gets the generous ``CPU_GUARD`` and is bounded by the
requests sent and the memory used instead.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from aioigd import (
    ActionFailed,
    ActionNotSupported,
    ExternalIPUnavailable,
    Gateway,
    IGDConnectionError,
    IGDError,
    IGDTimeoutError,
    PortMapper,
    RemoteProtocolError,
    ResponseTooLarge,
    UPnPError,
)
from aioigd.gateway import MAX_ENUMERATED_ENTRIES
from aioigd.testing import FakeIGD, Quirks

TIMEOUT = 0.5
#: Below the 5 s default request timeout (so only the configured 0.5 s can fire inside it),
#: eight times the configured one (so a loaded machine does not fail it).
GUARD = 4.0
#: For failures that cost only CPU: a hang still fails the test, never the run.
CPU_GUARD = 60.0


async def _raises(coro: Awaitable[Any], expected: Any, *, guard: float = GUARD) -> BaseException:
    """Await ``coro`` under ``guard`` seconds; it must raise ``expected`` (an IGDError)."""
    with pytest.raises(expected) as info:
        # The guard's TimeoutError is not an IGDError: a hang fails the test, never the run.
        await asyncio.wait_for(coro, guard)
    assert isinstance(info.value, IGDError)
    return info.value


@pytest.fixture
async def gw_and_fake() -> AsyncIterator[tuple[Gateway, FakeIGD]]:
    """A gateway with a short timeout; set quirks on the fake after the description."""
    async with FakeIGD("127.0.0.1") as fake:
        gw = await Gateway.from_location(fake.location, http_timeout=TIMEOUT)
        try:
            yield gw, fake
        finally:
            await gw.close()


# -- transport ----------------------------------------------------------------------------


async def test_hanging_action_times_out(gw_and_fake: tuple[Gateway, FakeIGD]) -> None:
    gw, fake = gw_and_fake
    fake.quirks.hang_actions = frozenset({"GetExternalIPAddress"})
    exc = await _raises(gw.get_external_ip_address(), IGDTimeoutError)
    assert isinstance(exc, TimeoutError) and isinstance(exc, IGDConnectionError)
    # The gateway still works for other actions afterwards.
    assert (await gw.get_status_info()).connection_status == "Connected"


async def test_hanging_description_times_out() -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(hang_actions=frozenset({"GET"}))) as fake:
        await _raises(Gateway.from_location(fake.location, http_timeout=TIMEOUT), IGDTimeoutError)


async def test_trickled_description_times_out() -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(trickle=0.2)) as fake:
        await _raises(Gateway.from_location(fake.location, http_timeout=TIMEOUT), IGDTimeoutError)


async def test_trickled_soap_reply_times_out(gw_and_fake: tuple[Gateway, FakeIGD]) -> None:
    gw, fake = gw_and_fake
    fake.quirks.trickle = 0.2
    await _raises(gw.get_external_ip_address(), IGDTimeoutError)


async def test_delay_longer_than_timeout(gw_and_fake: tuple[Gateway, FakeIGD]) -> None:
    gw, fake = gw_and_fake
    fake.quirks.delay = 2.0
    await _raises(gw.get_status_info(), IGDTimeoutError)


async def test_short_body(gw_and_fake: tuple[Gateway, FakeIGD]) -> None:
    gw, fake = gw_and_fake
    fake.quirks.short_body = True
    await _raises(gw.get_external_ip_address(), (RemoteProtocolError, IGDConnectionError))


async def test_short_body_description() -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(short_body=True)) as fake:
        await _raises(
            Gateway.from_location(fake.location, http_timeout=TIMEOUT),
            (RemoteProtocolError, IGDConnectionError),
        )


async def test_garbage_http(gw_and_fake: tuple[Gateway, FakeIGD]) -> None:
    gw, fake = gw_and_fake
    fake.quirks.garbage_http = True
    await _raises(gw.get_external_ip_address(), (RemoteProtocolError, IGDConnectionError))


async def test_garbage_http_description() -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(garbage_http=True)) as fake:
        await _raises(
            Gateway.from_location(fake.location, http_timeout=TIMEOUT),
            (RemoteProtocolError, IGDConnectionError),
        )


async def test_gateway_gone(gw_and_fake: tuple[Gateway, FakeIGD]) -> None:
    gw, fake = gw_and_fake
    await fake.stop()
    await _raises(gw.get_external_ip_address(), IGDConnectionError)


@pytest.mark.parametrize("stage", ["description", "action"])
async def test_redirect_to_another_host_is_refused(stage: str) -> None:
    async with FakeIGD("127.0.0.9") as other, FakeIGD("127.0.0.1") as fake:
        if stage == "description":
            fake.quirks.redirect_to = other.location
            exc = await _raises(
                Gateway.from_location(fake.location, http_timeout=TIMEOUT), RemoteProtocolError
            )
        else:
            async with await Gateway.from_location(fake.location, http_timeout=TIMEOUT) as gw:
                fake.quirks.redirect_to = f"http://127.0.0.9:{other.http_port}{other.control_path}"
                exc = await _raises(gw.get_external_ip_address(), RemoteProtocolError)
        assert "redirect" in str(exc)
        assert other.requests == []
        assert other.connections == 0


async def test_redirect_to_same_host_is_refused_too(gw_and_fake: tuple[Gateway, FakeIGD]) -> None:
    gw, fake = gw_and_fake
    fake.quirks.redirect_to = fake.location
    await _raises(gw.get_external_ip_address(), RemoteProtocolError)
    assert fake.actions() == ["GetExternalIPAddress"]  # not followed


# -- size -------------------------------------------------------------------------------


async def test_huge_body_is_refused_quickly_in_bounded_memory(
    gw_and_fake: tuple[Gateway, FakeIGD],
) -> None:
    gw, fake = gw_and_fake
    fake.quirks.huge_body = 200_000_000
    tracemalloc.start()
    try:
        await _raises(gw.get_external_ip_address(), ResponseTooLarge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


async def test_huge_description_is_refused() -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(huge_body=200_000_000)) as fake:
        tracemalloc.start()
        try:
            await _raises(
                Gateway.from_location(fake.location, http_timeout=TIMEOUT), ResponseTooLarge
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 20 * 1024 * 1024


async def test_oversized_chunked_body_without_length_is_capped() -> None:
    """No Content-Length (chunked): the cap applies to the bytes actually read."""
    big = b"<root>" + b"x" * (3 << 20) + b"</root>"
    q = Quirks(chunked=True, description_body=big)
    async with FakeIGD("127.0.0.1", quirks=q) as fake:
        await _raises(Gateway.from_location(fake.location, http_timeout=5.0), ResponseTooLarge)


# -- hostile descriptions ---------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device><friendlyName>&lol9;</friendlyName>
</device></root>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE root [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device><friendlyName>&xxe;</friendlyName>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType></device></root>"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE root [<!ENTITY % ext SYSTEM "http://127.0.0.1:1/evil.dtd"> %ext;]>
<root/>"""

DEEP = b"<a>" * 100_000 + b"</a>" * 100_000

HOSTILE_DESCRIPTIONS = {
    "billion-laughs": BILLION_LAUGHS,
    "xxe-passwd": XXE,
    "xxe-parameter": XXE_PARAMETER,
    "deep-nesting": DEEP,
    "deep-in-root": b'<root xmlns="urn:schemas-upnp-org:device-1-0">'
    + b"<device>" * 5_000
    + b"</device>" * 5_000
    + b"</root>",
    "invalid-xml": b"<root><device></root>",
    "not-xml": b"hello, I am a router",
    "empty": b"",
    "non-utf8": b'<?xml version="1.0" encoding="utf-8"?><root>\xff\xfe\xc3\x28</root>',
    "bad-encoding-decl": b'<?xml version="1.0" encoding="x-no-such-codec"?><root/>',
    "wrong-root": b"<html><body>hi</body></html>",
    "no-wan-service": b'<root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
    b"<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
    b"<UDN>uuid:x</UDN></device></root>",
}


@pytest.mark.parametrize(
    "body", list(HOSTILE_DESCRIPTIONS.values()), ids=list(HOSTILE_DESCRIPTIONS)
)
async def test_hostile_description(body: bytes) -> None:
    async with FakeIGD("127.0.0.1", quirks=Quirks(description_body=body)) as fake:
        tracemalloc.start()
        try:
            exc = await _raises(
                Gateway.from_location(fake.location, http_timeout=TIMEOUT),
                IGDError,
                guard=CPU_GUARD,
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 30 * 1024 * 1024
        assert [(r.method, r.path) for r in fake.requests] == [("GET", "/rootDesc.xml")]
        # A description without a WAN service is "not supported"; anything else hostile
        # or malformed is a protocol error.
        assert isinstance(exc, RemoteProtocolError | ActionNotSupported)
        if body is not HOSTILE_DESCRIPTIONS["no-wan-service"]:
            assert isinstance(exc, RemoteProtocolError)
        assert "root:x:0:0" not in str(exc)
        assert fake.actions() == []


async def test_description_with_foreign_control_url_is_refused() -> None:
    async with FakeIGD("127.0.0.1") as fake:
        desc = fake.description().replace(
            fake.control_path.encode(), b"http://127.0.0.9:80" + fake.control_path.encode()
        )
        fake.quirks.description_body = desc
        await _raises(
            Gateway.from_location(fake.location, http_timeout=TIMEOUT), RemoteProtocolError
        )


# -- hostile SOAP replies ---------------------------------------------------------------

SOAP_BODIES = {
    "html-500ish": b"<html><body><h1>500 Internal Server Error</h1></body></html>",
    "plain-text": b"Internal Server Error",
    "empty": b"",
    "truncated": b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/en',
    "no-body": b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"></s:Envelope>',
    "wrong-response": b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<s:Body><u:OtherResponse xmlns:u="x"/></s:Body></s:Envelope>',
    "billion-laughs": BILLION_LAUGHS,
    "xxe": XXE,
    "deep": DEEP,
}


@pytest.mark.parametrize("body", list(SOAP_BODIES.values()), ids=list(SOAP_BODIES))
async def test_hostile_soap_body(gw_and_fake: tuple[Gateway, FakeIGD], body: bytes) -> None:
    gw, fake = gw_and_fake
    fake.quirks.soap_body = body
    await _raises(gw.get_external_ip_address(), RemoteProtocolError, guard=CPU_GUARD)
    assert fake.actions() == ["GetExternalIPAddress"]


async def test_fault_without_code(gw_and_fake: tuple[Gateway, FakeIGD]) -> None:
    gw, fake = gw_and_fake
    fake.quirks.soap_body = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        b"<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
        b'<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>lots</errorCode>'
        b"</UPnPError></detail></s:Fault></s:Body></s:Envelope>"
    )
    await _raises(gw.get_external_ip_address(), IGDError)


# -- lying values -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "0.0.0.0", "  "])
async def test_external_ip_unavailable(gw_and_fake: tuple[Gateway, FakeIGD], value: str) -> None:
    gw, fake = gw_and_fake
    fake.quirks.external_ip_value = value
    await _raises(gw.get_external_ip_address(), ExternalIPUnavailable)


@pytest.mark.parametrize(
    "value", ["999.1.1.1", "<b>x</b>", "::1", "1.2.3", "1.2.3.4.5", "x" * 5000, "10.0.0.1\n<x>"]
)
async def test_external_ip_lies(gw_and_fake: tuple[Gateway, FakeIGD], value: str) -> None:
    gw, fake = gw_and_fake
    fake.quirks.external_ip_value = value
    exc = await _raises(gw.get_external_ip_address(), RemoteProtocolError)
    assert len(str(exc)) < 300  # the lie is quoted, bounded


async def test_endless_entries_terminates() -> None:
    async with FakeIGD("127.0.0.1", version=1, quirks=Quirks(endless_entries=True)) as fake:
        async with await Gateway.from_location(fake.location, http_timeout=TIMEOUT) as gw:
            entries = await asyncio.wait_for(gw.port_mappings(), 20)
        assert entries == []
        asked = fake.actions().count("GetGenericPortMappingEntry")
        assert 1 <= asked <= MAX_ENUMERATED_ENTRIES


async def test_fail_actions_add_port_mapping(gw_and_fake: tuple[Gateway, FakeIGD]) -> None:
    gw, fake = gw_and_fake
    fake.quirks.fail_actions = {"AddPortMapping": 501}
    exc = await _raises(
        gw.add_port_mapping(
            6000, protocol="TCP", internal_port=6000, internal_client="192.168.1.5"
        ),
        ActionFailed,
    )
    assert isinstance(exc, UPnPError)
    assert exc.code == 501
    assert exc.action == "AddPortMapping"
    assert exc.service_type == fake.service_type
    assert "501" in str(exc)
    assert fake.mappings == {}


async def test_unknown_fault_code_is_generic_upnp_error(
    gw_and_fake: tuple[Gateway, FakeIGD],
) -> None:
    gw, fake = gw_and_fake
    fake.quirks.fail_actions = {"GetExternalIPAddress": 899}
    exc = await _raises(gw.get_external_ip_address(), UPnPError)
    assert type(exc) is UPnPError
    assert exc.code == 899


async def test_map_port_with_failing_add_leaves_nothing(
    gw_and_fake: tuple[Gateway, FakeIGD],
) -> None:
    gw, fake = gw_and_fake
    fake.quirks.fail_actions = {"AddPortMapping": 501}
    async with PortMapper(gw) as pm:
        await _raises(pm.keep(6000, internal_client="127.0.0.1"), ActionFailed)
        assert fake.mappings == {}
        assert pm.active() == []
        assert pm.kept() == []


@pytest.mark.parametrize(
    "quirk",
    [
        {"hang_actions": frozenset({"AddPortMapping"})},
        {"garbage_http": True},
        {"short_body": True},
        {"huge_body": 10_000_000},
    ],
    ids=["hang", "garbage", "short", "huge"],
)
async def test_map_port_against_hostile_gateway_is_typed_and_bounded(
    gw_and_fake: tuple[Gateway, FakeIGD], quirk: dict[str, Any]
) -> None:
    gw, fake = gw_and_fake
    for name, value in quirk.items():
        setattr(fake.quirks, name, value)
    # Several requests may each take up to the timeout (probe, add, cleanup check), so the
    # guard is wider; what is bounded is the requests: a cold map is 5-6 (README), and a
    # failed add adds one check, never a retry loop.
    async with PortMapper(gw) as pm:
        await _raises(pm.map_port(6001, internal_client="127.0.0.1"), IGDError, guard=15.0)
        assert 1 <= len(fake.actions()) <= 8, fake.actions()
        assert pm.kept() == []
