"""The ``aioigd`` command line: argparse front end over the async API.

The only place that runs an event loop. Errors are one line on stderr and an
exit code scripts can trust (:class:`ExitCode`); ``--json`` prints one JSON
object per line with snake_case keys.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

from . import __version__
from .errors import (
    GatewayNotFound,
    IGDConnectionError,
    IGDError,
    MappingFailed,
    UPnPError,
)

__all__ = ["main", "ExitCode", "build_parser"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class ExitCode(enum.IntEnum):
    """Process exit codes."""

    #: Success.
    OK = 0
    #: The gateway answered something malformed, hostile or unexpected.
    ERROR = 1
    #: Bad command line.
    USAGE = 2
    #: No gateway answered.
    NOT_FOUND = 3
    #: The gateway answered with a UPnP fault (the code is in the message).
    UPNP_FAULT = 4
    #: The gateway could not be reached or timed out.
    NETWORK = 5
    #: The mapping could not be made (port taken with --strict, verification failed).
    MAPPING = 6
    #: Multi-layer mapping stopped before the last layer (partial result printed).
    PARTIAL = 7
    #: Interrupted (Ctrl-C) after cleaning up.
    INTERRUPTED = 130


class _Output:
    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err

    def progress(self, text: str) -> None:
        if not self.as_json:
            print(f"... {text}", file=self.err, flush=True)

    def emit(self, obj: dict[str, Any], text: str) -> None:
        if self.as_json:
            print(json.dumps(obj, sort_keys=False), file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("gateway selection")
    g.add_argument(
        "--gateway", metavar="LOCATION_URL", help="skip discovery: use this description URL"
    )
    g.add_argument("--timeout", type=float, default=3.0, metavar="S", help="discovery timeout (3)")
    g.add_argument(
        "--http-timeout", type=float, default=5.0, metavar="S", help="per-request timeout (5)"
    )
    g.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="also send a unicast M-SEARCH here (repeatable)",
    )
    g.add_argument("--no-multicast", action="store_true", help="do not multicast M-SEARCH")
    g.add_argument(
        "--no-default-gateways", action="store_true", help="do not search the default gateways"
    )
    g.add_argument(
        "--allow-foreign-location",
        action="store_true",
        help="accept SSDP answers whose LOCATION is on another host than the sender (unsafe)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} not in 1..65535")
    return value


def _lease(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("lease must be >= 0 seconds")
    return value


def _layers(text: str) -> str | int:
    if text == "auto":
        return text
    if not text.isdigit() or not 1 <= int(text) <= 4:
        raise argparse.ArgumentTypeError("--layers takes 'auto' or 1..4")
    return int(text)


def _protocol(text: str) -> str:
    if text.upper() not in ("TCP", "UDP"):
        raise argparse.ArgumentTypeError("protocol must be TCP or UDP")
    return text.upper()


def _pinhole_parsers(sub: Any) -> None:
    ph = sub.add_parser("pinhole", help="IPv6 firewall pinholes (WANIPv6FirewallControl)")
    psub = ph.add_subparsers(dest="pinhole_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--internal-client", metavar="IP6", help="default: this host's IPv6")
        _common(p)

    common(psub.add_parser("status", help="GetFirewallStatus"))
    p = psub.add_parser("add", help="open a pinhole to this host")
    p.add_argument("internal_port", type=_port, metavar="PORT")
    p.add_argument("--protocol", type=_protocol, default="TCP")
    p.add_argument("--remote-host", metavar="IP6", help="only this peer (default: any)")
    p.add_argument("--remote-port", type=int, default=0, metavar="P", help="0 = any")
    p.add_argument("--lease", type=_pinhole_lease, default=3600, metavar="S", help="1..86400")
    p.add_argument("--hold", action="store_true", help="renew until Ctrl-C/SIGTERM, then delete")
    common(p)
    p = psub.add_parser("update", help="UpdatePinhole: set a new lease")
    p.add_argument("unique_id", type=int, metavar="ID")
    p.add_argument("--lease", type=_pinhole_lease, required=True, metavar="S")
    common(p)
    for name, text in (
        ("delete", "DeletePinhole"),
        ("packets", "GetPinholePackets"),
        ("check", "CheckPinholeWorking"),
    ):
        p = psub.add_parser(name, help=text)
        p.add_argument("unique_id", type=int, metavar="ID")
        common(p)


def _pinhole_lease(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 86400:
        raise argparse.ArgumentTypeError("pinhole lease must be 1..86400 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="aioigd", description="Find a UPnP Internet Gateway Device and map ports through it."
    )
    parser.add_argument("--version", action="version", version=f"aioigd {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log SOAP traffic")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("discover", help="find gateways")
    p.add_argument("--all", action="store_true", help="collect every gateway until the timeout")
    _common(p)
    p = sub.add_parser("external-ip", help="print the gateway's external address")
    _common(p)
    p = sub.add_parser("list", help="list the gateway's port mappings")
    _common(p)
    p = sub.add_parser("add", help="map a port to this host (stays until its lease ends)")
    p.add_argument("internal_port", type=_port, metavar="INTERNAL_PORT")
    p.add_argument("--external-port", type=_port, metavar="P")
    p.add_argument("--protocol", type=_protocol, default="TCP")
    p.add_argument("--lease", type=_lease, default=3600, metavar="S", help="seconds, 0=permanent")
    p.add_argument("--description", default="aioigd", metavar="D")
    p.add_argument("--internal-client", metavar="IP", help="default: this host's LAN address")
    p.add_argument("--strict", action="store_true", help="fail instead of choosing another port")
    _common(p)
    p = sub.add_parser("delete", help="delete a port mapping")
    p.add_argument("external_port", type=_port, metavar="EXTERNAL_PORT")
    p.add_argument("--protocol", type=_protocol, default="TCP")
    _common(p)
    p = sub.add_parser("map", help="map a port through every NAT layer (double NAT, CGNAT)")
    p.add_argument("internal_port", type=_port, metavar="PORT")
    p.add_argument("--protocol", type=_protocol, default="TCP")
    p.add_argument(
        "--layers",
        type=_layers,
        default="auto",
        metavar="auto|N",
        help="auto: climb while the external address is private (default); "
        "N: climb N layers whatever the addresses",
    )
    p.add_argument("--lease", type=_lease, default=3600, metavar="S")
    p.add_argument("--description", default="aioigd", metavar="D")
    p.add_argument("--internal-client", metavar="IP", help="default: this host's LAN address")
    p.add_argument(
        "--probe-target",
        default=None,
        metavar="IP",
        help="traceroute target used to find the upper routers (default 1.1.1.1)",
    )
    p.add_argument(
        "--via",
        action="append",
        default=[],
        metavar="LOCATION_OR_IP",
        help="gateway of the next layer, in order from layer 1 (repeatable; '-' = find it)",
    )
    p.add_argument("--hold", action="store_true", help="renew until Ctrl-C/SIGTERM, then remove")
    p.add_argument("--ipv6", action="store_true", help="also open an IPv6 pinhole for PORT")
    p.add_argument("--ipv6-gateway", metavar="LOCATION_URL", help="IPv6 gateway description URL")
    p.add_argument("--ipv6-client", metavar="IP6", help="default: this host's global IPv6")
    _common(p)
    _pinhole_parsers(sub)
    p = sub.add_parser("demo", help="run the whole flow against in-process fake gateways")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _search_options(args: argparse.Namespace) -> Any:
    from .discovery import SearchOptions

    return SearchOptions(
        timeout=args.timeout,
        multicast=not args.no_multicast,
        unicast=list(args.search),
        default_gateways=not args.no_default_gateways,
        allow_foreign_location=args.allow_foreign_location,
        http_timeout=args.http_timeout,
    )


async def _gateway(args: argparse.Namespace, out: _Output) -> Any:
    if args.gateway:
        from .gateway import Gateway

        return await Gateway.from_location(
            args.gateway,
            timeout=args.http_timeout,
            allow_foreign_urls=args.allow_foreign_location,
        )
    from .discovery import discover

    out.progress(f"searching for a gateway (up to {args.timeout:g} s)")
    return await discover(_search_options(args))


def _gateway_dict(gw: Any) -> dict[str, Any]:
    return {
        "location": gw.location,
        "friendly_name": gw.friendly_name,
        "udn": gw.udn,
        "service_type": gw.service.service_type,
        "firewall": gw.firewall is not None,
    }


async def _cmd_discover(args: argparse.Namespace, out: _Output) -> int:
    from .discovery import discover_all
    from .gateway import Gateway

    if args.gateway:
        gateways = [await _gateway(args, out)]
    elif args.all:
        out.progress(f"collecting gateways for {args.timeout:g} s")
        gateways = await discover_all(_search_options(args))
    else:
        gateways = [await _gateway(args, out)]
    for gw in gateways:
        assert isinstance(gw, Gateway)
        d = _gateway_dict(gw)
        out.emit(d, f"{gw.location}  {gw.friendly_name!r}  {gw.service.service_type}")
        await gw.close()
    return ExitCode.OK


async def _cmd_external_ip(args: argparse.Namespace, out: _Output) -> int:
    async with await _gateway(args, out) as gw:
        ip = await gw.get_external_ip_address()
        out.emit({"external_ip": ip, "location": gw.location}, ip)
    return ExitCode.OK


async def _cmd_list(args: argparse.Namespace, out: _Output) -> int:
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
    return ExitCode.OK


def _mapping_text(m: Any) -> str:
    lease = "permanent" if m.lease == 0 else f"{m.lease}s"
    return (
        f"{m.protocol.value} {m.external_ip or '?'}:{m.external_port} -> "
        f"{m.internal_client}:{m.internal_port}  lease {lease}  {m.description!r}"
    )


async def _cmd_add(args: argparse.Namespace, out: _Output) -> int:
    async with await _gateway(args, out) as gw:
        mapping = await gw.map_port(
            args.internal_port,
            args.external_port,
            args.protocol,
            lease=args.lease,
            description=args.description,
            internal_client=args.internal_client,
            strict=args.strict,
            managed=False,
        )
        if mapping.permanent_only and not out.as_json:
            print("note: the gateway only accepts permanent leases", file=out.err)
        out.emit(mapping.as_dict(), _mapping_text(mapping))
    return ExitCode.OK


async def _cmd_delete(args: argparse.Namespace, out: _Output) -> int:
    async with await _gateway(args, out) as gw:
        await gw.delete_port_mapping(args.external_port, args.protocol)
        out.emit(
            {"deleted": True, "external_port": args.external_port, "protocol": args.protocol},
            f"deleted {args.protocol} {args.external_port}",
        )
    return ExitCode.OK


async def _hold(out: _Output) -> None:
    """Wait for Ctrl-C or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    out.progress("holding; Ctrl-C or SIGTERM removes what was opened")
    try:
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _map_text(result: Any, gateways: list[Any]) -> list[str]:
    lines = [
        f"layer {i}: {gw.host}  {m.internal_client}:{m.internal_port} -> "
        f"{m.external_ip or '?'}:{m.external_port} {m.protocol.value}"
        for i, (gw, m) in enumerate(zip(gateways, result.layers, strict=False), 1)
    ]
    lines.append(
        f"public endpoint: {result.public_ip}:{result.public_port} "
        f"({'global' if result.is_global else 'not global'})"
    )
    if not result.complete:
        lines.append(f"stopped at layer {result.stopped_at}: {result.reason}")
    return lines


