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
    #: Interrupted (Ctrl-C) after cleaning up.
    INTERRUPTED = 130


class Output:
    """Results on stdout (text or one JSON object per line), progress on stderr."""

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


def search_options(args: argparse.Namespace) -> Any:
    from ..discovery import SearchOptions

    return SearchOptions(
        timeout=args.timeout,
        multicast=not args.no_multicast,
        unicast=list(args.search),
        default_gateways=not args.no_default_gateways,
        allow_foreign_location=args.allow_foreign_location,
        http_timeout=args.http_timeout,
    )


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
