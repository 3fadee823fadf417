"""Both codecs (WANIPConnection and WANIPv6FirewallControl) refuse the same bad in arguments.

``bool`` is an ``int``: before the shared validators, the firewall codec sent
``id_args(True)`` as ``UniqueID=True`` and ``pinhole_args(remote_port=False)`` as
``RemotePort=False``. Every integer argument of every codec is checked here with the
same list of wrong values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aioigd.errors import RemoteProtocolError
from aioigd.models import Transport
from aioigd.proto.actions import (
    delete_range_args,
    generic_entry_args,
    list_mappings_args,
    mapping_key_args,
    parse_reserved_port,
    port_mapping_args,
)
from aioigd.proto.firewall import (
    MAX_PINHOLE_LEASE,
    MIN_PINHOLE_LEASE,
    id_args,
    outbound_timeout_args,
    pinhole_args,
    update_args,
)

Args = list[tuple[str, str]]
TCP, UDP = Transport.TCP, Transport.UDP
CLIENT6 = "2001:db8::10"

#: Wrong for every integer argument, whatever its range.
NOT_INTS: list[Any] = [True, False, 1.0, 60.5, "60", None]

WAN_GOOD: dict[str, Any] = {
    "external_port": 1872,
    "protocol": TCP,
    "internal_port": 1872,
    "internal_client": "192.168.1.4",
    "description": "aioigd",
    "lease": 60,
}
PINHOLE_GOOD: dict[str, Any] = {
    "internal_client": CLIENT6,
    "internal_port": 8080,
    "protocol": UDP,
    "lease": 3600,
}
TIMEOUT_GOOD = {k: v for k, v in PINHOLE_GOOD.items() if k != "lease"}


def _call(name: str, **changes: Any) -> Args:
    """Call codec ``name`` with good arguments, some of them replaced."""
    builders: dict[str, Callable[..., Args]] = {
        "port_mapping_args": lambda **kw: port_mapping_args(**{**WAN_GOOD, **kw}),
        "mapping_key_args": lambda **kw: mapping_key_args(
            **{"external_port": 1872, "protocol": TCP, **kw}
        ),
        "generic_entry_args": lambda **kw: generic_entry_args(**{"index": 0, **kw}),
        "delete_range_args": lambda **kw: delete_range_args(
            **{"start_port": 1, "end_port": 65535, "protocol": TCP, **kw}
        ),
        "list_mappings_args": lambda **kw: list_mappings_args(
            **{"start_port": 1, "end_port": 65535, "protocol": TCP, **kw}
        ),
        "pinhole_args": lambda **kw: pinhole_args(**{**PINHOLE_GOOD, **kw}),
        "outbound_timeout_args": lambda **kw: outbound_timeout_args(**{**TIMEOUT_GOOD, **kw}),
        "update_args": lambda **kw: update_args(**{"unique_id": 7, "lease": 60, **kw}),
        "id_args": lambda **kw: id_args(**{"unique_id": 7, **kw}),
    }
    return builders[name](**changes)


#: (codec, integer argument, lowest good value, highest good value, wire name)
INT_ARGS: list[tuple[str, str, int, int, str]] = [
    ("port_mapping_args", "external_port", 0, 65535, "NewExternalPort"),
    ("port_mapping_args", "internal_port", 1, 65535, "NewInternalPort"),
    ("port_mapping_args", "lease", 0, 0xFFFFFFFF, "NewLeaseDuration"),
    ("mapping_key_args", "external_port", 0, 65535, "NewExternalPort"),
    ("generic_entry_args", "index", 0, 65535, "NewPortMappingIndex"),
    ("delete_range_args", "start_port", 1, 65535, "NewStartPort"),
    ("delete_range_args", "end_port", 1, 65535, "NewEndPort"),
    ("list_mappings_args", "start_port", 0, 65535, "NewStartPort"),
    ("list_mappings_args", "number", 0, 65535, "NewNumberOfPorts"),
    ("pinhole_args", "internal_port", 1, 65535, "InternalPort"),
    ("pinhole_args", "remote_port", 0, 65535, "RemotePort"),
    ("pinhole_args", "lease", MIN_PINHOLE_LEASE, MAX_PINHOLE_LEASE, "LeaseTime"),
    ("outbound_timeout_args", "internal_port", 1, 65535, "InternalPort"),
    ("outbound_timeout_args", "remote_port", 0, 65535, "RemotePort"),
    ("update_args", "unique_id", 0, 65535, "UniqueID"),
    ("update_args", "lease", MIN_PINHOLE_LEASE, MAX_PINHOLE_LEASE, "NewLeaseTime"),
    ("id_args", "unique_id", 0, 65535, "UniqueID"),
]


def _refusals() -> list[Any]:
    cases = []
    for codec, arg, low, high, _ in INT_ARGS:
        bads = [*NOT_INTS, low - 1, high + 1]
        for bad in bads:
            cases.append(pytest.param(codec, arg, bad, id=f"{codec}-{arg}-{bad!r}"))
    return cases


@pytest.mark.parametrize(("codec", "arg", "bad"), _refusals())
def test_integer_arguments_refuse(codec: str, arg: str, bad: Any) -> None:
    # The message names the Python argument, so the caller knows which one is wrong.
    with pytest.raises(ValueError, match=f"^{arg} "):
        _call(codec, **{arg: bad})


@pytest.mark.parametrize(
    ("codec", "arg", "low", "high", "wire"), INT_ARGS, ids=[f"{c}-{a}" for c, a, *_ in INT_ARGS]
)
def test_integer_arguments_accept_their_bounds(
    codec: str, arg: str, low: int, high: int, wire: str
) -> None:
    for good in (low, high):
        assert dict(_call(codec, **{arg: good}))[wire] == str(good)


# The calls the brief names, spelled out.
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda: pinhole_args(**{**PINHOLE_GOOD, "internal_port": True}), id="pin-iport"
        ),
        pytest.param(lambda: pinhole_args(**{**PINHOLE_GOOD, "lease": True}), id="pin-lease"),
        pytest.param(lambda: update_args(True, 60), id="update-id-true"),
        pytest.param(lambda: update_args(1, True), id="update-lease-true"),
        pytest.param(lambda: update_args(1, 0), id="update-lease-0"),
        pytest.param(lambda: update_args(1, 86401), id="update-lease-86401"),
        pytest.param(lambda: update_args(65536, 60), id="update-id-65536"),
        pytest.param(lambda: id_args(False), id="id-false"),
        pytest.param(lambda: id_args(True), id="id-true"),
        pytest.param(lambda: id_args(-1), id="id-negative"),
        pytest.param(lambda: id_args(1.0), id="id-float"),  # type: ignore[arg-type]
        pytest.param(lambda: id_args("1"), id="id-str"),  # type: ignore[arg-type]
        pytest.param(lambda: port_mapping_args(**{**WAN_GOOD, "lease": False}), id="wan-lease"),
        pytest.param(lambda: mapping_key_args(True, TCP), id="wan-key-true"),
    ],
)
def test_named_misuses_raise_value_error(call: Callable[[], Args]) -> None:
    with pytest.raises(ValueError):
        call()


# -- the non-integer arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "changes", "match"),
    [
        ("port_mapping_args", {"enabled": 1}, "^enabled "),
        ("port_mapping_args", {"enabled": "0"}, "^enabled "),
        ("port_mapping_args", {"enabled": None}, "^enabled "),
        ("port_mapping_args", {"internal_client": 3232235780}, "^internal_client "),
        ("port_mapping_args", {"internal_client": CLIENT6}, "^internal_client "),
        ("port_mapping_args", {"description": 5}, "^description "),
        ("port_mapping_args", {"description": None}, "^description "),
        ("port_mapping_args", {"description": "d" * 257}, "^description "),
        ("port_mapping_args", {"remote_host": 0}, "^remote_host "),
        ("port_mapping_args", {"remote_host": False}, "^remote_host "),
        ("port_mapping_args", {"protocol": 6}, "TCP or UDP"),
        ("mapping_key_args", {"remote_host": True}, "^remote_host "),
        ("mapping_key_args", {"protocol": None}, "TCP or UDP"),
        ("delete_range_args", {"start_port": 2000, "end_port": 1999}, "^start_port 2000"),
        ("delete_range_args", {"manage": 1}, "^manage "),
        ("delete_range_args", {"protocol": "ICMP"}, "TCP or UDP"),
        ("list_mappings_args", {"start_port": 10, "end_port": 9}, "^start_port 10"),
        ("list_mappings_args", {"manage": "1"}, "^manage "),
        ("pinhole_args", {"internal_client": "192.168.1.4"}, "^internal_client "),
        ("pinhole_args", {"internal_client": ""}, "^internal_client "),
        ("pinhole_args", {"internal_client": 1}, "^internal_client "),
        ("pinhole_args", {"remote_host": "192.0.2.1"}, "^remote_host "),
        ("pinhole_args", {"remote_host": False}, "^remote_host "),
        ("pinhole_args", {"remote_host": 0}, "^remote_host "),
        ("pinhole_args", {"protocol": 17}, "TCP or UDP"),
        ("outbound_timeout_args", {"remote_host": "any"}, "^remote_host "),
    ],
)
def test_other_arguments_refuse(codec: str, changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _call(codec, **changes)


# -- what good arguments turn into ----------------------------------------------------------------


def test_pinhole_args_wire_form() -> None:
    assert pinhole_args(**{**PINHOLE_GOOD, "internal_client": "2001:DB8:0::10%eth0"}) == [
        ("RemoteHost", ""),
        ("RemotePort", "0"),
        ("InternalClient", "2001:db8::10"),
        ("InternalPort", "8080"),
        ("Protocol", "17"),
        ("LeaseTime", "3600"),
    ]


@pytest.mark.parametrize(
    ("given", "sent"), [(None, ""), ("", ""), ("2001:DB8::0:5", "2001:db8::5")]
)
def test_pinhole_remote_host(given: str | None, sent: str) -> None:
    args = dict(pinhole_args(**{**PINHOLE_GOOD, "remote_host": given, "remote_port": 443}))
    assert (args["RemoteHost"], args["RemotePort"]) == (sent, "443")


def test_update_and_id_args_wire_form() -> None:
    assert update_args(0, 1) == [("UniqueID", "0"), ("NewLeaseTime", "1")]
    assert update_args(65535, 86400) == [("UniqueID", "65535"), ("NewLeaseTime", "86400")]
    assert id_args(42) == [("UniqueID", "42")]


def test_range_and_listing_wire_form() -> None:
    assert delete_range_args(1000, 1000, "udp") == [
        ("NewStartPort", "1000"),
        ("NewEndPort", "1000"),
        ("NewProtocol", "UDP"),
        ("NewManage", "0"),
    ]
    assert list_mappings_args(0, 65535, TCP, manage=False, number=10) == [
        ("NewStartPort", "0"),
        ("NewEndPort", "65535"),
        ("NewProtocol", "TCP"),
        ("NewManage", "0"),
        ("NewNumberOfPorts", "10"),
    ]
    assert dict(list_mappings_args(1, 2, TCP))["NewManage"] == "1"
    assert generic_entry_args(713) == [("NewPortMappingIndex", "713")]


def test_port_mapping_args_wire_form() -> None:
    args = dict(port_mapping_args(**{**WAN_GOOD, "enabled": False, "remote_host": "192.0.2.9"}))
    assert (args["NewEnabled"], args["NewRemoteHost"]) == ("0", "192.0.2.9")
    assert dict(port_mapping_args(**WAN_GOOD))["NewEnabled"] == "1"


def test_parse_reserved_port() -> None:
    assert parse_reserved_port({"NewReservedPort": " 1873 "}) == 1873
    for bad in ({"NewReservedPort": "0"}, {"NewReservedPort": "65536"}, {}):
        with pytest.raises(RemoteProtocolError, match="NewReservedPort|reserved port 0"):
            parse_reserved_port(bad)
