"""aioigd: asyncio UPnP IGD client — fast discovery, typed SOAP control, safe port mapping.

Quick start::

    async with await aioigd.discover() as gateway:
        async with gateway.mapped(8000) as mapping:
            print(mapping.external_ip, mapping.external_port)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .discovery import SearchOptions, discover, discover_all, search
from .errors import (
    ActionFailed,
    ActionNotAuthorized,
    ActionNotSupported,
    ConflictInMappingEntry,
    ExternalIPUnavailable,
    GatewayNotFound,
    IGDConnectionError,
    IGDError,
    IGDTimeoutError,
    InvalidArgs,
    MappingFailed,
    NoSuchEntryInArray,
    OnlyPermanentLeasesSupported,
    RemoteProtocolError,
    ResponseTooLarge,
    SpecifiedArrayIndexInvalid,
    UnsafeURLError,
    UPnPError,
)
from .gateway import Gateway
from .mapper import PortInUse, PortMapper
from .models import (
    ConnectionTypeInfo,
    DeviceDescription,
    Mapping,
    NATRSIPStatus,
    PortMappingEntry,
    Protocol,
    SearchResponse,
    Service,
    StatusInfo,
    is_global_address,
)
from .session import SoapSession

__all__ = [
    "__version__",
    "discover",
    "discover_all",
    "search",
    "SearchOptions",
    "Gateway",
    "PortMapper",
    "SoapSession",
    "Mapping",
    "PortMappingEntry",
    "Protocol",
    "SearchResponse",
    "Service",
    "DeviceDescription",
    "StatusInfo",
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