async def _cmd_map(args: argparse.Namespace, out: _Output) -> int:
    from .reach import ReachablePort
    from .traceroute import DEFAULT_PROBE_TARGET

    via: list[str | None] = [None if v == "-" else v for v in args.via]
    if args.gateway:
        via = [args.gateway, *via[1:]] if via else [args.gateway]
    opener = ReachablePort(
        args.internal_port,
        args.protocol,
        ipv6=args.ipv6,
        layers=args.layers,
        lease=args.lease,
        description=args.description,
        via=via,
        probe_target=args.probe_target or DEFAULT_PROBE_TARGET,
        search=_search_options(args),
        ipv6_gateway=args.ipv6_gateway,
        ipv6_client=args.ipv6_client,
        timeout=args.timeout,
        http_timeout=args.http_timeout,
    )
    opener.mapper.internal_client = args.internal_client
    out.progress("mapping layer by layer" + (" and opening an IPv6 pinhole" if args.ipv6 else ""))
    release = True
    try:
        reach = await opener.open()
        result = reach.ipv4
        lines = _map_text(result, opener.mapper.gateways) if result else []
        if reach.ipv4_error:
            lines.append(f"IPv4 failed: {reach.ipv4_error}")
        if args.ipv6:
            hole = reach.ipv6
            lines.append(
                f"IPv6 pinhole {hole.unique_id}: [{hole.internal_client}]:{hole.internal_port} "
                f"{hole.protocol.value} open for {hole.lease}s"
                if hole
                else f"IPv6 failed: {reach.ipv6_error}"
            )
        data = reach.as_dict() if args.ipv6 else (result.as_dict() if result else {})
        if not args.ipv6 and reach.ipv4_error:
            data["error"] = reach.ipv4_error
        out.emit(data, "\n".join(lines))
        if result is None and (not args.ipv6 or reach.ipv6 is None):
            raise IGDError(reach.ipv4_error or reach.ipv6_error or "nothing could be opened")
        ok = (result is not None and result.complete) and (not args.ipv6 or reach.ipv6 is not None)
        if args.hold:
            await _hold(out)
            for failure in await opener.close():
                print(f"aioigd: warning: could not delete {failure}", file=out.err)
            release = False
            out.progress("removed everything")
            return ExitCode.OK
        # Without --hold the mappings stay until their lease runs out, like `add`.
        await opener.close(release=False)
        release = False
        return ExitCode.OK if ok else ExitCode.PARTIAL
    finally:
        if release:
            await opener.close()


