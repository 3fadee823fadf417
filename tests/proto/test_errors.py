"""The exception tree and the per-service fault-code table."""

from __future__ import annotations

import inspect

import pytest

from aioigd import errors
from aioigd.errors import (
    ActionFailed,
    ActionNotAuthorized,
    ArgumentValueInvalid,
    ArgumentValueOutOfRange,
    ConflictInMappingEntry,
    ConflictWithOtherMechanisms,
    ExternalPortOnlySupportsWildcard,
    FirewallDisabled,
    GatewayNotFound,
    HumanInterventionRequired,
    IGDConnectionError,
    IGDError,
    IGDTimeoutError,
    InboundPinholeNotAllowed,
    InconsistentParameters,
    InternalPortWildcardingNotAllowed,
    InvalidAction,
    InvalidArgs,
    NoPortMapsAvailable,
    NoSuchEntryInArray,
    NoSuchPinhole,
    NoTrafficReceived,
    OnlyPermanentLeasesSupported,
    OptionalActionNotImplemented,
    OutOfMemory,
    PinholeSpaceExhausted,
    PinholeWildCardNotPermittedInSrcIP,
    PortMappingNotFound,
    ProtocolNotSupported,
    ProtocolWildcardingNotAllowed,
    RemoteHostOnlySupportsWildcard,
    RemoteProtocolError,
    ResponseTooLarge,
    SamePortValuesRequired,
    SpecifiedArrayIndexInvalid,
    StringArgumentTooLong,
    UnsafeURLError,
    UPnPError,
    WildCardNotPermittedInExtPort,
    WildCardNotPermittedInIntPort,
    WildCardNotPermittedInSrcIP,
    fault_class,
)

URN = "urn:schemas-upnp-org:service"
WANIP1, WANIP2 = f"{URN}:WANIPConnection:1", f"{URN}:WANIPConnection:2"
PPP1 = f"{URN}:WANPPPConnection:1"
FW1 = f"{URN}:WANIPv6FirewallControl:1"
TR064_IP = "urn:dslforum-org:service:WANIPConnection:1"
TR064_PPP = "urn:dslforum-org:service:WANPPPConnection:1"
L3F = f"{URN}:Layer3Forwarding:1"

WAN_SERVICES = (WANIP1, WANIP2, PPP1, TR064_IP, TR064_PPP)
OTHER_SERVICES = ("", L3F, "urn:example:service:Vendor:1")

# (code, class from WANIPConnection/WANPPPConnection, class from WANIPv6FirewallControl),
# written from wanipconnection.md / wanipv6firewallcontrol.md / soap.md, not from errors.py.
FAULT_TABLE: list[tuple[int, type[UPnPError], type[UPnPError]]] = [
    (401, InvalidAction, InvalidAction),
    (402, InvalidArgs, InvalidArgs),
    (403, UPnPError, UPnPError),
    (501, ActionFailed, ActionFailed),
    (600, ArgumentValueInvalid, ArgumentValueInvalid),
    (601, ArgumentValueOutOfRange, ArgumentValueOutOfRange),
    (602, OptionalActionNotImplemented, OptionalActionNotImplemented),
    (603, OutOfMemory, OutOfMemory),
    (604, HumanInterventionRequired, HumanInterventionRequired),
    (605, StringArgumentTooLong, StringArgumentTooLong),
    (606, ActionNotAuthorized, ActionNotAuthorized),
    (607, UPnPError, UPnPError),
    (701, UPnPError, PinholeSpaceExhausted),
    (702, UPnPError, FirewallDisabled),
    (703, UPnPError, InboundPinholeNotAllowed),
    (704, UPnPError, NoSuchPinhole),
    (705, UPnPError, ProtocolNotSupported),
    (706, UPnPError, InternalPortWildcardingNotAllowed),
    (707, UPnPError, ProtocolWildcardingNotAllowed),
    (708, UPnPError, PinholeWildCardNotPermittedInSrcIP),
    (709, UPnPError, NoTrafficReceived),
    (710, UPnPError, UPnPError),
    (711, UPnPError, UPnPError),
    (712, UPnPError, UPnPError),
    (713, SpecifiedArrayIndexInvalid, UPnPError),
    (714, NoSuchEntryInArray, UPnPError),
    (715, WildCardNotPermittedInSrcIP, UPnPError),
    (716, WildCardNotPermittedInExtPort, UPnPError),
    (717, UPnPError, UPnPError),
    (718, ConflictInMappingEntry, UPnPError),
    (719, UPnPError, UPnPError),
    (720, UPnPError, UPnPError),
    (723, UPnPError, UPnPError),
    (724, SamePortValuesRequired, UPnPError),
    (725, OnlyPermanentLeasesSupported, UPnPError),
    (726, RemoteHostOnlySupportsWildcard, UPnPError),
    (727, ExternalPortOnlySupportsWildcard, UPnPError),
    (728, NoPortMapsAvailable, UPnPError),
    (729, ConflictWithOtherMechanisms, UPnPError),
    (730, PortMappingNotFound, UPnPError),
    (731, UPnPError, UPnPError),
    (732, WildCardNotPermittedInIntPort, UPnPError),
    (733, InconsistentParameters, UPnPError),
    (734, UPnPError, UPnPError),
    (800, UPnPError, UPnPError),
    (899, UPnPError, UPnPError),
    (0, UPnPError, UPnPError),
    (9999, UPnPError, UPnPError),
]


