"""Issue 10: with several IGDs answering, discovery prefers the host's default gateway,
then one on the host's subnet, and says which it chose and why."""

from __future__ import annotations

import pytest

import aioigd.discovery
from aioigd.discovery import SearchOptions, discover
from aioigd.testing import FakeIGD, Quirks


def options(*fakes: FakeIGD, **kw: object) -> SearchOptions:
    return SearchOptions(
        timeout=2.0,
        multicast=False,
        default_gateways=True,
        unicast=[(f.host, f.ssdp_port) for f in fakes],
        **kw,  # type: ignore[arg-type]
    )


async def test_the_default_gateway_wins_over_a_faster_extender(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with (
        FakeIGD("127.0.0.2") as extender,
        FakeIGD("127.0.0.3", quirks=Quirks(delay=0.1)) as router,
    ):
        monkeypatch.setattr(aioigd.discovery, "default_gateways", lambda: ["127.0.0.3"])
        async with await discover(options(extender, router)) as gw:
            assert gw.location == router.location
            assert gw.discovery_reason == "the host's default gateway; also answered: 127.0.0.2"


async def test_without_a_default_gateway_answer_the_first_wins_after_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeIGD("127.0.0.2") as extender:
        # The default gateway (127.0.0.9) is asked but is no IGD: it never answers.
        monkeypatch.setattr(aioigd.discovery, "default_gateways", lambda: ["127.0.0.9"])
        async with await discover(options(extender, prefer_window=0.2)) as gw:
            assert gw.location == extender.location
            assert gw.discovery_reason == "on the host's subnet"  # 127.0.0.0/8 is lo's


async def test_the_default_gateway_answering_first_returns_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with (
        FakeIGD("127.0.0.3") as router,
        FakeIGD("127.0.0.2", quirks=Quirks(delay=1.5)) as slow_other,
    ):
        monkeypatch.setattr(aioigd.discovery, "default_gateways", lambda: ["127.0.0.3"])
        # A window far longer than the test's patience: only the fast path can pass.
        async with await discover(options(router, slow_other, prefer_window=30.0)) as gw:
            assert gw.location == router.location
            assert gw.discovery_reason == "the host's default gateway"


async def test_no_default_gateway_search_keeps_the_first_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    called: list[bool] = []
    monkeypatch.setattr(aioigd.discovery, "default_gateways", lambda: called.append(True) or [])
    async with FakeIGD("127.0.0.2") as only:
        opts = options(only, prefer_window=30.0)
        opts.default_gateways = False
        async with await discover(opts) as gw:
            assert gw.location == only.location