async def _firewall(args: argparse.Namespace, out: _Output) -> tuple[Any, Any]:
    from .discovery import SearchOptions, discover
    from .gateway import Gateway

    if args.gateway:
        gw = await Gateway.from_location(args.gateway, timeout=args.http_timeout)
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
        return gw, gw.firewall_control(internal_client=args.internal_client)
    except BaseException:
        await gw.close()
        raise


async def _cmd_pinhole(args: argparse.Namespace, out: _Output) -> int:
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
            hole = await fc.open_pinhole(
                args.internal_port,
                args.protocol,
                remote_host=args.remote_host,
                remote_port=args.remote_port,
                lease=args.lease,
                managed=args.hold,
            )
            remote = f"from [{hole.remote_host or '*'}]:{hole.remote_port or '*'}"
            out.emit(
                hole.as_dict(),
                f"pinhole {hole.unique_id}: {hole.protocol.value} [{hole.internal_client}]:"
                f"{hole.internal_port} {remote} open for {hole.lease}s",
            )
            if args.hold:
                await _hold(out)
                # leaving `async with fc` deletes it
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


async def _cmd_demo(args: argparse.Namespace, out: _Output) -> int:
    from .demo import run_demo

    await run_demo(out.emit)
    return ExitCode.OK


_COMMANDS: dict[str, Callable[[argparse.Namespace, _Output], Awaitable[int]]] = {
    "discover": _cmd_discover,
    "external-ip": _cmd_external_ip,
    "list": _cmd_list,
    "add": _cmd_add,
    "delete": _cmd_delete,
    "map": _cmd_map,
    "pinhole": _cmd_pinhole,
    "demo": _cmd_demo,
}


