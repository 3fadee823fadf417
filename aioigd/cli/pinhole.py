"""IPv6 pinhole commands: ``aioigd pinhole status|add|update|delete|packets|check``."""

from __future__ import annotations

import argparse
from typing import Any

from .common import ExitCode, Output, event_record, hold, report_leftovers, stop_printing

__all__ = ["cmd_pinhole"]


async def _firewall(args: argparse.Namespace, out: Output) -> tuple[Any, Any]:
    from ..discovery import SearchOptions, discover
    from ..firewall import FirewallControl
    from ..gateway import Gateway

    if args.gateway:
        gw = await Gateway.from_location(args.gateway, http_timeout=args.http_timeout)
    else:
        out.progress(f"searching for an IPv6 gateway (up to {args.timeout:g} s)")
        gw = await discover(
            SearchOptions(
                timeout=args.timeout,
                ipv4=False,
                ipv6=True,
                multicast=not args.no_multicast,
                unicast=list(args.search),
                default_gateways=not args.no_default_gateways,
                allow_foreign_location=args.allow_foreign_location,
                http_timeout=args.http_timeout,
            )
        )
    try:
        return gw, FirewallControl.from_gateway(gw, internal_client=args.internal_client)
    except BaseException:
        await gw.close()
        raise


async def cmd_pinhole(args: argparse.Namespace, out: Output) -> int:
    gw, fc = await _firewall(args, out)
    async with gw, fc:
        action = args.pinhole_command
        if action == "status":
            st = await fc.get_firewall_status()
            out.emit(
                {
                    "firewall_enabled": st.firewall_enabled,
                    "inbound_pinhole_allowed": st.inbound_pinhole_allowed,
                    "location": gw.location,
                },
                f"firewall {'enabled' if st.firewall_enabled else 'DISABLED'}, inbound pinholes "
                f"{'allowed' if st.inbound_pinhole_allowed else 'NOT allowed'}",
            )
        elif action == "add":
            opener = fc.keep_pinhole if args.hold else fc.open_pinhole
            opened = await opener(
                args.internal_port,
                args.protocol,
                remote_host=args.remote_host,
                remote_port=args.remote_port,
                lease=args.lease,
            )
            hole = opened.current if hasattr(opened, "current") else opened
            remote = f"from [{hole.remote_host or '*'}]:{hole.remote_port or '*'}"
            out.emit(
                hole.as_dict(),
                f"pinhole {hole.unique_id}: {hole.protocol.value} [{hole.internal_client}]:"
                f"{hole.internal_port} {remote} open for {hole.lease}s",
            )
            if args.hold:
                printer = await hold(
                    out, fc.events(), lambda ev: event_record(ev, "ipv6", {"family": "ipv6"})
                )
                leftovers = await fc.close()
                await stop_printing(printer)
                if leftovers:
                    report_leftovers(leftovers, out)
                    return ExitCode.CLEANUP
        elif action == "update":
            await fc.update_pinhole(args.unique_id, args.lease)
            out.emit(
                {"unique_id": args.unique_id, "lease": args.lease},
                f"pinhole {args.unique_id} renewed for {args.lease}s",
            )
        elif action == "delete":
            await fc.delete_pinhole(args.unique_id)
            out.emit(
                {"unique_id": args.unique_id, "deleted": True}, f"deleted pinhole {args.unique_id}"
            )
        elif action == "packets":
            n = await fc.get_pinhole_packets(args.unique_id)
            out.emit(
                {"unique_id": args.unique_id, "packets": n},
                f"pinhole {args.unique_id}: {n} packets",
            )
        else:
            working = await fc.check_pinhole_working(args.unique_id)
            out.emit(
                {"unique_id": args.unique_id, "is_working": working},
                f"pinhole {args.unique_id}: {'working' if working else 'no traffic yet'}",
            )
    return ExitCode.OK
