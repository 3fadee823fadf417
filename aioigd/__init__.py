"""aioigd: asyncio UPnP IGD client — fast discovery, typed SOAP control, safe port mapping.

Quick start::

    gateway = await aioigd.discover()
    async with gateway, aioigd.PortMapper(gateway) as mapper:
        async with mapper.mapped(8000) as mapping:
            print(mapping.external_ip, mapping.external_port)
            await mapping.wait_lost()   # or: async for event in mapping.events(): ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names are imported on first use (PEP 562), so `import aioigd` and the CLI
# pay only for what they touch: aiohttp alone costs ~170 ms to import.
if TYPE_CHECKING:
    from .anymapper import probe_gateway
    from .discovery import SearchOptions, discover, discover_all, search
    from .errors import (
        ActionFailed,
        ActionNotAuthorized,
        ActionNotSupported,
        CleanupFailed,
        ConflictInMappingEntry,
        ExternalIPUnavailable,
        FirewallDisabled,
        FirewallUnavailable,
        GatewayNotFound,
        HopsUnavailable,
        IGDConnectionError,
        IGDError,
        IGDTimeoutError,
        InboundPinholeNotAllowed,
        InvalidArgs,
        MappingFailed,
        NextLayerNotFound,
        NoSuchEntryInArray,
        NoSuchPinhole,
        OnlyPermanentLeasesSupported,
        PmpAddressMismatch,
        PmpError,
        PmpNoResources,
        PmpNotAuthorized,
        PmpUnsupportedVersion,
        PortInUse,
        RemoteProtocolError,
        ResponseTooLarge,
        SpecifiedArrayIndexInvalid,
        UnsafeURLError,
        UPnPError,
    )
    from .firewall import FirewallControl, KeptPinhole
    from .gateway import Gateway
    from .keeper import Leftover
    from .lifecycle import (
        Event,
        ExternalAddressChanged,
        Failed,
        Lost,
        Mapped,
        Recovered,
        Released,
        RenewalFailed,
        Renewed,
        State,
    )
    from .mapper import KeptMapping, PortMapper
    from .models import (
        ConnectionTypeInfo,
        DeviceDescription,
        FirewallStatus,
        NATRSIPStatus,
        Pinhole,
        PortMapping,
        PortMappingEntry,
        SearchResponse,
        Service,
        StatusInfo,
        StopReason,
        TrafficCounters,
        Transport,
        TransportLike,
        is_global_address,
    )
    from .multilayer import LayeredMapping, LayerEvent, MultiLayerMapper
    from .pmp import NatPmpClient, PcpClient
    from .pmpmapper import PmpMapper
    from .reach import Reachability, ReachablePort
    from .session import SoapSession

_LAZY: dict[str, str] = {
    "PmpMapper": "pmpmapper",
    "PcpClient": "pmp",
    "NatPmpClient": "pmp",
    "probe_gateway": "anymapper",
    "PmpError": "errors",
    "PmpNotAuthorized": "errors",
    "PmpUnsupportedVersion": "errors",
    "PmpAddressMismatch": "errors",
    "PmpNoResources": "errors",
    "FirewallControl": "firewall",
    "FirewallUnavailable": "errors",
    "KeptPinhole": "firewall",
    "KeptMapping": "mapper",
    "CleanupFailed": "errors",
    "MappingRefused": "errors",
    "BehindAnotherNAT": "errors",
    "Leftover": "keeper",
    "LayerEvent": "multilayer",
    "State": "lifecycle",
    "Event": "lifecycle",
    "Mapped": "lifecycle",
    "Renewed": "lifecycle",
    "RenewalFailed": "lifecycle",
    "ExternalAddressChanged": "lifecycle",
    "Lost": "lifecycle",
    "Recovered": "lifecycle",
    "Failed": "lifecycle",
    "Released": "lifecycle",
    "LayeredMapping": "multilayer",
    "StopReason": "models",
    "HopsUnavailable": "errors",
    "NextLayerNotFound": "errors",
    "MultiLayerMapper": "multilayer",
    "Reachability": "reach",
    "ReachablePort": "reach",
    "FirewallStatus": "models",
    "Pinhole": "models",
    "NetworkPolicyError": "errors",
    "NoSuchPinhole": "errors",
    "FirewallDisabled": "errors",
    "InboundPinholeNotAllowed": "errors",
    "SearchOptions": "discovery",
    "discover": "discovery",
    "discover_all": "discovery",
    "search": "discovery",
    "ActionFailed": "errors",
    "ActionNotAuthorized": "errors",
    "ActionNotSupported": "errors",
    "ConflictInMappingEntry": "errors",
    "ExternalIPUnavailable": "errors",
    "GatewayNotFound": "errors",
    "IGDConnectionError": "errors",
    "IGDError": "errors",
    "IGDTimeoutError": "errors",
    "InvalidArgs": "errors",
    "MappingFailed": "errors",
    "NoSuchEntryInArray": "errors",
    "OnlyPermanentLeasesSupported": "errors",
    "RemoteProtocolError": "errors",
    "ResponseTooLarge": "errors",
    "SpecifiedArrayIndexInvalid": "errors",
    "UnsafeURLError": "errors",
    "UPnPError": "errors",
    "Gateway": "gateway",
    "PortInUse": "errors",
    "PortMapper": "mapper",
    "ConnectionTypeInfo": "models",
    "DeviceDescription": "models",
    "PortMapping": "models",
    "NATRSIPStatus": "models",
    "PortMappingEntry": "models",
    "Transport": "models",
    "TransportLike": "models",
    "SearchResponse": "models",
    "Service": "models",
    "StatusInfo": "models",
    "TrafficCounters": "models",
    "is_global_address": "models",
    "SoapSession": "session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aioigd' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "PmpMapper",
    "PcpClient",
    "NatPmpClient",
    "probe_gateway",
    "PmpError",
    "PmpNotAuthorized",
    "PmpUnsupportedVersion",
    "PmpAddressMismatch",
    "PmpNoResources",
    "KeptMapping",
    "KeptPinhole",
    "CleanupFailed",
    "MappingRefused",
    "BehindAnotherNAT",
    "Leftover",
    "LayerEvent",
    "State",
    "Event",
    "Mapped",
    "Renewed",
    "RenewalFailed",
    "ExternalAddressChanged",
    "Lost",
    "Recovered",
    "Failed",
    "Released",
    "MultiLayerMapper",
    "LayeredMapping",
    "StopReason",
    "HopsUnavailable",
    "NextLayerNotFound",
    "ReachablePort",
    "Reachability",
    "FirewallControl",
    "FirewallUnavailable",
    "FirewallStatus",
    "Pinhole",
    "NetworkPolicyError",
    "NoSuchPinhole",
    "FirewallDisabled",
    "InboundPinholeNotAllowed",
    "__version__",
    "discover",
    "discover_all",
    "search",
    "SearchOptions",
    "Gateway",
    "PortMapper",
    "SoapSession",
    "PortMapping",
    "PortMappingEntry",
    "Transport",
    "TransportLike",
    "SearchResponse",
    "Service",
    "DeviceDescription",
    "StatusInfo",
    "TrafficCounters",
    "NATRSIPStatus",
    "ConnectionTypeInfo",
    "is_global_address",
    "IGDError",
    "GatewayNotFound",
    "IGDConnectionError",
    "IGDTimeoutError",
    "RemoteProtocolError",
    "ResponseTooLarge",
    "UnsafeURLError",
    "ActionNotSupported",
    "ExternalIPUnavailable",
    "MappingFailed",
    "PortInUse",
    "UPnPError",
    "InvalidArgs",
    "ActionFailed",
    "ActionNotAuthorized",
    "SpecifiedArrayIndexInvalid",
    "NoSuchEntryInArray",
    "ConflictInMappingEntry",
    "OnlyPermanentLeasesSupported",
]
