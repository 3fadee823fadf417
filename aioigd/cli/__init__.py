"""The ``aioigd`` command line: argparse front end over the async API.

The only place that runs an event loop. Errors are one line on stderr and an
exit code scripts can trust (:class:`ExitCode`, the table in ``aioigd --help``);
``--json`` prints one JSON object per outcome with snake_case keys: the result,
or ``{"error": KIND, "exit_code": N, "message": ...}`` (then ``--hold`` events,
one object per line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TextIO

from .. import __version__
from ..errors import (
    CleanupFailed,
    ExternalIPUnavailable,
    GatewayNotFound,
    IGDConnectionError,
    IGDError,
    MappingFailed,
    PmpError,
    UPnPError,
)
from ..models import DEFAULT_PROTOCOLS
from . import args as A
from .common import ExitCode, Output, on_signal

__all__ = ["main", "ExitCode", "build_parser"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("gateway selection")
    g.add_argument(
        "--gateway",
        type=A.location_url,
        metavar="LOCATION_URL",
        help="skip discovery: use this description URL",
    )
    g.add_argument(
        "--timeout", type=A.seconds, default=3.0, metavar="S", help="discovery timeout (3)"
    )
    g.add_argument(
        "--http-timeout", type=A.seconds, default=5.0, metavar="S", help="per-request timeout (5)"
    )
    g.add_argument(
        "--search",
        type=A.search_target,
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="also send a unicast M-SEARCH here (repeatable; addresses, not names)",
    )
    g.add_argument(
        "--interface",
        action="append",
        default=[],
        metavar="NAME_OR_IP",
        help="multicast only from this interface or local IPv4 address (repeatable)",
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
    _output(parser)


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    # Also after the command; SUPPRESS keeps a -v given before it.
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug log"
    )


def _pinhole_parsers(sub: Any) -> None:
    ph = sub.add_parser("pinhole", help="IPv6 firewall pinholes (WANIPv6FirewallControl)")
    psub = ph.add_subparsers(dest="pinhole_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--internal-client", type=A.ip_address, metavar="IP6", help="default: this host's IPv6"
        )
        _common(p)

    common(psub.add_parser("status", help="GetFirewallStatus"))
    p = psub.add_parser("add", help="open a pinhole to this host")
    p.add_argument("internal_port", type=A.port, metavar="PORT")
    p.add_argument("--protocol", type=A.transport, default="TCP", metavar="TCP|UDP")
    p.add_argument(
        "--remote-host", type=A.ip_address, metavar="IP6", help="only this peer (default: any)"
    )
    p.add_argument("--remote-port", type=A.port_or_any, default=0, metavar="P", help="0 = any")
    p.add_argument("--lease", type=A.pinhole_lease, default=3600, metavar="S", help="1..86400")
    p.add_argument("--hold", action="store_true", help="renew until Ctrl-C/SIGTERM, then delete")
    common(p)
    p = psub.add_parser("update", help="UpdatePinhole: set a new lease")
    p.add_argument("unique_id", type=A.unique_id, metavar="ID")
    p.add_argument("--lease", type=A.pinhole_lease, required=True, metavar="S")
    common(p)
    for name, text in (
        ("delete", "DeletePinhole"),
        ("packets", "GetPinholePackets"),
        ("check", "CheckPinholeWorking"),
    ):
        p = psub.add_parser(name, help=text)
        p.add_argument("unique_id", type=A.unique_id, metavar="ID")
        common(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = A.Parser(
        prog="aioigd",
        description="Find a UPnP Internet Gateway Device and map ports through it.",
        epilog=A.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aioigd {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug log of aioigd (discovery, SOAP)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("discover", help="find gateways")
    p.add_argument("--all", action="store_true", help="collect every gateway until the timeout")
    _protocols_option(p)
    _common(p)
    p = sub.add_parser("external-ip", help="print the gateway's external address")
    _common(p)
    p = sub.add_parser("status", help="connection status, uptime, external address, service in use")
    _common(p)
    p = sub.add_parser("list", help="list the gateway's port mappings")
    _common(p)
    p = sub.add_parser("add", help="map ports to this host (they stay until their lease ends)")
    p.add_argument("internal_port", type=A.port, nargs="+", metavar="INTERNAL_PORT")
    p.add_argument("--external-port", type=A.port, metavar="P", help="only with one port")
    p.add_argument(
        "--protocol", type=A.transports, default=["TCP"], metavar="TCP|UDP|both", help="(TCP)"
    )
    p.add_argument("--lease", type=A.lease, default=3600, metavar="S", help="seconds, 0=permanent")
    p.add_argument("--description", default="aioigd", metavar="D")
    p.add_argument(
        "--internal-client", type=A.ip_address, metavar="IP", help="default: this host's address"
    )
    p.add_argument(
        "--remote-host",
        type=A.ip_address,
        metavar="IP",
        help="only this peer (the port as asked: no other is tried)",
    )
    p.add_argument("--strict", action="store_true", help="fail instead of choosing another port")
    _protocols_option(p)
    _common(p)
    p = sub.add_parser("delete", help="delete port mappings (PORT, or LOW-HIGH: a range)")
    p.add_argument("external_port", type=A.port_range, nargs="+", metavar="EXTERNAL_PORT")
    p.add_argument(
        "--protocol", type=A.transports, default=["TCP"], metavar="TCP|UDP|both", help="(TCP)"
    )
    p.add_argument("--remote-host", type=A.ip_address, metavar="IP", help="the mapping's peer")
    p.add_argument(
        "--internal-port",
        type=A.port,
        metavar="P",
        help="PCP/NAT-PMP delete by internal port (default: EXTERNAL_PORT)",
    )
    _protocols_option(p)
    _common(p)
    p = sub.add_parser("map", help="map a port through every NAT layer (double NAT, CGNAT)")
    p.add_argument("internal_port", type=A.port, metavar="PORT")
    p.add_argument(
        "--external-port", type=A.port, metavar="P", help="layer 1's external port (default PORT)"
    )
    p.add_argument("--protocol", type=A.transport, default="TCP", metavar="TCP|UDP")
    p.add_argument(
        "--layers",
        type=A.layers,
        default="auto",
        metavar="auto|N",
        help="auto: climb while the external address is private (default); "
        "N: climb N layers whatever the addresses",
    )
    p.add_argument("--lease", type=A.lease, default=3600, metavar="S")
    p.add_argument("--description", default="aioigd", metavar="D")
    p.add_argument(
        "--internal-client", type=A.ip_address, metavar="IP", help="default: this host's address"
    )
    p.add_argument(
        "--probe-target",
        type=A.ip_address,
        default=None,
        metavar="IP",
        help="traceroute target used to find the upper routers (default 1.1.1.1)",
    )
    p.add_argument(
        "--via",
        type=A.via_hint,
        action="append",
        default=[],
        metavar="LOCATION_OR_IP",
        help="gateway of the next layer, in order from layer 1 (repeatable; '-' = find it)",
    )
    p.add_argument("--hold", action="store_true", help="renew until Ctrl-C/SIGTERM, then remove")
    p.add_argument("--ipv6", action="store_true", help="also open an IPv6 pinhole for PORT")
    p.add_argument(
        "--ipv6-gateway", type=A.location_url, metavar="LOCATION_URL", help="IPv6 gateway URL"
    )
    p.add_argument(
        "--ipv6-client", type=A.ip_address, metavar="IP6", help="default: this host's global IPv6"
    )
    _protocols_option(p)
    _common(p)
    _pinhole_parsers(sub)
    p = sub.add_parser("demo", help="run the whole flow against in-process fake gateways")
    _output(p)
    return parser


def _protocols_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--protocols",
        type=A.protocols,
        default=DEFAULT_PROTOCOLS,
        metavar="LIST",
        help="mapping protocols to ask, most preferred first (default upnp,pcp,natpmp)",
    )


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What one argument cannot check alone (still before anything is sent)."""
    if args.command == "add" and args.external_port and len(args.internal_port) > 1:
        parser.error("add: --external-port takes one INTERNAL_PORT (each port maps to itself)")
    if args.command == "pinhole" and args.interface:
        parser.error("pinhole: --interface chooses IPv4 multicast; pinholes search over IPv6")
    if getattr(args, "no_multicast", False) and args.no_default_gateways and not args.search:
        if not args.gateway and not getattr(args, "via", None):
            parser.error(
                f"{args.command}: nothing to search: --no-multicast and --no-default-gateways "
                "without --search or --gateway"
            )