@pytest.mark.parametrize(("code", "wan_cls", "fw_cls"), FAULT_TABLE)
def test_fault_class_per_service(
    code: int, wan_cls: type[UPnPError], fw_cls: type[UPnPError]
) -> None:
    for service_type in WAN_SERVICES:
        assert fault_class(code, service_type) is wan_cls, service_type
    assert fault_class(code, FW1) is fw_cls
    # A service whose 7xx table we do not know: only the UDA codes get a class.
    common = wan_cls if wan_cls is fw_cls else UPnPError
    for service_type in OTHER_SERVICES:
        assert fault_class(code, service_type) is common, service_type
    assert fault_class(code) is common


def test_fault_table_covers_every_fault_class() -> None:
    classes = {
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, UPnPError) and obj is not UPnPError
    }
    in_table = {cls for _, wan, fw in FAULT_TABLE for cls in (wan, fw)} - {UPnPError}
    assert classes == in_table
    for cls in classes:
        assert cls.__doc__ is not None and cls.__doc__.startswith(f"{cls.code_for_class}:"), cls


def test_same_7xx_code_differs_by_service() -> None:
    assert fault_class(704, WANIP1) is UPnPError
    assert fault_class(704, FW1) is NoSuchPinhole
    assert fault_class(708, WANIP2) is UPnPError
    assert fault_class(708, FW1) is PinholeWildCardNotPermittedInSrcIP
    assert fault_class(713, FW1) is UPnPError
    assert fault_class(713, PPP1) is SpecifiedArrayIndexInvalid


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (
            (718, "ConflictInMappingEntry", "AddPortMapping", WANIP1),
            "AddPortMapping: UPnP error 718 ConflictInMappingEntry",
        ),
        ((713, "SpecifiedArrayIndexInvalid"), "UPnP error 713 SpecifiedArrayIndexInvalid"),
        ((501, "", "DeletePortMapping"), "DeletePortMapping: UPnP error 501"),
        ((0, ""), "UPnP error 0"),
    ],
)
def test_upnp_error_str(args: tuple[int, str] | tuple[int, str, str, str], text: str) -> None:
    err = UPnPError(*args)
    assert str(err) == text
    assert err.code == args[0]
    assert err.description == args[1]


def test_upnp_error_attributes_on_subclass() -> None:
    err = ConflictInMappingEntry(718, "Conflict", "AddAnyPortMapping", WANIP2)
    assert (err.code, err.description, err.action, err.service_type) == (
        718,
        "Conflict",
        "AddAnyPortMapping",
        WANIP2,
    )
    assert "AddAnyPortMapping" in str(err) and "718" in str(err)
    assert isinstance(err, UPnPError) and isinstance(err, IGDError)


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (GatewayNotFound, (IGDError, TimeoutError)),
        (IGDConnectionError, (IGDError, ConnectionError, OSError)),
        (IGDTimeoutError, (IGDConnectionError, ConnectionError, TimeoutError, IGDError)),
        (RemoteProtocolError, (IGDError,)),
        (ResponseTooLarge, (RemoteProtocolError, IGDError)),
        (UnsafeURLError, (RemoteProtocolError, IGDError)),
        (UPnPError, (IGDError,)),
        (errors.ActionNotSupported, (IGDError,)),
        (errors.ExternalIPUnavailable, (IGDError,)),
        (errors.MappingFailed, (IGDError,)),
    ],
)
def test_hierarchy(cls: type[Exception], bases: tuple[type[BaseException], ...]) -> None:
    for base in bases:
        assert issubclass(cls, base), base


def test_gateway_not_found_is_caught_as_timeout() -> None:
    with pytest.raises(TimeoutError):
        raise GatewayNotFound("no gateway")
    assert not issubclass(GatewayNotFound, ConnectionError)


def test_igd_timeout_is_both_connection_and_timeout_error() -> None:
    for catch in (ConnectionError, TimeoutError, IGDConnectionError, IGDError, OSError):
        with pytest.raises(catch):
            raise IGDTimeoutError("slow gateway")


def test_protocol_errors_are_not_connection_errors() -> None:
    # A malformed reply must not be retried like a dropped connection.
    for cls in (RemoteProtocolError, UPnPError, errors.ExternalIPUnavailable):
        assert not issubclass(cls, ConnectionError)
        assert not issubclass(cls, TimeoutError)


def test_all_is_complete() -> None:
    public = {
        name
        for name, obj in vars(errors).items()
        if not name.startswith("_") and inspect.isclass(obj) and issubclass(obj, BaseException)
    }
    assert public | {"fault_class"} == set(errors.__all__)
    for name in errors.__all__:
        obj = getattr(errors, name)
        assert obj is fault_class or issubclass(obj, IGDError)


def test_faults_survive_pickle_and_copy() -> None:
    import copy
    import pickle

    from aioigd.errors import ConflictInMappingEntry

    err = ConflictInMappingEntry(
        718, "Conflict", "AddPortMapping", "urn:x:service:WANIPConnection:2"
    )
    for clone in (pickle.loads(pickle.dumps(err)), copy.copy(err)):
        assert type(clone) is ConflictInMappingEntry
        assert (clone.code, clone.description, clone.action, clone.service_type) == (
            718,
            "Conflict",
            "AddPortMapping",
            "urn:x:service:WANIPConnection:2",
        )
        assert str(clone) == str(err)
