"""Port-mapping commands: discover, external-ip, list, add, delete, map, demo."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import CleanupFailed, IGDError
from .common import (
    ExitCode,
    Output,
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
            timeout=args.http_timeout,
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


def _pmp_host(args: argparse.Namespace) -> str | None:
    """Where PCP / NAT-PMP are asked: the first --search host, else the default gateway."""
    import ipaddress

    from ..netutil import default_gateways

    for target in args.search:
        host = str(target).rsplit(":", 1)[0] if str(target).count(":") == 1 else str(target)
        try:
            return str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            continue
    if args.no_default_gateways:
        return None
    gateways = default_gateways()
    return gateways[0] if gateways else None


async def _probe(args: argparse.Namespace, out: Output) -> Any:
    """Ask the gateway in every protocol of --protocols at once (see aioigd.anymapper)."""
    from ..anymapper import probe_gateway
    from ..discovery import discover

    host = _pmp_host(args)
    names = ", ".join(args.protocols)
    out.progress(f"asking {host or 'the LAN'} in {names} (up to {args.timeout:g} s)")
    options = search_options(args)
    found = await probe_gateway(
        host,
        protocols=args.protocols,
        upnp=(lambda: discover(options)) if "upnp" in args.protocols else None,
        timeout=args.timeout,
    )
    if not found.candidates:
        from ..errors import GatewayNotFound

        raise GatewayNotFound(f"no gateway answered ({found.why_not()})")
    return found


def _upnp_only(args: argparse.Namespace) -> bool:
    return bool(args.gateway) or tuple(args.protocols) == ("upnp",)


async def _speaks(host: str, protocols: list[str]) -> list[str]:
    from ..anymapper import probe_gateway

    if not protocols:
        return []
    found = await probe_gateway(host, protocols=protocols, upnp=None, wait_all=True)  # type: ignore[arg-type]
    speaks = found.speaks
    await found.aclose()
    return speaks


async def cmd_discover(args: argparse.Namespace, out: Output) -> int:
    from ..discovery import discover_all
    from ..errors import GatewayNotFound
    from ..gateway import Gateway
    from ..proto.natpmp import SERVER_PORT

    pmp = [p for p in args.protocols if p != "upnp"]
    gateways: list[Any] = []
    upnp_error: GatewayNotFound | None = None
    if "upnp" in args.protocols or args.gateway:
        try:
            if args.gateway:
                gateways = [await _gateway(args, out)]
            elif args.all:
                out.progress(f"collecting gateways for {args.timeout:g} s")
                gateways = await discover_all(search_options(args))
            else:
                gateways = [await _gateway(args, out)]
        except GatewayNotFound as exc:
            if not pmp or args.gateway:
                raise
            upnp_error = exc
    for gw in gateways:
        assert isinstance(gw, Gateway)
        d = _gateway_dict(gw)
        d["speaks"] = ["upnp", *await _speaks(gw.host, pmp)]
        out.emit(
            d,
            f"{gw.location}  {gw.friendly_name!r}  {gw.service.service_type}  "
            f"speaks {','.join(d['speaks'])}",
        )
        await gw.close()
    if not gateways:
        host = _pmp_host(args)
        speaks = await _speaks(host, pmp) if host else []
        if not speaks:
            asked = f"asked {host}" if host else "no default gateway to ask"
            why = f"nothing answered in {', '.join(pmp)} ({asked})"
            raise GatewayNotFound(f"{upnp_error}; {why}" if upnp_error else why)
        location = f"{speaks[0]}://{host}:{SERVER_PORT}"
        out.emit(
            {"location": location, "host": host, "speaks": speaks},
            f"{location}  speaks {','.join(speaks)}",
        )
    return ExitCode.OK


async def cmd_external_ip(args: argparse.Namespace, out: Output) -> int:
    from ..errors import ExternalIPUnavailable

    async with await _gateway(args, out) as gw:
        try:
            ip = await gw.get_external_ip_address()
        except ExternalIPUnavailable as exc:
            exc.add_note(
                f"the router at {gw.host} may sit behind another NAT that gave it a private "
                "address (miniupnpd then reports none); `aioigd map PORT --layers auto` maps "
                "through both"
            )
            raise
        out.emit({"external_ip": ip, "location": gw.location}, ip)
    return ExitCode.OK


async def cmd_list(args: argparse.Namespace, out: Output) -> int:
    async with await _gateway(args, out) as gw:
        entries = await gw.port_mappings()
        if not entries and not out.as_json:
            print("no port mappings", file=out.out)
        for e in entries:
            d = {
                "external_port": e.external_port,
                "protocol": e.protocol.value,
                "internal_client": e.internal_client,
                "internal_port": e.internal_port,
                "enabled": e.enabled,
                "description": e.description,
                "lease": e.lease,
                "remote_host": e.remote_host,
            }
            text = (
                f"{e.protocol.value:3} {e.external_port:5} -> {e.internal_client}:"
                f"{e.internal_port}  lease {e.lease}s  {e.description!r}"
            )
            out.emit(d, text)
        for reason in gw.skipped_entries:
            print(f"aioigd: note: skipped a malformed entry ({one_line(reason)})", file=out.err)
    return ExitCode.OK


def _mapping_text(m: Any) -> str:
    lease = "permanent" if m.lease == 0 else f"{m.lease}s"
    return (
        f"{m.protocol.value} {m.external_ip or '?'}:{m.external_port} -> "
        f"{m.internal_client}:{m.internal_port}  lease {lease}  {m.description!r}"
    )


async def cmd_add(args: argparse.Namespace, out: Output) -> int:
    from ..mapper import PortMapper

    if _upnp_only(args):
        async with await _gateway(args, out) as gw:
            mapping = await PortMapper(gw).map_port(
                args.internal_port,
                args.external_port,
                args.protocol,
                lease=args.lease,
                description=args.description,
                internal_client=args.internal_client,
                strict=args.strict,
            )
            _report_added(mapping, out)
        return ExitCode.OK
    from ..anymapper import map_first

    found = await _probe(args, out)

    async def add(mapper: Any) -> Any:
        return await mapper.map_port(
            args.internal_port,
            args.external_port,
            args.protocol,
            lease=args.lease,
            description=args.description,
            internal_client=args.internal_client,
            strict=args.strict,
        )

    mapper, mapping = await map_first(found, add, check_interval=None)
    try:
        _report_added(mapping, out)
    finally:
        await mapper.close(release=False)  # one-shot: it stays until its lease ends
    return ExitCode.OK


def _report_added(mapping: Any, out: Output) -> None:
    if mapping.permanent_only and not out.as_json:
        print("note: the gateway only accepts permanent leases", file=out.err)
    if mapping.wanted_port and mapping.wanted_port != mapping.external_port:
        print(
            f"aioigd: note: {mapping.protocol.value} port {mapping.wanted_port} is taken; "
            f"mapped {mapping.external_port} instead",
            file=out.err,
        )
    out.emit(mapping.as_dict(), _mapping_text(mapping))


async def _delete_upnp(gw: Any, args: argparse.Namespace, out: Output) -> None:
    # miniupnpd answers 200 for a mapping it does not have: ask first, so "not
    # found" is said (NoSuchEntryInArray, exit 4) instead of "deleted".
    await gw.get_specific_port_mapping_entry(args.external_port, args.protocol)
    await gw.delete_port_mapping(args.external_port, args.protocol)
    out.emit(
        {"deleted": True, "external_port": args.external_port, "protocol": args.protocol},
        f"deleted {args.protocol} {args.external_port}",
    )


async def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    if _upnp_only(args):
        async with await _gateway(args, out) as gw:
            await _delete_upnp(gw, args, out)
        return ExitCode.OK
    from ..pmpmapper import PmpMapper

    found = await _probe(args, out)
    try:
        first = found.candidates[0]
        if first.gateway is not None:
            await _delete_upnp(first.gateway, args, out)
            return ExitCode.OK
        assert first.client is not None
        internal_port = args.internal_port or args.external_port
        await PmpMapper(first.client, own_client=False).delete(internal_port, args.protocol)
        out.emit(
            {
                "deleted": True,
                "internal_port": internal_port,
                "protocol": args.protocol,
                "mechanism": first.protocol,
            },
            f"deleted {args.protocol} mapping of internal port {internal_port} "
            f"({first.protocol} at {first.host})",
        )
        return ExitCode.OK
    finally:
        await found.aclose()


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
        lease=args.lease,
        description=args.description,
        via=via,
        probe_target=args.probe_target or DEFAULT_PROBE_TARGET,
        search=search,
        ipv6_gateway=args.ipv6_gateway,
        ipv6_client=args.ipv6_client,
        timeout=args.timeout,
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
        lines = _map_text(result) if result else []
        if reach.ipv4_error:
            lines.append(f"IPv4 failed: {reach.ipv4_error}")
        if args.ipv6:
            lines.append(_ipv6_text(reach))
        data = reach.as_dict() if args.ipv6 else (result.as_dict() if result else {})
        if not args.ipv6 and reach.ipv4_error:
            data["error"] = reach.ipv4_error
        out.emit(data, "\n".join(lines))
        if result is None and (not args.ipv6 or reach.ipv6 is None):
            raise IGDError(reach.ipv4_error or reach.ipv6_error or "nothing could be opened")
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
                report_leftovers(leftovers, out)
                raise CleanupFailed(f"{len(leftovers)} mapping(s) could not be removed")


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from ..demo import run_demo

    await run_demo(out.emit)
    return ExitCode.OK
