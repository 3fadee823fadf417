"""The shared in-argument validators (ValueError) and out-argument parsers (RemoteProtocolError)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aioigd.errors import RemoteProtocolError
from aioigd.models import Transport
from aioigd.proto import actions, firewall, values
from aioigd.proto.values import (
    UI2_MAX,
    UI4_MAX,
    boolean,
    ipv4,
    ipv6,
    lease,
    port,
    protocol,
    string,
    uint,
)

IntCheck = Callable[[Any], str]

#: name -> (validator with the argument name "arg", lowest good value, highest good value)
INT_VALIDATORS: dict[str, tuple[IntCheck, int, int]] = {
    "port": (lambda x: port(x, "arg"), 1, 65535),
    "port-allow-zero": (lambda x: port(x, "arg", allow_zero=True), 0, 65535),
    "uint-ui2": (lambda x: uint(x, "arg", UI2_MAX), 0, 65535),
    "uint-ui4": (lambda x: uint(x, "arg"), 0, 0xFFFFFFFF),
    "uint-minimum": (lambda x: uint(x, "arg", 10, minimum=5), 5, 10),
    "lease": (lambda x: lease(x, "arg"), 0, 0xFFFFFFFF),
    "lease-pinhole": (lambda x: lease(x, "arg", minimum=1, maximum=86400), 1, 86400),
}

#: Values no integer validator may accept, whatever its range.
NOT_INTS: list[Any] = [True, False, 1.0, 80.5, float("nan"), "80", b"80", None, [80], 80j]


def _int_cases() -> list[Any]:
    cases = []
    for vname, (_, low, high) in INT_VALIDATORS.items():
        for bad in NOT_INTS:
            cases.append(pytest.param(vname, bad, id=f"{vname}-{bad!r}"))
        cases.append(pytest.param(vname, low - 1, id=f"{vname}-below"))
        cases.append(pytest.param(vname, high + 1, id=f"{vname}-above"))
        cases.append(pytest.param(vname, -(2**64), id=f"{vname}-huge-negative"))
        cases.append(pytest.param(vname, 2**64, id=f"{vname}-huge"))
    return cases


@pytest.mark.parametrize(("vname", "bad"), _int_cases())
def test_integer_validators_refuse(vname: str, bad: Any) -> None:
    check = INT_VALIDATORS[vname][0]
    with pytest.raises(ValueError, match="^arg "):
        check(bad)


@pytest.mark.parametrize("vname", INT_VALIDATORS)
def test_integer_validators_accept_their_bounds(vname: str) -> None:
    check, low, high = INT_VALIDATORS[vname]
    assert check(low) == str(low)
    assert check(high) == str(high)
    middle = (low + high) // 2
    assert check(middle) == str(middle)


def test_bool_refusal_says_bool() -> None:
    with pytest.raises(ValueError, match=r"internal_port .* True \(bool\)"):
        port(True, "internal_port")


def test_refused_value_is_shown_bounded() -> None:
    with pytest.raises(ValueError) as info:
        uint("9" * 10_000, "index")  # type: ignore[arg-type]
    assert len(str(info.value)) < 150


def test_limits() -> None:
    assert (UI2_MAX, UI4_MAX) == (65535, 4294967295)


# -- addresses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " 192.168.1.4",
        "192.168.1.4 ",
        "192.168.1.256",
        "192.168.001.004",
        "192.168.1.4/24",
        "::1",
        "host.lan",
        3232235780,  # ipaddress.IPv4Address takes ints; an address argument must be text
        b"\xc0\xa8\x01\x04",  # ... and packed bytes
        True,
        None,
    ],
)
def test_ipv4_refuses(bad: Any) -> None:
    with pytest.raises(ValueError, match="^internal_client must be an IPv4 address"):
        ipv4(bad, "internal_client")


@pytest.mark.parametrize("good", ["192.168.1.4", "10.0.0.1", "0.0.0.0", "255.255.255.255"])
def test_ipv4_accepts(good: str) -> None:
    assert ipv4(good, "internal_client") == good


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),  # the same on every Python version
        ("::FFFF:c000:201", "::ffff:192.0.2.1"),
        ("0:0:0:0:0:0:0:0", "::"),
    ],
)
def test_ipv6_canonical(given: str, canonical: str) -> None:
    assert ipv6(given, "a") == canonical
    assert firewall.canonical_ipv6(given) == canonical


@pytest.mark.parametrize(
    "bad",
    ["", "192.168.1.4", "2001:db8::g", "2001:db8::1/64", "host.lan", 1, b"\x00" * 16, True, None],
)
def test_ipv6_refuses(bad: Any) -> None:
    with pytest.raises(ValueError, match="^remote_host must be an IPv6 address"):
        ipv6(bad, "remote_host")
    with pytest.raises(ValueError, match="^address must be an IPv6 address"):
        firewall.canonical_ipv6(bad)


# -- booleans, strings, protocols -----------------------------------------------------------------


def test_boolean() -> None:
    assert (boolean(True, "enabled"), boolean(False, "enabled")) == ("1", "0")


@pytest.mark.parametrize("bad", [1, 0, "1", "true", "", None, 1.0])
def test_boolean_refuses_non_bool(bad: Any) -> None:
    with pytest.raises(ValueError, match="^enabled must be True or False"):
        boolean(bad, "enabled")


def test_string() -> None:
    assert string("", "description") == ""
    assert string("d" * 256, "description", max_length=256) == "d" * 256
    assert string("<&>", "description") == "<&>"
    with pytest.raises(ValueError, match="^description is longer than 256"):
        string("d" * 257, "description", max_length=256)


@pytest.mark.parametrize("bad", [None, 5, True, b"text", ["a"]])
def test_string_refuses_non_str(bad: Any) -> None:
    with pytest.raises(ValueError, match="^description must be a string"):
        string(bad, "description")


@pytest.mark.parametrize(
    ("given", "expected"),
    [("tcp", Transport.TCP), (" UDP ", Transport.UDP), (Transport.UDP, Transport.UDP)],
)
def test_protocol(given: Any, expected: Transport) -> None:
    assert protocol(given) is expected


@pytest.mark.parametrize("bad", [6, 17, None, True, b"TCP", "ICMP", ""])
def test_protocol_refuses(bad: Any) -> None:
    with pytest.raises(ValueError, match="TCP or UDP"):
        protocol(bad)


# -- the out-argument parsers stay where callers import them --------------------------------------


def test_parsers_are_importable_from_actions_under_their_names() -> None:
    assert actions.parse_uint is values.parse_uint
    assert actions.parse_bool is values.parse_bool
    assert "parse_uint" in actions.__all__ and "parse_bool" in actions.__all__


@pytest.mark.parametrize("text", ["True", "-1", "1.0", "0x10", "²", "65536", "99999999999"])
def test_parse_uint_is_a_remote_error(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        actions.parse_uint(text, "NewInternalPort", 65535)


def test_parse_bool_is_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError):
        actions.parse_bool("maybe", "NewEnabled")
    assert actions.parse_bool(" Yes ", "NewEnabled") is True


@pytest.mark.parametrize("module", [values, actions, firewall])
def test_all_names_exist(module: Any) -> None:
    for name in module.__all__:
        assert hasattr(module, name), name