def _exit_code(exc: BaseException) -> ExitCode:
    if isinstance(exc, GatewayNotFound):
        return ExitCode.NOT_FOUND
    if isinstance(exc, UPnPError):
        return ExitCode.UPNP_FAULT
    if isinstance(exc, IGDConnectionError):
        return ExitCode.NETWORK
    if isinstance(exc, MappingFailed):
        return ExitCode.MAPPING
    return ExitCode.ERROR


async def _run(args: argparse.Namespace, out: _Output) -> int:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        # SIGTERM cancels like Ctrl-C does, so context managers remove our mappings.
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await _COMMANDS[args.command](args, out)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s", stream=err)
    output = _Output(bool(getattr(args, "json", False)), out, err)
    try:
        return asyncio.run(_run(args, output))
    except KeyboardInterrupt:
        print("aioigd: interrupted", file=err)
        return ExitCode.INTERRUPTED
    except asyncio.CancelledError:
        print("aioigd: terminated", file=err)
        return ExitCode.INTERRUPTED
    except IGDError as exc:
        print(f"aioigd: error: {_one_line(exc)}", file=err)
        return _exit_code(exc)
    except ValueError as exc:
        print(f"aioigd: error: {_one_line(exc)}", file=err)
        return ExitCode.USAGE
    except OSError as exc:
        print(f"aioigd: error: {_one_line(exc)}", file=err)
        return ExitCode.NETWORK


def _one_line(exc: BaseException) -> str:
    """The message on one line: gateway-supplied text (fault descriptions, HTTP status
    lines) must not be able to add lines to our output."""
    return " ".join(_CONTROL.sub(" ", str(exc)).split())[:500]
