"""Port-mapping commands: discover, external-ip, status, list, add, delete, map, demo."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import CleanupFailed, IGDError
from .common import (
    ExitCode,
    Output,
    Results,
    event_record,
    hold,
    one_line,
    report_leftovers,
    search_options,
    stop_printing,
)

__all__ = [
    "cmd_discover",
    "cmd_external_ip",
    "cmd_status",
    "cmd_list",
    "cmd_add",
    "cmd_delete",
    "cmd_map",
    "cmd_demo",
]


async def _gateway(args: argparse.Namespace, out: Output) -> Any:
    if args.gateway:
        from ..gateway import Gateway

        return await Gateway.from_location(
            args.gateway,
            http_timeout=args.http_timeout,
            allow_foreign_urls=args.allow_foreign_location,
        )
    from ..discovery import discover

    out.progress(f"searching for a gateway (up to {args.timeout:g} s)")
    return await discover(search_options(args))


def _gateway_dict(gw: Any) -> dict[str, Any]:
    return {
        "location": gw.location,
        "friendly_name": gw.friendly_name,
        "udn": gw.udn,
        "service_type": gw.service.service_type,
        "connection": gw.choice,
        "firewall": gw.firewall is not None,
    }


async def _probe(args: argparse.Namespace, out: Output) -> Any:
    """Ask the gateway in every protocol of --protocols at once (see aioigd.anymapper)."""
    from ..anymapper import pcp_host, probe_search

    options = search_options(args)
    names = ", ".join(args.protocols)
    where = pcp_host(options) or "the LAN"
    out.progress(f"asking {where} in {names} (up to {args.timeout:g} s)")
    found = await probe_search(options, protocols=args.protocols, search_timeout=args.timeout)
    if not found.candidates:
        from ..errors import GatewayNotFound

        raise GatewayNotFound(f"no gateway answered ({found.why_not()})")
    return found


def _upnp_only(args: argparse.Namespace) -> bool:
    return bool(args.gateway) or tuple(args.protocols) == ("upnp",)


async def _speaks(host: str, protocols: list[str]) -> list[str]:
    from ..anymapper import parse_protocols, probe_gateway

    if not protocols:
        return []
    found = await probe_gateway(
        host, protocols=parse_protocols(protocols), upnp=None, wait_all=True
    )
    speaks = found.speaks
    await found.aclose()
    return speaks


async def cmd_discover(args: argparse.Namespace, out: Output) -> int:
    from ..anymapper import pcp_host
    from ..discovery import discover_all
    from ..errors import GatewayNotFound
    from ..gateway import Gateway
    from ..proto.natpmp import SERVER_PORT

    pmp = [p for p in args.protocols if p != "upnp"]
    gateways: list[Any] = []
    upnp_error: GatewayNotFound | None = None
    if "upnp" in args.protocols or args.gateway:
        try:
            if args.all and not args.gateway:
                out.progress(f"collecting gateways for {args.timeout:g} s")
                gateways = await discover_all(search_options(args))
            else:
                gateways = [await _gateway(args, out)]
        except GatewayNotFound as exc:
            if not pmp or args.gateway:
                raise
            upnp_error = exc
    try:
        found: list[dict[str, Any]] = []
        lines: list[str] = []
        for gw in gateways:
            assert isinstance(gw, Gateway)
            d = _gateway_dict(gw)
            d["speaks"] = ["upnp", *await _speaks(gw.host, pmp)]
            found.append(d)
            lines.append(
                f"{gw.location}  {gw.friendly_name!r}  {gw.service.service_type}  "
                f"speaks {','.join(d['speaks'])}"
            )
        if not gateways:
            host = pcp_host(search_options(args))
            speaks = await _speaks(host, pmp) if host else []
            if not speaks:
                asked = f"asked {host}" if host else "no default gateway to ask"
                why = f"nothing answered in {', '.join(pmp)} ({asked})"
                raise GatewayNotFound(f"{upnp_error}; {why}" if upnp_error else why)
            location = f"{speaks[0]}://{host}:{SERVER_PORT}"
            found.append({"location": location, "host": host, "speaks": speaks})
            lines.append(f"{location}  speaks {','.join(speaks)}")
        # --all is a list: one object holding it, so that none is still one outcome.
        out.emit({"gateways": found} if args.all else found[0], "\n".join(lines))
    finally:
        for gw in gateways:
            await gw.close()
    return ExitCode.OK


def _no_external_ip_note(exc: BaseException, gw: Any) -> None:
    exc.add_note(
        f"the router at {gw.host} may sit behind another NAT that gave it a private "
        "address (miniupnpd then reports none); `aioigd map PORT --layers auto` maps "
        "through both"
    )


async def cmd_external_ip(args: argparse.Namespace, out: Output) -> int:
    from ..errors import ExternalIPUnavailable

    async with await _gateway(args, out) as gw:
        try:
            ip = await gw.get_external_ip_address()
        except ExternalIPUnavailable as exc:
            _no_external_ip_note(exc, gw)
            raise
        out.emit({"external_ip": ip, "location": gw.location}, ip)
    return ExitCode.OK


async def cmd_status(args: argparse.Namespace, out: Output) -> int:
    """Like ``upnpc -s``: what the gateway says about its WAN link."""
    from ..errors import ExternalIPUnavailable, UPnPError
    from ..models import StatusInfo

    async with await _gateway(args, out) as gw:
        # Each part on its own, like upnpc -s: a router without one optional action
        # still reports the rest.
        status_error = ""
        try:
            status = await gw.get_status_info()
        except UPnPError as exc:
            status, status_error = StatusInfo("", "", 0), one_line(str(exc))
        external_ip: str | None = None
        why = ""
        try:
            external_ip = await gw.get_external_ip_address()
        except (ExternalIPUnavailable, UPnPError) as exc:
            why = one_line(str(exc))
        counters: dict[str, Any] | None = None
        if gw.common_interface is not None:
            counters = (await gw.get_traffic_counters()).as_dict()
        data = {
            "location": gw.location,
            "friendly_name": gw.friendly_name,
            "service_type": gw.service.service_type,
            "connection": gw.choice,
            "local_address": gw.local_address(),
            "connection_status": status.connection_status,
            "last_connection_error": status.last_connection_error,
            "uptime": status.uptime,
            "external_ip": external_ip,
            # None: no WANCommonInterfaceConfig service in the description.
            "traffic": counters,
        }
        if why:
            data["external_ip_error"] = why
        if status_error:
            data["connection_status"] = data["last_connection_error"] = data["uptime"] = None
            data["status_error"] = status_error
        error = status.last_connection_error
        lines = [
            f"gateway:     {gw.location}  {gw.friendly_name!r}",
            f"service:     {gw.service.service_type} ({gw.choice})",
            f"local:       {data['local_address']}",
            f"connection:  unknown ({status_error})"
            if status_error
            else f"connection:  {status.connection_status}, up {status.uptime} s"
            + (f", last error {error}" if error and error != "ERROR_NONE" else ""),
            f"external IP: {external_ip or 'none (' + why + ')'}",
        ]
        if counters is None:
            lines.append("traffic:     not reported (no WANCommonInterfaceConfig service)")
        else:
            shown = {k: "?" if v is None else v for k, v in counters.items()}
            lines.append(
                f"traffic:     bytes sent {shown['bytes_sent']}, received "
                f"{shown['bytes_received']}; packets sent {shown['packets_sent']}, "
                f"received {shown['packets_received']}"
            )
        out.emit(data, "\n".join(lines))
    return ExitCode.OK


def _entry_dict(e: Any) -> dict[str, Any]:
    return {
        "external_port": e.external_port,
        "protocol": e.protocol.value,
        "internal_client": e.internal_client,
        "internal_port": e.internal_port,
        "enabled": e.enabled,
        "description": e.description,
        "lease": e.lease,
        "remote_host": e.remote_host,
    }


async def cmd_list(args: argparse.Namespace, out: Output) -> int:
    async with await _gateway(args, out) as gw:
        entries = await gw.port_mappings()
        lines = [
            f"{e.protocol.value:3} {e.external_port:5} -> {e.internal_client}:"
            f"{e.internal_port}  lease {e.lease}s  {e.description!r}"
            + (f"  from {e.remote_host}" if e.remote_host else "")
            for e in entries
        ]
        for reason in gw.skipped_entries:
            print(f"aioigd: note: skipped a malformed entry ({one_line(reason)})", file=out.err)
        out.emit(
            {
                "location": gw.location,
                "port_mappings": [_entry_dict(e) for e in entries],
                "skipped_entries": len(gw.skipped_entries),
            },
            "\n".join(lines) if lines else "no port mappings",
        )
    return ExitCode.OK


def _mapping_text(m: Any) -> str:
    lease = "permanent" if m.lease == 0 else f"{m.lease}s"
    return (
        f"{m.protocol.value} {m.external_ip or '?'}:{m.external_port} -> "
        f"{m.internal_client}:{m.internal_port}  lease {lease}  {m.description!r}"
    )


async def cmd_add(args: argparse.Namespace, out: Output) -> int:
    """Every INTERNAL_PORT for every protocol, in order; the first failure stops the rest
    (those made stay, as with one port: they are printed before the error)."""
    from ..mapper import PortMapper

    if not (_upnp_only(args) or args.remote_host):
        return await _add_any(args, out)
    async with await _gateway(args, out) as gw:
        mapper = PortMapper(gw)
        results = Results(out, "port_mappings")
        try:
            for port in args.internal_port:
                for protocol in args.protocol:
                    if args.remote_host:
                        results.add(*await _add_for_peer(gw, args, port, protocol, out))
                        continue
                    mapping = await mapper.map_port(
                        port,
                        external_port=args.external_port,
                        protocol=protocol,
                        lease=args.lease,
                        description=args.description,
                        internal_client=args.internal_client,
                        strict=args.strict,
                    )
                    _notes(mapping, out)
                    results.add(mapping.as_dict(), _mapping_text(mapping))
        except Exception as exc:
            results.failed(exc)
            raise
        results.done()
    return ExitCode.OK


async def _add_any(args: argparse.Namespace, out: Output) -> int:
    """``add`` through whichever of --protocols maps first at the gateway (one probe
    for every port asked for)."""
    from ..anymapper import map_first

    found = await _probe(args, out)
    jobs = [(port, protocol) for port in args.internal_port for protocol in args.protocol]

    async def add(mapper: Any, port: int, protocol: str) -> Any:
        return await mapper.map_port(
            port,
            external_port=args.external_port,
            protocol=protocol,
            lease=args.lease,
            description=args.description,
            internal_client=args.internal_client,
            strict=args.strict,
        )

    results = Results(out, "port_mappings")
    mapper: Any = None
    try:
        first_port, first_protocol = jobs[0]
        mapper, mapping = await map_first(
            found, lambda m: add(m, first_port, first_protocol), check_interval=None
        )
        for i, (port, protocol) in enumerate(jobs):
            if i:
                mapping = await add(mapper, port, protocol)
            _notes(mapping, out)
            results.add(mapping.as_dict(), _mapping_text(mapping))
    except Exception as exc:
        results.failed(exc)
        raise
    finally:
        if mapper is not None:
            await mapper.close(release=False)  # one-shot: it stays until its lease ends
    results.done()
    return ExitCode.OK


def _notes(mapping: Any, out: Output) -> None:
    if mapping.permanent_only and not out.as_json:
        print("note: the gateway only accepts permanent leases", file=out.err)
    if mapping.wanted_port and mapping.wanted_port != mapping.external_port:
        print(
            f"aioigd: note: {mapping.protocol.value} port {mapping.wanted_port} is "
            f"taken; mapped {mapping.external_port} instead",
            file=out.err,
        )


async def _add_for_peer(
    gw: Any, args: argparse.Namespace, port: int, protocol: str, out: Output
) -> tuple[dict[str, Any], str]:
    """``add --remote-host``: one AddPortMapping as asked, like ``upnpc -a ... REMOTE_HOST``
    (PortMapper maps for any peer): no other port is tried; 725 falls back to a permanent
    lease; verified with GetSpecificPortMappingEntry for that peer."""
    from ..errors import ExternalIPUnavailable, MappingFailed, OnlyPermanentLeasesSupported
    from ..models import PortMapping, Transport

    external = args.external_port or port
    client = args.internal_client or gw.local_address()
    lease = args.lease

    async def add(lease: int) -> None:
        await gw.add_port_mapping(
            external,
            protocol=protocol,
            internal_port=port,
            internal_client=client,
            description=args.description,
            lease=lease,
            remote_host=args.remote_host,
        )

    try:
        await add(lease)
    except OnlyPermanentLeasesSupported:
        if lease == 0:
            raise
        lease = 0
        await add(lease)
        print("note: the gateway only accepts permanent leases", file=out.err)
    entry = await gw.get_specific_port_mapping_entry(
        external, protocol, remote_host=args.remote_host
    )
    if (entry.internal_client, entry.internal_port) != (client, port):
        raise MappingFailed(
            f"{protocol} {external} from {args.remote_host} maps to "
            f"{entry.internal_client}:{entry.internal_port}, not {client}:{port}"
        )
    try:
        external_ip: str | None = await gw.get_external_ip_address()
    except ExternalIPUnavailable:
        external_ip = None
    mapping = PortMapping(
        external_ip=external_ip,
        external_port=external,
        internal_client=client,
        internal_port=port,
        protocol=Transport.parse(protocol),
        lease=entry.lease if lease else 0,
        description=args.description,
        gateway=gw.location,
        permanent_only=lease == 0 and args.lease != 0,
        wanted_port=external,
    )
    return (
        {**mapping.as_dict(), "remote_host": args.remote_host},
        f"{_mapping_text(mapping)}  only from {args.remote_host}",
    )


async def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    if not _upnp_only(args) and not args.remote_host:
        return await _delete_any(args, out)
    async with await _gateway(args, out) as gw:
        results = Results(out, "deleted")
        try:
            for low, high in args.external_port:
                for protocol in args.protocol:
                    results.add(*await _delete(gw, low, high, protocol, args.remote_host))
        except Exception as exc:
            results.failed(exc)
            raise
        results.done()
    return ExitCode.OK


async def _delete(
    gw: Any, low: int, high: int, protocol: str, remote_host: str | None
) -> tuple[dict[str, Any], str]:
    if low == high:
        await _delete_one(gw, low, protocol, remote_host)
        data: dict[str, Any] = {"deleted": True, "external_port": low}
        text = f"deleted {protocol} {low}"
    else:
        n = await _delete_range(gw, low, high, protocol)
        data = {"deleted": True, "start_port": low, "end_port": high}
        text = f"deleted {protocol} {low}-{high}"
        if n is not None:
            data["count"] = n
            text += f" ({n} mapping{'s' if n != 1 else ''})"
    data["protocol"] = protocol
    if remote_host:
        data["remote_host"] = remote_host
    return data, text


async def _delete_one(gw: Any, port: int, protocol: str, remote_host: str | None) -> None:
    # miniupnpd answers 200 for a mapping it does not have: ask first, so "not
    # found" is said (NoSuchEntryInArray, exit 4) instead of "deleted".
    await gw.get_specific_port_mapping_entry(port, protocol, remote_host=remote_host)
    await gw.delete_port_mapping(port, protocol, remote_host=remote_host)


async def _delete_range(gw: Any, low: int, high: int, protocol: str) -> int | None:
    """DeletePortMappingRange on v2 (count unknown: None); on v1, each of this host's
    mappings in the range, as the v2 action with Manage=0 would."""
    if gw.is_v2:
        await gw.delete_port_mapping_range(low, high, protocol)
        return None
    mine = gw.local_address()
    hits = [
        e
        for e in await gw.port_mappings()
        if e.protocol.value == protocol
        and low <= e.external_port <= high
        and e.internal_client == mine
    ]
    for e in hits:
        await gw.delete_port_mapping(e.external_port, protocol, remote_host=e.remote_host)
    return len(hits)


async def _delete_any(args: argparse.Namespace, out: Output) -> int:
    """``delete`` at whichever of --protocols answers first: UPnP by external port (and
    ranges), PCP / NAT-PMP by internal port (``--internal-port``, default the port)."""
    from ..pmpmapper import PmpMapper

    found = await _probe(args, out)
    results = Results(out, "deleted")
    try:
        first = found.candidates[0]
        for low, high in args.external_port:
            for protocol in args.protocol:
                if first.gateway is not None:
                    results.add(*await _delete(first.gateway, low, high, protocol, None))
                    continue
                if low != high:
                    raise ValueError(
                        f"a range delete needs UPnP; {first.host} answered {first.protocol}"
                    )
                assert first.client is not None
                internal_port = args.internal_port or low
                await PmpMapper(first.client, own_client=False).delete(internal_port, protocol)
                results.add(
                    {
                        "deleted": True,
                        "internal_port": internal_port,
                        "protocol": protocol,
                        "mechanism": first.protocol,
                    },
                    f"deleted {protocol} mapping of internal port {internal_port} "
                    f"({first.protocol} at {first.host})",
                )
    except Exception as exc:
        results.failed(exc)
        raise
    finally:
        await found.aclose()
    results.done()
    return ExitCode.OK


def _map_text(result: Any) -> list[str]:
    lines = [
        f"layer {i}: {m.mechanism} {m.gateway}  {m.internal_client}:{m.internal_port} -> "
        f"{m.external_ip or '?'}:{m.external_port} {m.protocol.value}"
        for i, m in enumerate(result.layers, 1)
    ]
    lines.append(
        f"public endpoint: {result.public_ip}:{result.public_port} "
        f"({'global' if result.is_global else 'not global'})"
    )
    if not result.complete:
        lines.append(f"stopped at layer {result.stopped_at}: {result.reason}")
    return lines


def _record(item: Any) -> tuple[dict[str, Any], str]:
    from ..multilayer import LayerEvent

    if isinstance(item, LayerEvent):
        return event_record(item.event, f"layer {item.layer}", {"layer": item.layer})
    return event_record(item, "ipv6", {"family": "ipv6"})


async def _events(opener: Any) -> Any:
    """Every event of the IPv4 layers and of the IPv6 pinhole, as they happen."""
    from ..keeper import merged

    streams = [opener.mapper.events()]
    if opener.pinhole is not None:
        streams.append(opener.pinhole.events())
    async for item in merged(*streams):
        yield item


def _ipv6_text(reach: Any) -> str:
    hole = reach.ipv6
    if hole is None:
        return f"IPv6 failed: {reach.ipv6_error}"
    if hasattr(hole, "unique_id"):
        return (
            f"IPv6 pinhole {hole.unique_id}: [{hole.internal_client}]:{hole.internal_port} "
            f"{hole.protocol.value} open for {hole.lease}s"
        )
    return (
        f"IPv6 PCP mapping at {hole.gateway}: [{hole.internal_client}]:{hole.internal_port} "
        f"{hole.protocol.value} open for {hole.lease}s"
    )


async def cmd_map(args: argparse.Namespace, out: Output) -> int:
    from ..discovery import SearchOptions
    from ..reach import ReachablePort
    from ..traceroute import DEFAULT_PROBE_TARGET

    via: list[str | None] = [None if v == "-" else v for v in args.via]
    if args.gateway:
        via = [args.gateway, *via[1:]] if via else [args.gateway]
    search = search_options(args)
    opener = ReachablePort(
        args.internal_port,
        args.protocol,
        ipv6=args.ipv6,
        layers=args.layers,
        external_port=args.external_port,
        lease=args.lease,
        description=args.description,
        via=via,
        probe_target=args.probe_target or DEFAULT_PROBE_TARGET,
        search=search,
        ipv6_gateway=args.ipv6_gateway,
        ipv6_client=args.ipv6_client,
        search_timeout=args.timeout,
        http_timeout=args.http_timeout,
        protocols=args.protocols,
    )
    opener.mapper.internal_client = args.internal_client
    if search.unicast or not search.multicast:
        # Finding layer 1 again after a reboot: where the user told us to look, plus
        # its own address (set by the mapper).
        opener.mapper.rediscovery = SearchOptions(
            timeout=min(args.timeout, 2.0),
            multicast=search.multicast,
            default_gateways=False,
            unicast=list(search.unicast),
            http_timeout=args.http_timeout,
        )
    out.progress("mapping layer by layer" + (" and opening an IPv6 pinhole" if args.ipv6 else ""))
    release = True
    try:
        reach = await opener.open()
        result = reach.ipv4
        if result is None and (not args.ipv6 or reach.ipv6 is None):
            # Nothing opened: the error, as `add` reports it (its exit code, one line,
            # one JSON error object), and nothing on stdout.
            exc = reach.ipv4_exception or reach.ipv6_exception
            if reach.ipv6_exception is not None and exc is not reach.ipv6_exception:
                assert exc is not None
                exc.add_note(f"IPv6: {reach.ipv6_error}")
            raise exc or IGDError("nothing could be opened")
        lines = _map_text(result) if result else []
        if reach.ipv4_error:
            lines.append(f"IPv4 failed: {reach.ipv4_error}")
        if args.ipv6:
            lines.append(_ipv6_text(reach))
        data = reach.as_dict() if args.ipv6 else (result.as_dict() if result else {})
        out.emit(data, "\n".join(lines))
        ok = (result is not None and result.complete) and (not args.ipv6 or reach.ipv6 is not None)
        if args.hold:
            printer = await hold(out, _events(opener), _record)
            release = False
            leftovers = await opener.close()
            await stop_printing(printer)
            if leftovers:
                report_leftovers(leftovers, out)
                return ExitCode.CLEANUP
            out.progress("removed everything")
            return ExitCode.OK
        # Without --hold the mappings stay until their lease runs out, like `add`.
        release = False
        await opener.close(release=False)
        return ExitCode.OK if ok else ExitCode.PARTIAL
    finally:
        if release:
            leftovers = await opener.close()
            if leftovers:
                # One error (line and JSON object) naming them, as for any failure.
                raise CleanupFailed(
                    f"{len(leftovers)} mapping(s) could not be removed: "
                    + "; ".join(f"could not remove {one_line(str(x))}" for x in leftovers)
                )


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from ..demo import run_demo

    await run_demo(out.emit)
    return ExitCode.OK
