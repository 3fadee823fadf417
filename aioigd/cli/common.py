"""What every CLI command shares: exit codes, output, discovery options, holding."""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import signal
from typing import Any, TextIO

__all__ = ["ExitCode", "Output", "search_options", "hold"]


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


async def hold(out: Output) -> None:
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
