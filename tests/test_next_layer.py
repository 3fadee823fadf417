"""Finding the next NAT layer where hops cannot be traced: typed outcomes, the /24 hint."""

from __future__ import annotations

import pickle
import socket
import sys

import pytest

import aioigd.multilayer
import aioigd.platform
import aioigd.traceroute
from aioigd.errors import HopsUnavailable, NextLayerNotFound
from aioigd.multilayer import MultiLayerMapper, StopReason
from aioigd.platform import HopFinder, bsd
from aioigd.testing import FakeIGD


def _unavailable(kind: str | None = None) -> HopFinder:
    raise HopsUnavailable("ICMP datagram sockets are not available: test")


@pytest.mark.parametrize("name", ["sunos5", "aix", "emscripten"])
def test_a_platform_without_hop_finder_says_so(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(sys, "platform", name)
    with pytest.raises(HopsUnavailable, match=name):
        aioigd.platform.hop_finder()
    assert aioigd.platform.default_routes() == []


class _Socket:
    def __init__(self, *args: object) -> None:
        pass

    def close(self) -> None:
        pass


def _no_icmp(*args: object) -> None:
    raise PermissionError(1, "Operation not permitted")


def test_macos_gets_icmp_datagrams_never_the_recverr_finder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On macOS option 11 is IP_MULTICAST_LOOP: the old fallback set it, saw no hop and said
    # "no further router". There the finder is the ICMP one, or a typed refusal.
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(socket, "socket", _Socket)
    assert isinstance(aioigd.platform.hop_finder(), bsd.IcmpDatagramFinder)
    monkeypatch.setattr(socket, "socket", _no_icmp)
    with pytest.raises(HopsUnavailable, match="ICMP datagram sockets are not available"):
        aioigd.platform.hop_finder()


def test_stop_reason_errors_survive_pickle() -> None:
    exc = NextLayerNotFound("no hop finder", StopReason.HOPS_UNAVAILABLE)
    back = pickle.loads(pickle.dumps(exc))
    assert (str(back), back.reason) == ("no hop finder", StopReason.HOPS_UNAVAILABLE)


async def test_hops_unavailable_is_a_typed_partial_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aioigd.traceroute, "hop_finder", _unavailable)
    # 10.0.0.2's /24 candidates (10.0.0.1, .254) are refused in loopback-only mode.
    async with FakeIGD("127.0.0.2", external_ip="10.0.0.2") as fake:
        m = MultiLayerMapper(
            7000, via=[fake.location], probe_target="127.0.0.1", layers=2, search_timeout=0.5
        )
        result = await m.map()
        try:
            assert (len(result.layers), result.complete) == (1, False)
            assert result.stopped_at == 2
            assert result.stop_reason is StopReason.HOPS_UNAVAILABLE
            assert "ICMP datagram sockets are not available" in result.reason
            assert "no gateway at 10.0.0.1 or 10.0.0.254" in result.reason
            assert result.as_dict()["stop_reason"] == "hops_unavailable"
        finally:
            assert await m.release() == []
        assert not fake.mappings


async def test_tracing_off_is_its_own_reason() -> None:
    async with FakeIGD("127.0.0.2", external_ip="10.0.0.2") as fake:
        m = MultiLayerMapper(7000, via=[fake.location], probe_target=None, layers=2)
        result = await m.map()
        try:
            assert result.stop_reason is StopReason.TRACING_OFF
        finally:
            await m.release()


async def test_the_next_layer_found_at_the_254_of_the_external_24(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aioigd.traceroute, "hop_finder", _unavailable)
    real = aioigd.platform.subnet_gateway_candidates

    def on_loopback(ip: str | None) -> list[str]:
        # 10.64.0.2 -> 10.64.0.1, 10.64.0.254, moved onto loopback where the fakes are.
        return [c.replace("10.64.0.", "127.0.0.") for c in real(ip)]

    monkeypatch.setattr(aioigd.multilayer, "subnet_gateway_candidates", on_loopback)
    async with (
        FakeIGD("127.0.0.2", external_ip="10.64.0.2") as inner,
        FakeIGD("127.0.0.254", external_ip="33.0.0.44") as outer,
    ):
        # The candidates are probed on the SSDP port; the fake listens on its own.
        monkeypatch.setattr(aioigd.multilayer, "SSDP_PORT", outer.ssdp_port)
        m = MultiLayerMapper(
            7000, via=[inner.location], probe_target="127.0.0.1", search_timeout=0.5
        )
        async with m as result:
            assert result.complete and result.stop_reason is None, result.reason
            assert result.public_ip == "33.0.0.44"
            assert [g.host for g in m.gateways] == ["127.0.0.2", "127.0.0.254"]
            assert result.layers[1].internal_client == "10.64.0.2"
            assert len(outer.mappings) == 1
        assert not inner.mappings and not outer.mappings
