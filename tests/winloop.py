"""An event loop that lacks what Windows' loops lack, for running aioigd as on Windows.

Windows' ProactorEventLoop has no ``add_reader``/``add_writer`` and neither Windows
loop has ``add_signal_handler``: they raise ``NotImplementedError``. This loop is a
``SelectorEventLoop`` (sockets, datagram endpoints and HTTP still work through its
private hooks) whose public versions of those methods raise the same way.
``remove_reader``/``remove_writer`` stay: the selector loop's own ``sock_*``
methods call them, and nothing can be removed that could not be added.

``python -c "import tests.winloop; tests.winloop.install(); ..."`` makes every new
loop of that process (``asyncio.run`` included) one of these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["WindowsLikeLoop", "install"]


class WindowsLikeLoop(asyncio.SelectorEventLoop):
    """``add_reader``, ``add_writer`` and ``(add|remove)_signal_handler`` raise
    NotImplementedError."""

    def _missing(self, name: str) -> NoReturn:
        raise NotImplementedError(f"{name} is not available on this (Windows-like) loop")

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:  # type: ignore[override]
        self._missing("add_reader")

    def add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:  # type: ignore[override]
        self._missing("add_writer")

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:  # type: ignore[override]
        self._missing("add_signal_handler")

    def remove_signal_handler(self, sig: int) -> bool:
        self._missing("remove_signal_handler")


class _Policy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return WindowsLikeLoop()


def install() -> None:
    """Make every new event loop of this process a :class:`WindowsLikeLoop`."""
    asyncio.set_event_loop_policy(_Policy())
