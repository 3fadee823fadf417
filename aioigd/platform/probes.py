"""Waiting for one probe socket's answer on any event loop.

With ``loop.add_reader`` (Linux and macOS loops) the socket is watched by the
loop. Windows' Proactor loop has none, so there the wait runs in the default
executor on a blocking ``select`` with a deadline; the thread owns the socket
from then on and closes it, so a cancelled wait never closes a socket under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import time
from collections.abc import Callable
from typing import Protocol

from . import HopAnswer

__all__ = ["SocketProbe", "wait_for_answer"]


class SocketProbe(Protocol):
    """One sent probe: its socket and how to read an answer from it."""

    def fileno(self) -> int: ...

    def read(self) -> HopAnswer | None:
        """Read what is pending without blocking; None if it was not an answer."""
        ...

    def close(self) -> None: ...


def _read(probe: SocketProbe) -> HopAnswer | None:
    try:
        return probe.read()
    except (BlockingIOError, InterruptedError):
        return None


def _blocking_wait(probe: SocketProbe, wait: float) -> HopAnswer | None:
    deadline = time.monotonic() + wait
    try:
        while (left := deadline - time.monotonic()) > 0:
            # Linux reports a pending error-queue entry as readable (POLLERR is in the read set).
            ready, _, _ = select.select([probe.fileno()], [], [], left)
            if ready and (answer := _read(probe)) is not None:
                return answer
        return None
    finally:
        probe.close()


async def wait_for_answer(make: Callable[[], SocketProbe], wait: float) -> HopAnswer | None:
    """Send a probe (``make`` creates and sends it) and wait up to ``wait`` s for its answer."""
    loop = asyncio.get_running_loop()
    probe = make()
    got: asyncio.Future[HopAnswer] = loop.create_future()

    def on_event() -> None:
        answer = _read(probe)
        if answer is not None and not got.done():
            got.set_result(answer)

    try:
        loop.add_reader(probe.fileno(), on_event)
    except NotImplementedError:
        return await loop.run_in_executor(None, _blocking_wait, probe, wait)
    except BaseException:
        probe.close()
        raise
    try:
        async with asyncio.timeout(wait):
            return await got
    except TimeoutError:
        return None
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_reader(probe.fileno())
        probe.close()
