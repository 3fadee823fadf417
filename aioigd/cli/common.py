"""What every CLI command shares: exit codes, output, discovery options, holding."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import json
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

from ..tasks import stop_task

__all__ = [
    "ExitCode",
    "Output",
    "Results",
    "search_options",
    "hold",
    "on_signal",
    "stop_printing",
    "event_record",
    "report_leftovers",
]


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
    #: Something aioigd created could not be removed (listed on stderr).
    CLEANUP = 8
    #: The gateway has no external address (miniupnpd answers an empty one while its
    #: WAN has none, or a private one it will not report): not a malformed answer.
    NO_EXTERNAL_IP = 9
    #: Interrupted (Ctrl-C, SIGTERM) after cleaning up.
    INTERRUPTED = 130
    #: stdout was closed by its reader (``aioigd list | head``): 128 + SIGPIPE, the
    #: status a shell reports for a tool killed by it; nothing is printed.
    BROKEN_PIPE = 141


class Output:
    """Results on stdout (text or one JSON object per line), progress on stderr."""

    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err
        #: Set when stdout's reader went away (``| head``): the rest is not printed.
        self.closed = False
        #: Whether a result object was printed (an error then adds none under --json).
        self.emitted = False

    def progress(self, text: str) -> None:
        if not self.as_json:
            print(f"... {text}", file=self.err, flush=True)

    def emit(self, obj: dict[str, Any], text: str) -> None:
        try:
            if self.as_json:
                print(json.dumps(obj, sort_keys=False), file=self.out, flush=True)
            else:
                print(text, file=self.out, flush=True)
        except BrokenPipeError:
            self.closed = True
            raise
        self.emitted = True

    def error(
        self, code: int, kind: str, message: str, *, line: str | None = None, **extra: Any
    ) -> None:
        """An error: one line on stderr (``line``, else ``aioigd: error: MESSAGE``), and
        one JSON object on stdout under --json."""
        print(line or f"aioigd: error: {message}", file=self.err, flush=True)
        if self.as_json and not self.closed:
            obj = {"error": kind, "exit_code": int(code), "message": message, **extra}
            with contextlib.suppress(BrokenPipeError):
                print(json.dumps(obj), file=self.out, flush=True)


class Results:
    """The results of one command that makes several (``add 80 443 --protocol both``):
    a text line each as it is made; under --json one object at the end — the result
    itself when there is one, else ``{key: [...]}`` — and, if a later one fails, none
    but the error object, whose message names those already made."""

    def __init__(self, out: Output, key: str) -> None:
        self.out = out
        self.key = key
        self.items: list[tuple[dict[str, Any], str]] = []

    def add(self, obj: dict[str, Any], text: str) -> None:
        self.items.append((obj, text))
        if not self.out.as_json:
            self.out.emit(obj, text)

    def failed(self, exc: BaseException) -> None:
        if self.items and self.out.as_json:
            exc.add_note("done before it: " + "; ".join(text for _, text in self.items))

    def done(self) -> None:
        if self.out.as_json:
            objs = [obj for obj, _ in self.items]
            self.out.emit(objs[0] if len(objs) == 1 else {self.key: objs}, "")


def search_options(args: argparse.Namespace) -> Any:
    from ..discovery import SearchOptions

    return SearchOptions(
        timeout=args.timeout,
        multicast=not args.no_multicast,
        interfaces=interface_addresses(args.interface) if args.interface else None,
        unicast=list(args.search),
        default_gateways=not args.no_default_gateways,
        allow_foreign_location=args.allow_foreign_location,
        http_timeout=args.http_timeout,
    )


def interface_addresses(names: list[str]) -> list[str]:
    """``--interface`` values (an interface name or one of its IPv4 addresses) → the
    local IPv4 addresses to multicast from; ValueError (exit 2) for an unknown one."""
    import ipaddress

    import ifaddr

    by_name: dict[str, list[str]] = {}
    for adapter in ifaddr.get_adapters():
        v4 = [ip.ip for ip in adapter.ips if isinstance(ip.ip, str)]
        by_name.setdefault(adapter.nice_name, []).extend(v4)
        by_name.setdefault(str(adapter.name), []).extend(v4)
    mine = {a for addrs in by_name.values() for a in addrs}
    found: list[str] = []
    for name in names:
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            if not by_name.get(name):
                raise ValueError(
                    f"--interface {name!r}: no such interface with an IPv4 address"
                ) from None
            found += by_name[name]
            continue
        if name not in mine:
            raise ValueError(f"--interface {name}: not an address of this host")
        found.append(name)
    return list(dict.fromkeys(found))


def event_record(event: Any, where: str, extra: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """One kept mapping's or pinhole's event as a JSON object and a text line."""
    subject = event.subject
    data: dict[str, Any] = {"event": event.name, **extra, **subject.as_dict()}
    data["state"] = event.state.value
    previous = event.previous
    if event.name == "external_ip_changed" and previous is not None:
        for key in ("external_ip", "external_port"):
            if hasattr(previous, key):
                data[f"previous_{key}"] = getattr(previous, key)
    if event.error is not None:
        data["error"] = " ".join(str(event.error).split())[:300]
    if hasattr(subject, "external_port"):
        what = (
            f"{subject.protocol.value} {subject.external_ip or '?'}:{subject.external_port} -> "
            f"{subject.internal_client}:{subject.internal_port}"
        )
    else:
        what = (
            f"pinhole {subject.unique_id} {subject.protocol.value} "
            f"[{subject.internal_client}]:{subject.internal_port}"
        )
    text = f"{event.name.replace('_', ' ')} ({where}): {what}  [{event.state.value}]"
    if "previous_external_ip" in data:
        text += f"  was {data['previous_external_ip']}:{data.get('previous_external_port')}"
    if "error" in data:
        text += f"  ({data['error']})"
    return data, text


def on_signal(sig: signal.Signals, callback: Callable[[], object]) -> Callable[[], None]:
    """Run ``callback`` on the running loop when ``sig`` arrives; returns the undo.

    Loops without ``add_signal_handler`` (Windows' Proactor and Selector loops)
    get a ``signal.signal`` handler that hands the call to the loop with
    ``call_soon_threadsafe``, so Ctrl-C and SIGTERM still stop us cleanly.
    Where neither works (not the main thread), nothing is installed.
    """
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(sig, callback)
    except NotImplementedError:
        pass
    except (RuntimeError, ValueError):
        return lambda: None
    else:

        def undo_loop() -> None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

        return undo_loop

    def handler(signum: int, frame: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(callback)

    try:
        previous = signal.signal(sig, handler)
    except (OSError, RuntimeError, ValueError):
        return lambda: None

    def undo_signal() -> None:
        with contextlib.suppress(OSError, RuntimeError, ValueError, TypeError):
            signal.signal(sig, previous)

    return undo_signal


async def hold(
    out: Output,
    events: AsyncIterator[Any] | None = None,
    record: Callable[[Any], tuple[dict[str, Any], str]] | None = None,
) -> asyncio.Task[None] | None:
    """Wait for Ctrl-C or SIGTERM, printing each of ``events`` as it happens.

    Returns the printing task, still running: the caller ends it after cleanup
    (so the ``released`` events are printed too) with :func:`stop_printing`.
    """
    stop = asyncio.Event()
    # SIGTERM stays ours until the CLI exits (main's handler cancels from then on).
    undo_sigint = on_signal(signal.SIGINT, stop.set)
    on_signal(signal.SIGTERM, stop.set)

    async def printer() -> None:
        assert events is not None and record is not None
        async for item in events:
            data, text = record(item)
            out.emit(data, text)

    task = asyncio.create_task(printer()) if events is not None else None
    out.progress("holding; Ctrl-C or SIGTERM removes what was opened")
    try:
        await stop.wait()
    finally:
        undo_sigint()
    return task


async def stop_printing(task: asyncio.Task[None] | None, grace: float = 1.0) -> None:
    """Let the event printer drain for up to ``grace`` s, then stop it."""
    if task is None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), grace)
    await stop_task(task)


def report_leftovers(leftovers: list[Any], out: Output) -> None:
    """Say what could not be removed (stderr, and a JSON object under --json)."""
    for leftover in leftovers:
        print(f"aioigd: error: could not remove {one_line(str(leftover))}", file=out.err)
    if leftovers and out.as_json:
        out.emit({"event": "cleanup_failed", "leftovers": [str(x) for x in leftovers]}, "")


def one_line(text: str) -> str:
    return " ".join(text.split())[:500]