_COMMANDS: dict[str, tuple[str, str]] = {
    "discover": ("mapping", "cmd_discover"),
    "external-ip": ("mapping", "cmd_external_ip"),
    "list": ("mapping", "cmd_list"),
    "add": ("mapping", "cmd_add"),
    "delete": ("mapping", "cmd_delete"),
    "map": ("mapping", "cmd_map"),
    "status": ("mapping", "cmd_status"),
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
    if isinstance(exc, ExternalIPUnavailable):
        return ExitCode.NO_EXTERNAL_IP
    if isinstance(exc, UPnPError) or (
        isinstance(exc, PmpError) and not isinstance(exc, MappingFailed)
    ):
        return ExitCode.UPNP_FAULT
    if isinstance(exc, IGDConnectionError):
        return ExitCode.NETWORK
    if isinstance(exc, MappingFailed):
        return ExitCode.MAPPING
    return ExitCode.ERROR


def _error_fields(exc: BaseException) -> dict[str, Any]:
    """What a script may branch on besides the exit code (the fault's code and action)."""
    if isinstance(exc, UPnPError):
        return {"fault_code": exc.code or None, "action": exc.action or None}
    return {}


async def _run(args: argparse.Namespace, out: Output) -> int:
    task = asyncio.current_task()
    # SIGTERM cancels like Ctrl-C does, so context managers remove our mappings.
    undo = on_signal(signal.SIGTERM, task.cancel) if task is not None else None
    try:
        return await _command(args.command)(args, out)
    finally:
        if undo is not None:
            undo()


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    out = out or sys.stdout
    err = err or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check(parser, args)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    except argparse.ArgumentError as exc:
        text = str(exc).removeprefix("aioigd: ").removeprefix("aioigd ")
        command = next((a for a in argv if a in _COMMANDS), "")
        hint = f"aioigd {command} --help" if command else "aioigd --help"
        Output("--json" in argv, out, err).error(
            ExitCode.USAGE, "usage", f"{_one_line_text(text)} (see {hint})"
        )
        return ExitCode.USAGE
    output = Output(bool(getattr(args, "json", False)), out, err)
    with _logging(bool(args.verbose), err):
        return _main(args, output)


def _main(args: argparse.Namespace, output: Output) -> int:
    try:
        return asyncio.run(_run(args, output))
    except KeyboardInterrupt:
        output.error(ExitCode.INTERRUPTED, "interrupted", "interrupted", line="aioigd: interrupted")
        return ExitCode.INTERRUPTED
    except asyncio.CancelledError:
        output.error(ExitCode.INTERRUPTED, "interrupted", "terminated", line="aioigd: terminated")
        return ExitCode.INTERRUPTED
    except IGDError as exc:
        code = _exit_code(exc)
        output.error(code, code.name.lower(), _one_line(exc), **_error_fields(exc))
        return code
    except ValueError as exc:
        output.error(ExitCode.USAGE, "usage", _one_line(exc))
        return ExitCode.USAGE
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) and output.closed:
            _silence_stdout(output.out)
            return ExitCode.BROKEN_PIPE
        output.error(ExitCode.NETWORK, "network", _one_line(exc))
        return ExitCode.NETWORK


def _silence_stdout(stream: TextIO) -> None:
    """After the reader of stdout left, point it at /dev/null: the interpreter's final
    flush would otherwise print "Exception ignored ... BrokenPipeError"."""
    if stream is not sys.stdout:
        return
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


@contextlib.contextmanager
def _logging(verbose: bool, err: TextIO) -> Iterator[None]:
    """-v: DEBUG for the ``aioigd`` loggers only (asyncio's and the app's stay as they
    are), on stderr; undone on return, so main() can be called again (tests)."""
    import logging

    logger = logging.getLogger("aioigd")
    if verbose:
        handler: logging.Handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        # The CLI reports outcomes and events itself; without -v the library's log
        # lines would repeat them through logging's last-resort handler.
        handler = logging.NullHandler()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _one_line(exc: BaseException) -> str:
    """The message on one line: gateway-supplied text (fault descriptions, HTTP status
    lines) must not be able to add lines to our output. Notes (what was cleaned up
    after the failure) follow the message."""
    return _one_line_text("; ".join([str(exc), *getattr(exc, "__notes__", ())]))


def _one_line_text(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())[:700]
