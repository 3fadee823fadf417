"""The aioigd exception tree and the UPnP fault-code tables (no I/O).

Every failure a caller can see is an :class:`IGDError`. Transport problems are
:class:`IGDConnectionError` / :class:`IGDTimeoutError`, a gateway that sent
something malformed, oversized or off-host is :class:`RemoteProtocolError`, and
a SOAP fault is a :class:`UPnPError` subclass chosen by its code *and* the
service that sent it, because 7xx codes mean different things per service
(WANIPConnection 708 is not WANIPv6FirewallControl 708).
"""

from __future__ import annotations

from .models import FirewallStatus, PortMappingEntry, StopReason

__all__ = [
    "IGDError",
    "GatewayNotFound",
    "IGDConnectionError",
    "IGDTimeoutError",
    "ConnectionReset",
    "RemoteProtocolError",
    "ResponseTooLarge",
    "UnsafeURLError",
    "ActionNotSupported",
    "ExternalIPUnavailable",
    "MappingFailed",
    "PortInUse",
    "MappingRefused",
    "BehindAnotherNAT",
    "CleanupFailed",
    "NetworkPolicyError",
    "FirewallUnavailable",
    "PmpError",
    "PmpUnsupportedVersion",
    "PmpNotAuthorized",
    "PmpAddressMismatch",
    "PmpNoResources",
    "HopsUnavailable",
    "NextLayerNotFound",
    "UPnPError",
    "InvalidAction",
    "InvalidArgs",
    "ActionFailed",
    "ArgumentValueInvalid",
    "ArgumentValueOutOfRange",
    "OptionalActionNotImplemented",
    "OutOfMemory",
    "HumanInterventionRequired",
    "StringArgumentTooLong",
    "ActionNotAuthorized",
    "SpecifiedArrayIndexInvalid",
    "NoSuchEntryInArray",
    "WildCardNotPermittedInSrcIP",
    "WildCardNotPermittedInExtPort",
    "ConflictInMappingEntry",
    "SamePortValuesRequired",
    "OnlyPermanentLeasesSupported",
    "RemoteHostOnlySupportsWildcard",
    "ExternalPortOnlySupportsWildcard",
    "NoPortMapsAvailable",
    "ConflictWithOtherMechanisms",
    "PortMappingNotFound",
    "WildCardNotPermittedInIntPort",
    "InconsistentParameters",
    "PinholeSpaceExhausted",
    "FirewallDisabled",
    "InboundPinholeNotAllowed",
    "NoSuchPinhole",
    "ProtocolNotSupported",
    "InternalPortWildcardingNotAllowed",
    "ProtocolWildcardingNotAllowed",
    "PinholeWildCardNotPermittedInSrcIP",
    "NoTrafficReceived",
    "fault_class",
]


class IGDError(Exception):
    """Base class of every error aioigd raises."""


class GatewayNotFound(IGDError, TimeoutError):
    """No usable Internet Gateway Device answered before the timeout."""


class IGDConnectionError(IGDError, ConnectionError):
    """The gateway could not be reached or dropped the connection."""


class IGDTimeoutError(IGDConnectionError, TimeoutError):
    """The gateway did not answer within the configured timeout."""


class ConnectionReset(IGDConnectionError):
    """The gateway reset or closed the connection before it answered."""


class RemoteProtocolError(IGDError):
    """The gateway sent something malformed, hostile or not allowed."""


class ResponseTooLarge(RemoteProtocolError):
    """A response exceeded the configured size cap."""


class UnsafeURLError(RemoteProtocolError):
    """A URL points to another host than the gateway, or uses a refused scheme."""


class ActionNotSupported(IGDError):
    """The gateway's service does not offer the requested action."""


class ExternalIPUnavailable(IGDError):
    """The gateway reports no usable external address (empty or 0.0.0.0)."""


class MappingFailed(IGDError):
    """A port mapping could not be created or verified."""


class PortInUse(MappingFailed):
    """The wanted external port is held by another client (``strict`` mapping)."""

    def __init__(self, message: str, holder: PortMappingEntry | None = None) -> None:
        super().__init__(message)
        self.holder = holder

    def __reduce__(self) -> tuple[type[PortInUse], tuple[str, PortMappingEntry | None]]:
        return type(self), (str(self), self.holder)


class NetworkPolicyError(IGDError):
    """Loopback-only mode (:mod:`aioigd.netguard`) refused a destination outside loopback."""


class MappingRefused(MappingFailed):
    """The gateway refuses mappings for this internal client, whatever the port
    (miniupnpd's secure mode answers 718 for a free port: a host may only map to itself)."""


class BehindAnotherNAT(MappingFailed):
    """The router refuses to forward because its own WAN side is behind another NAT
    (double NAT, CGNAT): its external address is private, shared or missing."""

    def __init__(self, message: str, external_ip: str | None = None) -> None:
        super().__init__(message)
        self.external_ip = external_ip

    def __reduce__(self) -> tuple[type[BehindAnotherNAT], tuple[str, str | None]]:
        return type(self), (str(self), self.external_ip)


