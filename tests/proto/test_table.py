"""The action table matches the codecs and the spec digest; check_action by kind and version."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aioigd.errors import ActionNotSupported
from aioigd.models import Service, ServiceKind, Transport
from aioigd.proto import actions, firewall
from aioigd.proto.table import ACTIONS, ActionSpec, check_action

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"

# Written out here, not derived from ACTIONS, so a table edit shows up as a failure.
V1_ACTIONS = {
    "GetExternalIPAddress",
    "GetStatusInfo",
    "GetConnectionTypeInfo",
    "GetNATRSIPStatus",
    "AddPortMapping",
    "DeletePortMapping",
    "GetGenericPortMappingEntry",
    "GetSpecificPortMappingEntry",
}
V2_ONLY_ACTIONS = {"AddAnyPortMapping", "DeletePortMappingRange", "GetListOfPortMappings"}
FIREWALL_ACTIONS = {
    "GetFirewallStatus",
    "GetOutboundPinholeTimeout",
    "AddPinhole",
    "UpdatePinhole",
    "DeletePinhole",
    "GetPinholePackets",
    "CheckPinholeWorking",
}
COMMON_ACTIONS = {
    "GetTotalBytesSent",
    "GetTotalBytesReceived",
    "GetTotalPacketsSent",
    "GetTotalPacketsReceived",
}
ALL_ACTIONS = V1_ACTIONS | V2_ONLY_ACTIONS | FIREWALL_ACTIONS | COMMON_ACTIONS

URN = "urn:schemas-upnp-org:service:"
IP1, IP2, PPP1, FW1 = (
    f"{URN}WANIPConnection:1",
    f"{URN}WANIPConnection:2",
    f"{URN}WANPPPConnection:1",
    f"{URN}WANIPv6FirewallControl:1",
)
#: service type -> the actions it must offer (all others must be refused).
OFFERS: dict[str, set[str]] = {
    IP1: V1_ACTIONS,
    IP2: V1_ACTIONS | V2_ONLY_ACTIONS,
    f"{URN}WANIPConnection:3": V1_ACTIONS | V2_ONLY_ACTIONS,
    f"{URN}WANIPConnection:x": V1_ACTIONS,  # no numeric version: taken as v1
    PPP1: V1_ACTIONS,
    f"{URN}WANPPPConnection:2": V1_ACTIONS,  # PPP never gets the v2 actions
    FW1: FIREWALL_ACTIONS,
    f"{URN}Layer3Forwarding:1": set(),
    f"{URN}WANCommonInterfaceConfig:1": COMMON_ACTIONS,
    "": set(),
}


def _service(service_type: str) -> Service:
    return Service(service_type, "urn:upnp-org:serviceId:X", "http://192.168.1.1:5000/ctl")


# -- the table itself -----------------------------------------------------------------------------


def test_table_covers_exactly_the_implemented_actions() -> None:
    assert set(ACTIONS) == ALL_ACTIONS


@pytest.mark.parametrize("name", sorted(ALL_ACTIONS))
def test_spec_fields(name: str) -> None:
    spec = ACTIONS[name]
    assert isinstance(spec, ActionSpec)
    assert spec.name == name
    assert spec.doc and "\n" not in spec.doc and len(spec.doc) <= 90
    assert len(set(spec.in_args)) == len(spec.in_args)
    assert len(set(spec.out_args)) == len(spec.out_args)
    # An action has a parser exactly when it has out arguments.
    assert (spec.parser is None) == (not spec.out_args)
    if name in FIREWALL_ACTIONS:
        assert (spec.kinds, spec.min_version) == ((ServiceKind.FIREWALL,), 1)
    elif name in COMMON_ACTIONS:
        assert (spec.kinds, spec.min_version) == ((ServiceKind.COMMON_INTERFACE,), 1)
    elif name in V2_ONLY_ACTIONS:
        assert (spec.kinds, spec.min_version) == ((ServiceKind.WAN_IP,), 2)
    else:
        assert set(spec.kinds) == {ServiceKind.WAN_IP, ServiceKind.WAN_PPP}
        assert spec.min_version == 1


def test_table_is_read_only() -> None:
    spec = ACTIONS["AddPortMapping"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.min_version = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        ACTIONS["Evil"] = spec  # type: ignore[index]


# -- in arguments: the table agrees with the codecs -----------------------------------------------

_WAN_GOOD: dict[str, Any] = {
    "external_port": 1872,
    "protocol": Transport.TCP,
    "internal_port": 1872,
    "internal_client": "192.168.1.4",
    "description": "aioigd",
    "lease": 60,
}
_PIN_GOOD: dict[str, Any] = {
    "internal_client": "2001:db8::10",
    "internal_port": 8080,
    "protocol": Transport.UDP,
}

#: action -> the codec call that builds its in arguments ([] for actions without any).
CODECS: dict[str, Callable[[], list[tuple[str, str]]]] = {
    "GetExternalIPAddress": list,
    "GetStatusInfo": list,
    "GetConnectionTypeInfo": list,
    "GetNATRSIPStatus": list,
    "AddPortMapping": lambda: actions.port_mapping_args(**_WAN_GOOD),
    "AddAnyPortMapping": lambda: actions.port_mapping_args(**{**_WAN_GOOD, "external_port": 0}),
    "DeletePortMapping": lambda: actions.mapping_key_args(1872, Transport.TCP),
    "GetSpecificPortMappingEntry": lambda: actions.mapping_key_args(1872, Transport.UDP, "h"),
    "GetGenericPortMappingEntry": lambda: actions.generic_entry_args(3),
    "DeletePortMappingRange": lambda: actions.delete_range_args(1, 100, Transport.TCP),
    "GetListOfPortMappings": lambda: actions.list_mappings_args(1, 65535, Transport.UDP),
    "GetTotalBytesSent": list,
    "GetTotalBytesReceived": list,
    "GetTotalPacketsSent": list,
    "GetTotalPacketsReceived": list,
    "GetFirewallStatus": list,
    "GetOutboundPinholeTimeout": lambda: firewall.outbound_timeout_args(**_PIN_GOOD),
    "AddPinhole": lambda: firewall.pinhole_args(**_PIN_GOOD, lease=3600),
    "UpdatePinhole": lambda: firewall.update_args(7, 3600),
    "DeletePinhole": lambda: firewall.id_args(7),
    "GetPinholePackets": lambda: firewall.id_args(7),
    "CheckPinholeWorking": lambda: firewall.id_args(7),
}


def test_every_action_has_a_codec_here() -> None:
    assert set(CODECS) == set(ACTIONS)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_in_args_match_the_codec(name: str) -> None:
    produced = tuple(arg for arg, _ in CODECS[name]())
    assert produced == ACTIONS[name].in_args


# -- out arguments: each parser reads what the table says -----------------------------------------

#: A valid wire value for every out argument name of the table.
SAMPLE_OUT = {
    "NewExternalIPAddress": "203.0.113.1",
    "NewConnectionStatus": "Connected",
    "NewLastConnectionError": "ERROR_NONE",
    "NewUptime": "5",
    "NewConnectionType": "IP_Routed",
    "NewPossibleConnectionTypes": "IP_Routed",
    "NewRSIPAvailable": "0",
    "NewNATEnabled": "1",
    "NewRemoteHost": "",
    "NewExternalPort": "1872",
    "NewProtocol": "TCP",
    "NewInternalPort": "1872",
    "NewInternalClient": "192.168.1.4",
    "NewEnabled": "1",
    "NewPortMappingDescription": "aioigd",
    "NewLeaseDuration": "60",
    "NewReservedPort": "1873",
    "NewPortListing": "",
    "NewTotalBytesSent": "1",
    "NewTotalBytesReceived": "2",
    "NewTotalPacketsSent": "3",
    "NewTotalPacketsReceived": "4",
    "FirewallEnabled": "1",
    "InboundPinholeAllowed": "1",
    "OutboundPinholeTimeout": "120",
    "UniqueID": "7",
    "PinholePackets": "3",
    "IsWorking": "1",
}


class _Recording(dict[str, str]):
    """A reply dict that records which argument names the parser looked up."""

    def __init__(self, data: dict[str, str]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize("name", sorted(n for n, s in ACTIONS.items() if s.parser is not None))
def test_parser_reads_the_out_args(name: str) -> None:
    spec = ACTIONS[name]
    assert spec.parser is not None
    out = _Recording({arg: SAMPLE_OUT[arg] for arg in spec.out_args})
    if name == "GetSpecificPortMappingEntry":
        # The reply does not echo the key; the caller passes it.
        result = actions.parse_port_mapping_entry(out, external_port=1872, protocol=Transport.TCP)
    else:
        result = spec.parser(out)
    assert result is not None
    assert set(spec.out_args) <= out.read, f"parser ignores {set(spec.out_args) - out.read}"
    # It may also look for the key (in arguments) a reply could echo, nothing else.
    assert out.read <= set(spec.out_args) | set(spec.in_args)


# -- the spec digest ------------------------------------------------------------------------------


def _digest_rows(path: Path, columns: int) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == columns and re.fullmatch(r"[A-Z][A-Za-z0-9]+", cells[0]):
            rows[cells[0]] = cells[1:]
    return rows


def _names(cell: str) -> tuple[str, ...]:
    cell = re.sub(r"\([^)]*\)", "", cell.replace("*", "")).strip()
    if cell in ("—", "-", ""):
        return ()
    return tuple(name.strip() for name in cell.split(","))


def test_wan_actions_match_the_digest() -> None:
    path = SPEC / "wanipconnection.md"
    if not path.is_file():
        pytest.skip(f"no spec digest at {path}")
    rows = _digest_rows(path, 6)  # action | v1 | v2 | PPP1 | in | out
    for name in V1_ACTIONS | V2_ONLY_ACTIONS:
        v1, v2, ppp, in_cell, out_cell = rows[name]
        spec = ACTIONS[name]
        in_args = _names(in_cell)
        if in_args == ("same 8 as AddPortMapping",):
            in_args = _names(rows["AddPortMapping"][3])
        assert spec.in_args == in_args, name
        assert spec.out_args == _names(out_cell), name
        assert spec.min_version == (1 if v1 != "—" else 2), name
        assert (ServiceKind.WAN_PPP in spec.kinds) == (ppp != "—"), name
        assert v2 != "—", name


def test_firewall_actions_match_the_digest() -> None:
    path = SPEC / "wanipv6firewallcontrol.md"
    if not path.is_file():
        pytest.skip(f"no spec digest at {path}")
    rows = _digest_rows(path, 4)  # action | R/O | in | out
    assert set(rows) >= FIREWALL_ACTIONS
    for name in FIREWALL_ACTIONS:
        _, in_cell, out_cell = rows[name]
        assert ACTIONS[name].in_args == _names(in_cell), name
        assert ACTIONS[name].out_args == _names(out_cell), name


# -- check_action ---------------------------------------------------------------------------------


def _matrix() -> list[Any]:
    return [
        pytest.param(stype, name, name in offered, id=f"{stype.rpartition(':service:')[2]}-{name}")
        for stype, offered in OFFERS.items()
        for name in sorted(ALL_ACTIONS)
    ]


@pytest.mark.parametrize(("service_type", "name", "offered"), _matrix())
def test_check_action_by_kind_and_version(service_type: str, name: str, offered: bool) -> None:
    service = _service(service_type)
    if offered:
        assert check_action(name, service) is ACTIONS[name]
        assert ACTIONS[name].supported_by(service)
    else:
        with pytest.raises(ActionNotSupported) as info:
            check_action(name, service)
        assert name in str(info.value)
        assert service_type in str(info.value)
        assert not ACTIONS[name].supported_by(service)


@pytest.mark.parametrize(
    ("service_type", "name", "needs"),
    [
        (IP1, "AddAnyPortMapping", "WANIPConnection:2 or later"),
        (PPP1, "GetListOfPortMappings", "WANIPConnection:2 or later"),
        (FW1, "AddPortMapping", "WANIPConnection:1 or WANPPPConnection:1"),
        (IP2, "AddPinhole", "WANIPv6FirewallControl:1"),
    ],
)
def test_refusal_says_what_is_needed(service_type: str, name: str, needs: str) -> None:
    with pytest.raises(ActionNotSupported, match=f"^{name} needs {needs}, the service is "):
        check_action(name, _service(service_type))


@pytest.mark.parametrize(
    "name", ["", "SetConnectionType", "addportmapping", "AddPortMapping ", "GetPinholes"]
)
def test_check_action_refuses_unknown_actions(name: str) -> None:
    for service_type in (IP1, IP2, PPP1, FW1):
        with pytest.raises(ActionNotSupported, match="does not implement"):
            check_action(name, _service(service_type))


def test_refusal_message_is_bounded() -> None:
    with pytest.raises(ActionNotSupported) as info:
        check_action("X" * 10_000, _service(IP2))
    assert len(str(info.value)) < 200
