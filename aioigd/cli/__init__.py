"""The ``aioigd`` command line: argparse front end over the async API.

The only place that runs an event loop. Errors are one line on stderr and an
exit code scripts can trust (:class:`ExitCode`); ``--json`` prints one JSON
object per line with snake_case keys.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

from .. import __version__
from ..errors import (
    CleanupFailed,
    GatewayNotFound,
    IGDConnectionError,
    IGDError,
    MappingFailed,
    UPnPError,
)
from .common import ExitCode, Output

__all__ = ["main", "ExitCode", "build_parser"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


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


_COMMANDS: dict[str, tuple[str, str]] = {
    "discover": ("mapping", "cmd_discover"),
    "external-ip": ("mapping", "cmd_external_ip"),
    "list": ("mapping", "cmd_list"),
    "add": ("mapping", "cmd_add"),
    "delete": ("mapping", "cmd_delete"),
    "map": ("mapping", "cmd_map"),
    "pinhole": ("pinhole", "cmd_pinhole"),
    "demo": ("mapping", "cmd_demo"),
}


def _command(name: str) -> Callable[[argparse.Namespace, Output], Awaitable[int]]:
    """The coroutine for ``name``; its module is imported only when it runs."""
    module, attr = _COMMANDS[name]
    handler: Callable[[argparse.Namespace, Output], Awaitable[int]] = getattr(
        importlib.import_module(f".{module}", __name__), attr
    )
    return handler


def _exit_code(exc: BaseException) -> ExitCode:
    if isinstance(exc, CleanupFailed):
        return ExitCode.CLEANUP
    if isinstance(exc, GatewayNotFound):
        return ExitCode.NOT_FOUND
    if isinstance(exc, UPnPError):
        return ExitCode.UPNP_FAULT
    if isinstance(exc, IGDConnectionError):
        return ExitCode.NETWORK
    if isinstance(exc, MappingFailed):
        return ExitCode.MAPPING
    return ExitCode.ERROR


async def _run(args: argparse.Namespace, out: Output) -> int:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        # SIGTERM cancels like Ctrl-C does, so context managers remove our mappings.
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await _command(args.command)(args, out)
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
    import logging

    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s", stream=err)
    else:
        # The CLI reports outcomes and events itself; without -v the library's log
        # lines would repeat them through logging's last-resort handler.
        logging.getLogger("aioigd").addHandler(logging.NullHandler())
    output = Output(bool(getattr(args, "json", False)), out, err)
    from ..httpclient import using_transport

    try:
        # A short-lived process: the asyncio-streams HTTP client spares it aiohttp's import.
        with using_transport("stdlib"):
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
    lines) must not be able to add lines to our output. Notes (what was cleaned up
    after the failure) follow the message."""
    text = "; ".join([str(exc), *getattr(exc, "__notes__", ())])
    return " ".join(_CONTROL.sub(" ", text).split())[:700]