class CleanupFailed(IGDError):
    """Something aioigd created could not be removed (the gateway is gone or timed out)."""


class FirewallUnavailable(IGDError):
    """The gateway's IPv6 firewall is off (nothing to open) or refuses inbound pinholes."""

    def __init__(self, message: str, status: FirewallStatus | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[type[FirewallUnavailable], tuple[str, FirewallStatus | None]]:
        return type(self), (str(self), self.status)


class PmpError(IGDError):
    """A PCP or NAT-PMP gateway answered with an error result code."""

    def __init__(self, message: str, *, protocol: str = "", result: int = 0, lifetime: int = 0):
        super().__init__(message)
        #: ``"pcp"`` or ``"natpmp"``.
        self.protocol = protocol
        #: The result code as sent.
        self.result = result
        #: PCP: how long the gateway says the error holds (seconds).
        self.lifetime = lifetime


class PmpUnsupportedVersion(PmpError):
    """The gateway does not speak this version (a NAT-PMP-only gateway asked in PCP)."""


class PmpNotAuthorized(PmpError, MappingRefused):
    """The gateway refuses to map for this client (NOT_AUTHORIZED)."""


class PmpAddressMismatch(PmpError):
    """PCP ADDRESS_MISMATCH: the gateway saw another source address (a NAT is in between)."""


class PmpNoResources(PmpError, MappingFailed):
    """The gateway has no free port or the client is over its quota."""


class HopsUnavailable(IGDError):
    """The routers on the path cannot be discovered here: no hop finder works on this
    platform or event loop (the message says which and why)."""


class NextLayerNotFound(IGDError):
    """No gateway was found for the next NAT layer; ``reason`` says why, typed."""

    def __init__(self, message: str, reason: StopReason = StopReason.NO_GATEWAY) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type[NextLayerNotFound], tuple[str, StopReason]]:
        return type(self), (str(self), self.reason)


class UPnPError(IGDError):
    """A SOAP fault from the gateway (UDA 1.1 §3.2.2).

    Attributes:
        code: the UPnP ``errorCode`` (0 with ``code_missing`` when none could be read).
        description: the gateway's ``errorDescription`` (informative only).
        action: the action that failed, e.g. ``AddPortMapping``.
        service_type: the service URN the action was sent to.
    """

    #: The fault code this class stands for (0 for the generic base).
    code_for_class = 0

    def __init__(
        self,
        code: int,
        description: str,
        action: str = "",
        service_type: str = "",
        code_missing: bool = False,
    ):
        self.code = code
        self.description = description
        self.action = action
        self.service_type = service_type
        #: The fault had no errorCode that could be read (``code`` is then 0).
        self.code_missing = code_missing
        where = f"{action}: " if action else ""
        if code_missing:
            super().__init__(f"{where}UPnP fault without a readable error code: {description}")
        else:
            super().__init__(f"{where}UPnP error {code} {description}".rstrip())

    def __reduce__(self) -> tuple[type[UPnPError], tuple[int, str, str, str, bool]]:
        # Rebuild from the fields (the default would pass the formatted message only),
        # so faults survive pickling and copy (multiprocessing, logging handlers).
        fields = (self.code, self.description, self.action, self.service_type, self.code_missing)
        return type(self), fields


# UDA codes, valid for every service (soap.md).
class InvalidAction(UPnPError):
    """401: no such action at this service."""

    code_for_class = 401


class InvalidArgs(UPnPError):
    """402: missing, extra or ill-typed arguments."""

    code_for_class = 402


class ActionFailed(UPnPError):
    """501: the device's state prevents the action."""

    code_for_class = 501


class ArgumentValueInvalid(UPnPError):
    """600: argument value invalid."""

    code_for_class = 600


class ArgumentValueOutOfRange(UPnPError):
    """601: argument out of range."""

    code_for_class = 601


class OptionalActionNotImplemented(UPnPError):
    """602: optional action not implemented."""

    code_for_class = 602


class OutOfMemory(UPnPError):
    """603: the device is out of memory."""

    code_for_class = 603


class HumanInterventionRequired(UPnPError):
    """604: human intervention required."""

    code_for_class = 604


class StringArgumentTooLong(UPnPError):
    """605: a string argument is too long."""

    code_for_class = 605


class ActionNotAuthorized(UPnPError):
    """606: action not authorized."""

    code_for_class = 606


# WANIPConnection / WANPPPConnection codes (wanipconnection.md).
class SpecifiedArrayIndexInvalid(UPnPError):
    """713: index past the end of the mapping table."""

    code_for_class = 713


class NoSuchEntryInArray(UPnPError):
    """714: no such port mapping."""

    code_for_class = 714


