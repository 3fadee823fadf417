"""One vocabulary across the public API (issue 13): typed discovery keywords, checked
protocols, keyword-only arguments where order invites mistakes, one meaning per timeout
name, one close() shape."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import typing
from collections.abc import AsyncIterator
from typing import Any

import pytest

import aioigd
from aioigd.discovery import SearchOptions, discover, discover_all
from aioigd.testing import FakeIGD, Quirks

KW = inspect.Parameter.KEYWORD_ONLY


def _keywords(fn: Any) -> set[str]:
    return {n for n, p in inspect.signature(fn).parameters.items() if p.kind is KW}


def test_discover_keywords_are_the_search_options_fields() -> None:
    fields = {f.name for f in dataclasses.fields(SearchOptions)} - {"refused", "tried"}
    assert _keywords(discover) == fields
    # prefer_window only matters when one gateway is picked.
    assert _keywords(discover_all) == fields - {"prefer_window"}


@pytest.mark.parametrize("fn", [discover, discover_all])
async def test_options_and_keywords_together_is_a_type_error(fn: Any) -> None:
    with pytest.raises(TypeError, match="timeout"):
        await fn(SearchOptions(multicast=False), timeout=1.0)


async def test_misspelt_keyword_fails_at_run_time_too() -> None:
    with pytest.raises(TypeError, match="timeot"):
        await discover(timeot=2)  # type: ignore[call-arg]


@pytest.fixture
async def mapper(fake_igd: FakeIGD) -> AsyncIterator[aioigd.PortMapper]:
    gw = await aioigd.Gateway.from_location(fake_igd.location, http_timeout=2.0)
    async with gw, aioigd.PortMapper(gw) as pm:
        yield pm


@pytest.mark.parametrize("bad", ["SCTP", "", "tcp/udp", 6])
async def test_protocol_is_checked_at_run_time(mapper: aioigd.PortMapper, bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        await mapper.map_port(5000, protocol=bad)
    with pytest.raises((ValueError, TypeError)):
        await mapper.gateway.delete_port_mapping(5000, bad)
    assert mapper.active() == []


def test_transport_like_is_the_enum_or_its_names() -> None:
    args = typing.get_args(aioigd.TransportLike)
    assert aioigd.Transport in args
    literal = next(a for a in args if typing.get_origin(a) is typing.Literal)
    assert set(typing.get_args(literal)) == {m.value for m in aioigd.Transport}


@pytest.mark.parametrize(
    ("fn", "names"),
    [
        (aioigd.PortMapper.map_port, {"external_port", "protocol"}),
        (aioigd.PortMapper.keep, {"external_port", "protocol"}),
        (aioigd.PortMapper.mapped, {"external_port", "protocol"}),
        (aioigd.Gateway.add_port_mapping, {"protocol", "internal_port", "internal_client"}),
        (aioigd.Gateway.add_any_port_mapping, {"protocol", "internal_port", "internal_client"}),
    ],
)
def test_keyword_only_where_order_invites_mistakes(fn: Any, names: set[str]) -> None:
    assert names <= _keywords(fn)


def _public_callables() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for name in aioigd.__all__:
        obj = getattr(aioigd, name)
        if inspect.isclass(obj):
            found.append((name, obj))
            for attr, member in vars(obj).items():
                fn = member.__func__ if isinstance(member, classmethod) else member
                if callable(fn) and not attr.startswith("_"):
                    found.append((f"{name}.{attr}", fn))
        elif callable(obj):
            found.append((name, obj))
    return found


#: Where ``timeout`` is a whole search; SoapSession's is per request (session.py is left
#: as it is for now; its owner may rename it to http_timeout).
_TIMEOUT_MEANS_SEARCH = {"discover", "discover_all", "SearchOptions"}
_TIMEOUT_LEFT = {"SoapSession"}


def test_one_meaning_per_timeout_name() -> None:
    misuse = []
    for name, fn in _public_callables():
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        if "timeout" in params and name not in _TIMEOUT_MEANS_SEARCH | _TIMEOUT_LEFT:
            misuse.append(name)
    assert misuse == []
    assert "search_timeout" in inspect.signature(aioigd.MultiLayerMapper).parameters
    assert "http_timeout" in inspect.signature(aioigd.Gateway.from_location).parameters
    assert "cleanup_timeout" in inspect.signature(aioigd.PortMapper.release).parameters


def test_close_returns_leftover_lists() -> None:
    for cls in (
        aioigd.PortMapper,
        aioigd.FirewallControl,
        aioigd.MultiLayerMapper,
        aioigd.ReachablePort,
    ):
        ret = typing.get_type_hints(cls.close)["return"]
        assert typing.get_origin(ret) is list, cls
        (item,) = typing.get_args(ret)
        parts = typing.get_args(item) if typing.get_origin(item) is typing.Union else (item,)
        assert all(typing.get_origin(p) is aioigd.Leftover for p in parts), (cls, ret)


async def test_handled_conditions_are_not_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """The 725 permanent-lease fallback and a leftover that close() returns are the
    caller's to see (PortMapping.permanent_only, the Leftover list): INFO, not WARNING,
    in an app that never set up logging."""
    caplog.set_level(logging.DEBUG, logger="aioigd")
    async with FakeIGD("127.0.0.1", version=1, quirks=Quirks(permanent_only=True)) as fake:
        gw = await aioigd.Gateway.from_location(fake.location, http_timeout=1.0)
        pm = aioigd.PortMapper(gw, own_gateway=True)
        kept = await pm.keep(5000, lease=600)
        assert kept.current.permanent_only
        await fake.stop_http()
        leftovers = await pm.close()
    assert [x.subject.external_port for x in leftovers] == [5000]
    assert any("permanent lease" in r.getMessage() for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
