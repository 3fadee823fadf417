"""A deadline for a whole command: every request inside the block ends by it.

The SOAP session and the PCP / NAT-PMP clients each give a request the lesser of
its own timeout and the time left here, so one bound covers a command whatever
protocol it speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["deadline", "current_deadline", "without_deadline"]

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "aioigd_deadline", default=None
)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Bound every request made inside the block (by this task and the tasks it
    starts) to end within ``seconds`` from now; yields the loop time it ends at.

    Each request then gets the lesser of its own timeout and the time left;
    a nested deadline never extends an outer one. What a command leaves running
    (the renewals of what it keeps, a multi-layer mapping's watcher) is not bound.
    """
    loop = asyncio.get_running_loop()
    at = loop.time() + seconds
    outer = _deadline.get()
    if outer is not None:
        at = min(at, outer)
    token = _deadline.set(at)
    try:
        yield at
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    """The loop time the innermost :func:`deadline` ends at, or ``None``."""
    return _deadline.get()


def without_deadline() -> contextvars.Context:
    """A copy of the current context with no deadline: for a background task that a
    command starts (renewals, the layers' watcher) and that outlives the command."""
    context = contextvars.copy_context()
    context.run(_deadline.set, None)
    return context