class WildCardNotPermittedInSrcIP(UPnPError):
    """715: the remote host cannot be a wildcard."""

    code_for_class = 715


class WildCardNotPermittedInExtPort(UPnPError):
    """716: the external port cannot be a wildcard."""

    code_for_class = 716


class ConflictInMappingEntry(UPnPError):
    """718: the port is mapped to another client."""

    code_for_class = 718


class SamePortValuesRequired(UPnPError):
    """724: internal and external ports must be equal."""

    code_for_class = 724


class OnlyPermanentLeasesSupported(UPnPError):
    """725: only lease 0 (permanent) is supported."""

    code_for_class = 725


class RemoteHostOnlySupportsWildcard(UPnPError):
    """726: the remote host must be a wildcard."""

    code_for_class = 726


class ExternalPortOnlySupportsWildcard(UPnPError):
    """727: the external port must be a wildcard."""

    code_for_class = 727


class NoPortMapsAvailable(UPnPError):
    """728: no port maps available."""

    code_for_class = 728


class ConflictWithOtherMechanisms(UPnPError):
    """729: conflict with another mapping mechanism."""

    code_for_class = 729


class PortMappingNotFound(UPnPError):
    """730: no mapping in that range."""

    code_for_class = 730


class WildCardNotPermittedInIntPort(UPnPError):
    """732: the internal port cannot be a wildcard."""

    code_for_class = 732


class InconsistentParameters(UPnPError):
    """733: inconsistent parameters (start > end)."""

    code_for_class = 733


# WANIPv6FirewallControl codes (wanipv6firewallcontrol.md).
class PinholeSpaceExhausted(UPnPError):
    """701: no room for another pinhole."""

    code_for_class = 701


class FirewallDisabled(UPnPError):
    """702: the IPv6 firewall is disabled."""

    code_for_class = 702


class InboundPinholeNotAllowed(UPnPError):
    """703: inbound pinholes are not allowed."""

    code_for_class = 703


class NoSuchPinhole(UPnPError):
    """704: no pinhole with that UniqueID."""

    code_for_class = 704


class ProtocolNotSupported(UPnPError):
    """705: protocol not supported."""

    code_for_class = 705


class InternalPortWildcardingNotAllowed(UPnPError):
    """706: the internal port cannot be a wildcard."""

    code_for_class = 706


class ProtocolWildcardingNotAllowed(UPnPError):
    """707: the protocol cannot be a wildcard."""

    code_for_class = 707


class PinholeWildCardNotPermittedInSrcIP(UPnPError):
    """708: the internal client cannot be a wildcard."""

    code_for_class = 708


class NoTrafficReceived(UPnPError):
    """709: no traffic through the pinhole yet."""

    code_for_class = 709


_COMMON: dict[int, type[UPnPError]] = {
    c.code_for_class: c
    for c in (
        InvalidAction,
        InvalidArgs,
        ActionFailed,
        ArgumentValueInvalid,
        ArgumentValueOutOfRange,
        OptionalActionNotImplemented,
        OutOfMemory,
        HumanInterventionRequired,
        StringArgumentTooLong,
        ActionNotAuthorized,
    )
}
_WAN_CONNECTION: dict[int, type[UPnPError]] = {
    c.code_for_class: c
    for c in (
        SpecifiedArrayIndexInvalid,
        NoSuchEntryInArray,
        WildCardNotPermittedInSrcIP,
        WildCardNotPermittedInExtPort,
        ConflictInMappingEntry,
        SamePortValuesRequired,
        OnlyPermanentLeasesSupported,
        RemoteHostOnlySupportsWildcard,
        ExternalPortOnlySupportsWildcard,
        NoPortMapsAvailable,
        ConflictWithOtherMechanisms,
        PortMappingNotFound,
        WildCardNotPermittedInIntPort,
        InconsistentParameters,
    )
}
_FIREWALL: dict[int, type[UPnPError]] = {
    c.code_for_class: c
    for c in (
        PinholeSpaceExhausted,
        FirewallDisabled,
        InboundPinholeNotAllowed,
        NoSuchPinhole,
        ProtocolNotSupported,
        InternalPortWildcardingNotAllowed,
        ProtocolWildcardingNotAllowed,
        PinholeWildCardNotPermittedInSrcIP,
        NoTrafficReceived,
    )
}


def fault_class(code: int, service_type: str = "") -> type[UPnPError]:
    """Return the exception class for ``code`` as sent by ``service_type``.

    Unknown codes, and 7xx codes from a service whose table we do not know,
    give the generic :class:`UPnPError`.
    """
    if code in _COMMON:
        return _COMMON[code]
    if ":service:WANIPv6FirewallControl:" in service_type:
        return _FIREWALL.get(code, UPnPError)
    if ":service:WANIPConnection:" in service_type or ":service:WANPPPConnection:" in service_type:
        return _WAN_CONNECTION.get(code, UPnPError)
    return UPnPError
