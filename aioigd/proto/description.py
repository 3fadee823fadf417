"""Parse a UPnP device description into a :class:`DeviceDescription` (igd-description.md)."""

from __future__ import annotations

from ..errors import RemoteProtocolError
from ..models import Device, DeviceDescription, Service
from .urls import check_url, resolve_url, url_host
from .xmlsafe import Element, child, child_text, children, local_name, parse_xml, text_of

__all__ = ["MAX_DESCRIPTION_SIZE", "parse_description"]

#: igd-next caps descriptions at 1 MiB; miniupnpd's is about 4 KiB.
MAX_DESCRIPTION_SIZE = 1 << 20
_MAX_SERVICES = 64
_MAX_DEVICES = 32


def parse_description(
    data: bytes,
    location: str,
    *,
    allow_foreign_urls: bool = False,
    limit: int = MAX_DESCRIPTION_SIZE,
) -> DeviceDescription:
    """Parse a root description fetched from ``location``.

    Every service URL is made absolute (URLBase, else LOCATION). The URLs of the
    services aioigd uses must stay on the LOCATION's host unless
    ``allow_foreign_urls`` is set.

    Raises:
        RemoteProtocolError: not a device description, hostile XML, too large.
        UnsafeURLError: a control URL leaves the gateway's host.
    """
    root = parse_xml(data, limit=limit, what="device description")
    if local_name(root.tag) != "root":
        raise RemoteProtocolError(f"description root element is <{local_name(root.tag)}>")
    url_base = child_text(root, "URLBase")
    device_elem = child(root, "device")
    if device_elem is None:
        raise RemoteProtocolError("description has no <device>")
    allowed = None if allow_foreign_urls else url_host(location)
    counter = [0]
    device = _parse_device(device_elem, location, url_base, allowed, counter)
    return DeviceDescription(location=location, root=device, url_base=url_base)


def _parse_device(
    elem: Element, location: str, url_base: str, allowed: str | None, counter: list[int]
) -> Device:
    counter[0] += 1
    if counter[0] > _MAX_DEVICES:
        raise RemoteProtocolError(f"description has more than {_MAX_DEVICES} devices")
    services: list[Service] = []
    fields = children(elem)
    service_list = fields.get("serviceList")
    for svc in service_list if service_list is not None else ():
        if not isinstance(svc.tag, str) or local_name(svc.tag) != "service":
            continue
        if len(services) >= _MAX_SERVICES:
            raise RemoteProtocolError(f"device has more than {_MAX_SERVICES} services")
        services.append(_parse_service(svc, location, url_base, allowed))
    devices: list[Device] = []
    device_list = fields.get("deviceList")
    for sub in device_list if device_list is not None else ():
        if isinstance(sub.tag, str) and local_name(sub.tag) == "device":
            devices.append(_parse_device(sub, location, url_base, allowed, counter))
    return Device(
        device_type=text_of(fields.get("deviceType")),
        friendly_name=text_of(fields.get("friendlyName"))[:256],
        udn=text_of(fields.get("UDN"))[:256],
        manufacturer=text_of(fields.get("manufacturer"))[:256],
        model_name=text_of(fields.get("modelName"))[:256],
        services=tuple(services),
        devices=tuple(devices),
    )


def _parse_service(elem: Element, location: str, url_base: str, allowed: str | None) -> Service:
    fields = children(elem)

    def url(name: str) -> str:
        raw = text_of(fields.get(name))
        return resolve_url(raw, location=location, url_base=url_base) if raw else ""

    service = Service(
        service_type=text_of(fields.get("serviceType")),
        service_id=text_of(fields.get("serviceId")),
        control_url=url("controlURL"),
        scpd_url=url("SCPDURL"),
        event_sub_url=url("eventSubURL"),
    )
    if service.kind is not None:
        if not service.control_url:
            raise RemoteProtocolError(f"{service.service_type} has no controlURL")
        check_url(service.control_url, allowed_host=allowed)
    return service
