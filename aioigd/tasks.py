"""Task helpers for cleanup that must not lose (or swallow) a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["stop_task", "settle", "finish"]

_T = TypeVar("_T")


async def stop_task(task: asyncio.Task[object] | asyncio.Future[object]) -> None:
    """Cancel a helper task and wait until it has ended.

    Unlike ``with suppress(CancelledError): await task`` this never swallows a
    cancellation of the *calling* task: ``asyncio.wait`` re-raises that one.
    """
    task.cancel()
    await asyncio.wait({task})


async def settle(task: asyncio.Future[Any]) -> None:
    """End a helper whose result is no longer wanted: stop it if it still runs, else
    retrieve its exception (so asyncio does not report it as never retrieved)."""
    if not task.done():
        await stop_task(task)
    elif not task.cancelled():
        task.exception()


async def finish(aw: Awaitable[_T], grace: float) -> _T:
    """Run cleanup ``aw`` to its end even if the caller is cancelled meanwhile.

    A cancellation that arrives during the cleanup waits up to ``grace`` more
    seconds for it (a second cancellation gives up), then propagates — so
    Ctrl-C during release still deletes what we mapped.
    """
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        try:
            await asyncio.wait({task}, timeout=grace)
        finally:
            if not task.done():
                task.cancel()
        raise
    return task.result()
