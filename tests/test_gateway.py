"""Gateway: every typed action against the FakeIGD (v1, v2 and PPP), on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aioigd import (
    ActionNotSupported,
    ConnectionTypeInfo,
    Gateway,
    NATRSIPStatus,
    NoSuchEntryInArray,
    PortMappingEntry,
    SpecifiedArrayIndexInvalid,
    StatusInfo,
    Transport,
)
from aioigd.errors import (
    ConflictInMappingEntry,
    InconsistentParameters,
    WildCardNotPermittedInExtPort,
)
from aioigd.gateway import (
    ENUMERATION_WINDOW,
    MAX_ENUMERATED_ENTRIES,
    RANGE_DELETE_CHUNK,
    SAFE_LIST_ENTRIES,
)
from aioigd.testing import FakeIGD, FakeMapping


@pytest.fixture(params=["v1", "v2", "ppp"])
async def any_fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeIGD]:
    kind = request.param
    fake = FakeIGD("127.0.0.1", version=2 if kind == "v2" else 1, ppp=kind == "ppp")
    async with fake:
        yield fake


@pytest.fixture
async def v1_fake() -> AsyncIterator[FakeIGD]:
    async with FakeIGD("127.0.0.1", version=1) as fake:
        yield fake


def _put(fake: FakeIGD, port: int, client: str, proto: str = "TCP", desc: str = "x") -> None:
    fake.mappings[(proto, port)] = FakeMapping("", port, proto, port, client, True, desc, 0, None)


async def test_service_selection(any_fake: FakeIGD) -> None:
    async with await Gateway.from_location(any_fake.location) as gw:
        assert gw.service.service_type == any_fake.service_type
        assert gw.service.control_url.endswith(any_fake.control_path)
        assert gw.is_v2 == (any_fake.version == 2 and not any_fake.ppp)
        assert gw.udn == any_fake.udn
        assert gw.host == "127.0.0.1"
        assert gw.location == any_fake.location
        assert gw.friendly_name == "FakeIGD 127.0.0.1"
        assert gw.firewall is None
        assert gw.local_address() == "127.0.0.1"
        assert "Gateway" in repr(gw)


async def test_info_actions_are_typed(any_fake: FakeIGD) -> None:
    async with await Gateway.from_location(any_fake.location) as gw:
        ip = await gw.get_external_ip_address()
        assert ip == "203.0.113.7" and isinstance(ip, str)
        status = await gw.get_status_info()
        assert status == StatusInfo("Connected", "ERROR_NONE", 1234)
        ctype = await gw.get_connection_type_info()
        assert ctype == ConnectionTypeInfo("IP_Routed", ("IP_Routed",))
        rsip = await gw.get_nat_rsip_status()
        assert rsip == NATRSIPStatus(rsip_available=False, nat_enabled=True)
    assert any_fake.actions() == [
        "GetExternalIPAddress",
        "GetStatusInfo",
        "GetConnectionTypeInfo",
        "GetNATRSIPStatus",
    ]


async def test_add_get_delete_port_mapping(any_fake: FakeIGD) -> None:
    async with await Gateway.from_location(any_fake.location) as gw:
        await gw.add_port_mapping(
            8080,
            protocol=Transport.TCP,
            internal_port=80,
            internal_client="192.168.1.10",
            description="web",
            lease=300,
        )
        await gw.add_port_mapping(
            5353,
            protocol="udp",
            internal_port=5353,
            internal_client="192.168.1.11",
            description="mdns",
            lease=0,
        )
        sent = any_fake.requests[-1].args
        assert sent["NewProtocol"] == "UDP"
        assert sent["NewLeaseDuration"] == "0"
        assert sent["NewEnabled"] == "1"
        assert sent["NewRemoteHost"] == ""

        entry = await gw.get_specific_port_mapping_entry(8080, "TCP")
        assert isinstance(entry, PortMappingEntry)
        assert entry.external_port == 8080
        assert entry.protocol is Transport.TCP
        assert entry.internal_port == 80
        assert entry.internal_client == "192.168.1.10"
        assert entry.description == "web"
        assert entry.enabled is True
        assert 0 < entry.lease <= 300
        assert entry.remote_host is None

        first = await gw.get_generic_port_mapping_entry(0)
        second = await gw.get_generic_port_mapping_entry(1)
        assert first is not None and second is not None
        assert {(first.protocol, first.external_port), (second.protocol, second.external_port)} == {
            (Transport.TCP, 8080),
            (Transport.UDP, 5353),
        }
        with pytest.raises(SpecifiedArrayIndexInvalid) as info:
            await gw.get_generic_port_mapping_entry(2)
        assert info.value.code == 713

        await gw.delete_port_mapping(8080, "TCP")
        with pytest.raises(NoSuchEntryInArray) as info2:
            await gw.get_specific_port_mapping_entry(8080, "TCP")
        assert info2.value.code == 714
        assert info2.value.action == "GetSpecificPortMappingEntry"
        with pytest.raises(NoSuchEntryInArray):
            await gw.delete_port_mapping(8080, "TCP")
        assert list(any_fake.mappings) == [("UDP", 5353)]


async def test_add_conflict_is_typed(any_fake: FakeIGD) -> None:
    _put(any_fake, 9000, "192.168.1.99")
    async with await Gateway.from_location(any_fake.location) as gw:
        with pytest.raises(ConflictInMappingEntry) as info:
            await gw.add_port_mapping(
                9000, protocol="TCP", internal_port=9000, internal_client="192.168.1.10"
            )
        assert info.value.code == 718
        assert info.value.service_type == any_fake.service_type
        with pytest.raises(WildCardNotPermittedInExtPort):
            await gw.add_port_mapping(
                0, protocol="TCP", internal_port=9000, internal_client="192.168.1.10"
            )


async def test_port_mappings_lists_everything(any_fake: FakeIGD) -> None:
    for port in (1000, 2000, 3000):
        _put(any_fake, port, "192.168.1.5")
    _put(any_fake, 53, "192.168.1.6", proto="UDP")
    async with await Gateway.from_location(any_fake.location) as gw:
        entries = await gw.port_mappings()
    got = sorted((e.protocol.value, e.external_port, e.internal_client) for e in entries)
    assert got == [
        ("TCP", 1000, "192.168.1.5"),
        ("TCP", 2000, "192.168.1.5"),
        ("TCP", 3000, "192.168.1.5"),
        ("UDP", 53, "192.168.1.6"),
    ]
    if any_fake.version == 2:
        # A size probe (index SAFE_LIST_ENTRIES → 713), then one listing per protocol.
        probe, *lists = any_fake.requests[-3:]
        assert probe.action == "GetGenericPortMappingEntry"
        assert probe.args["NewPortMappingIndex"] == str(SAFE_LIST_ENTRIES)
        assert [r.action for r in lists] == ["GetListOfPortMappings"] * 2
        assert sorted(r.args["NewProtocol"] for r in lists) == ["TCP", "UDP"]
    else:
        # 4 entries + 713, read ENUMERATION_WINDOW indexes at a time: two windows.
        indexes = [int(r.args["NewPortMappingIndex"]) for r in any_fake.requests if r.action]
        assert sorted(indexes) == list(range(2 * ENUMERATION_WINDOW))


async def test_port_mappings_empty_table(any_fake: FakeIGD) -> None:
    async with await Gateway.from_location(any_fake.location) as gw:
        assert await gw.port_mappings() == []


async def test_empty_entry_at_zero_is_skipped(v1_fake: FakeIGD) -> None:
    v1_fake.quirks.empty_entry_at_zero = True
    _put(v1_fake, 1111, "192.168.1.5")
    _put(v1_fake, 2222, "192.168.1.6")
    async with await Gateway.from_location(v1_fake.location) as gw:
        assert await gw.get_generic_port_mapping_entry(0) is None
        entries = await gw.port_mappings()
    assert [e.external_port for e in entries] == [1111, 2222]
    # 1 direct probe, then index 0 (empty), 1, 2, 3 (713), ENUMERATION_WINDOW at a time
    indexes = [int(r.args["NewPortMappingIndex"]) for r in v1_fake.requests if r.action]
    assert indexes[0] == 0
    assert sorted(indexes[1:]) == list(range(2 * ENUMERATION_WINDOW))


async def test_port_mappings_max_entries(v1_fake: FakeIGD) -> None:
    for port in range(1000, 1010):
        _put(v1_fake, port, "192.168.1.5")
    async with await Gateway.from_location(v1_fake.location) as gw:
        entries = await gw.port_mappings(max_entries=3)
    assert [e.external_port for e in entries] == [1000, 1001, 1002]
    assert len(v1_fake.actions()) == 3
    assert MAX_ENUMERATED_ENTRIES == 1024


async def test_get_list_of_port_mappings_v2(fake_igd: FakeIGD) -> None:
    for port in (1000, 2000, 3000):
        _put(fake_igd, port, "192.168.1.5")
    async with await Gateway.from_location(fake_igd.location) as gw:
        entries = await gw.get_list_of_port_mappings("TCP", start_port=1500, end_port=3000)
        assert [e.external_port for e in entries] == [2000, 3000]
        assert await gw.get_list_of_port_mappings("UDP") == []  # 730 → empty
    args = fake_igd.requests[1].args
    assert args["NewStartPort"] == "1500"
    assert args["NewEndPort"] == "3000"
    assert args["NewProtocol"] == "TCP"


async def test_add_any_port_mapping_v2(fake_igd: FakeIGD) -> None:
    _put(fake_igd, 7000, "192.168.1.99")
    async with await Gateway.from_location(fake_igd.location) as gw:
        port = await gw.add_any_port_mapping(
            7000, protocol="TCP", internal_port=7000, internal_client="192.168.1.10", lease=60
        )
        assert port != 7000
        assert isinstance(port, int)
        assert fake_igd.mappings[("TCP", port)].internal_client == "192.168.1.10"
        assert fake_igd.mappings[("TCP", 7000)].internal_client == "192.168.1.99"


async def test_delete_port_mapping_range_is_chunked(fake_igd: FakeIGD) -> None:
    for port in (1, 50, 150, 349, 350, 351):
        _put(fake_igd, port, "192.168.1.5")
    async with await Gateway.from_location(fake_igd.location) as gw:
        await gw.delete_port_mapping_range(1, 350, "TCP")
    calls = [r.args for r in fake_igd.requests if r.action == "DeletePortMappingRange"]
    assert RANGE_DELETE_CHUNK <= 100
    assert len(calls) == 4  # 1-100, 101-200, 201-300, 301-350
    spans = [(int(a["NewStartPort"]), int(a["NewEndPort"])) for a in calls]
    assert spans[0][0] == 1 and spans[-1][1] == 350
    for (lo, hi), nxt in zip(spans, spans[1:] + [(351, 0)], strict=True):
        assert hi - lo + 1 <= 100
        assert nxt[0] == hi + 1  # contiguous, no gaps or overlaps
    assert all(a["NewProtocol"] == "TCP" and a["NewManage"] == "0" for a in calls)
    assert list(fake_igd.mappings) == [("TCP", 351)]  # chunks that matched nothing: no error


async def test_delete_port_mapping_range_validates_arguments(fake_igd: FakeIGD) -> None:
    async with await Gateway.from_location(fake_igd.location) as gw:
        for start, end in [(0, 10), (10, 5), (1, 65536)]:
            with pytest.raises(ValueError):
                await gw.delete_port_mapping_range(start, end, "TCP")
    assert fake_igd.actions() == []


@pytest.mark.parametrize("ppp", [False, True])
async def test_v2_only_actions_on_v1_send_nothing(ppp: bool) -> None:
    async with FakeIGD("127.0.0.1", version=1, ppp=ppp) as fake:
        async with await Gateway.from_location(fake.location) as gw:
            with pytest.raises(ActionNotSupported):
                await gw.add_any_port_mapping(
                    1234, protocol="TCP", internal_port=1234, internal_client="192.168.1.2"
                )
            with pytest.raises(ActionNotSupported):
                await gw.delete_port_mapping_range(1, 350, "TCP")
            with pytest.raises(ActionNotSupported):
                await gw.get_list_of_port_mappings("TCP")
            with pytest.raises(ActionNotSupported):
                await gw.call("GetListOfPortMappings")
            assert gw.session.stats.requests == 1  # the description only
        assert fake.actions() == []


async def test_argument_validation_sends_nothing(fake_igd: FakeIGD) -> None:
    async with await Gateway.from_location(fake_igd.location) as gw:
        with pytest.raises(ValueError):
            await gw.add_port_mapping(
                70000, protocol="TCP", internal_port=1, internal_client="192.168.1.2"
            )
        with pytest.raises(ValueError):
            await gw.add_port_mapping(
                1, protocol="SCTP", internal_port=1, internal_client="192.168.1.2"
            )
        with pytest.raises(ValueError):
            await gw.add_port_mapping(
                1, protocol="TCP", internal_port=0, internal_client="192.168.1.2"
            )
        with pytest.raises(ValueError):
            await gw.add_port_mapping(
                1, protocol="TCP", internal_port=1, internal_client="192.168.1.2", lease=-1
            )
        with pytest.raises(ValueError):
            await gw.get_generic_port_mapping_entry(-1)
        with pytest.raises(ValueError):
            await gw.delete_port_mapping(1, "ICMP")
    assert fake_igd.actions() == []


async def test_range_fault_typed(fake_igd: FakeIGD) -> None:
    async with await Gateway.from_location(fake_igd.location) as gw:
        with pytest.raises(InconsistentParameters):
            await gw.call(
                "GetListOfPortMappings",
                [
                    ("NewStartPort", "10"),
                    ("NewEndPort", "5"),
                    ("NewProtocol", "TCP"),
                    ("NewManage", "1"),
                    ("NewNumberOfPorts", "0"),
                ],
            )


async def test_gateway_is_a_pure_action_client(fake_igd: FakeIGD) -> None:
    """No mapping flow on the Gateway (that is PortMapper's): leaving ``async with`` only
    closes the session, deleting nothing, and ``close()`` is idempotent."""
    gw = await Gateway.from_location(fake_igd.location)
    for gone in ("map_port", "mapped", "release", "mapper"):
        assert not hasattr(gw, gone), gone
    async with gw:
        await gw.add_port_mapping(
            4200, protocol="TCP", internal_port=4200, internal_client="192.168.1.2"
        )
    assert ("TCP", 4200) in fake_igd.mappings
    assert "DeletePortMapping" not in fake_igd.actions()
    assert await gw.close() is None  # type: ignore[func-returns-value]
    with pytest.raises(TypeError):
        await gw.close(release=False)  # type: ignore[call-arg]


async def test_traffic_counters(fake_igd: FakeIGD) -> None:
    """WANCommonInterfaceConfig's totals (upnpc -s); a missing optional one is None."""
    import aioigd

    async with await Gateway.from_location(fake_igd.location) as gw:
        assert gw.common_interface is not None
        counters = await gw.get_traffic_counters()
        assert counters == aioigd.TrafficCounters(123456789, 987654321, 1234, 5678)
        del fake_igd.traffic["PacketsReceived"]
        assert (await gw.get_traffic_counters()).packets_received is None
        fake_igd.traffic["BytesSent"] = 2**32  # not a ui4: the gateway is lying
        with pytest.raises(aioigd.RemoteProtocolError):
            await gw.get_traffic_counters()
    sent = [r.action for r in fake_igd.requests if r.path == "/ctl/CmnIfCfg"]
    assert sent[:4] == [
        "GetTotalBytesSent",
        "GetTotalBytesReceived",
        "GetTotalPacketsSent",
        "GetTotalPacketsReceived",
    ]


async def test_traffic_counters_without_the_service(fake_igd: FakeIGD) -> None:
    import aioigd

    async with await Gateway.from_location(fake_igd.location) as gw:
        gw.common_interface = None
        with pytest.raises(aioigd.ActionNotSupported, match="WANCommonInterfaceConfig"):
            await gw.get_traffic_counters()
