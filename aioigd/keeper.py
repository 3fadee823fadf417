"""The asyncio shell over :mod:`aioigd.lifecycle`: keeps mappings and pinholes alive.

One :class:`Keeper` per gateway service runs one task. It sleeps until the
earliest :meth:`~aioigd.lifecycle.Lifecycle.deadline` of its lifecycles, asks
its :class:`Backend` (UPnP port mappings, IPv6 pinholes; NAT-PMP/PCP later) to
renew or check what is due, and feeds the outcomes back. When the gateway
stops answering (connection refused, reset, timeouts) it asks the backend to
find the same device again (it may have come back on a new HTTP port) and then
retries everything at once. Events go to the application through
:meth:`Kept.events` (an async iterator per subscriber, bounded) and
:meth:`Kept.wait_for`, and are logged once per state change.

The keeper's task is stopped while anything is being released, so a renewal
can never re-create what a release just deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .deadlines import without_deadline
from .errors import IGDConnectionError, IGDError, IGDTimeoutError, PortInUse
from .lifecycle import (
    Action,
    Event,
    ExternalAddressChanged,
    Failed,
    Lifecycle,
    Lost,
    Recovered,
    Released,
    RenewalFailed,
    State,
)
from .models import Transport
from .tasks import finish, stop_task

__all__ = [
    "Backend",
    "Outcome",
    "Kept",
    "KeptEndpoint",
    "Held",
    "Keeper",
    "Leftover",
    "EventIterator",
    "EventHub",
    "warn_leftovers",
    "CLEANUP_TIMEOUT",
    "MAX_QUEUED_EVENTS",
]

log = logging.getLogger("aioigd")

T = TypeVar("T")
E = TypeVar("E")

#: Seconds a deletion may take during release before it is given up and reported.
CLEANUP_TIMEOUT = 3.0
#: Events kept per subscriber that does not read them; the oldest are dropped first.
MAX_QUEUED_EVENTS = 256

#: Log level per event name; the rest are DEBUG. Handled conditions are not warnings.
_LOG_LEVELS: dict[str, int] = {
    RenewalFailed.name: logging.INFO,
    Recovered.name: logging.INFO,
    ExternalAddressChanged.name: logging.INFO,
    Lost.name: logging.WARNING,
    Failed.name: logging.WARNING,
}


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a backend's renewal or check found.

    ``granted_lease`` is ``None`` when nothing was renewed (a check);
    ``recreated`` is True when the gateway had forgotten it and it was added again.
    """

    subject: T
    granted_lease: int | None
    recreated: bool = False


@dataclass(frozen=True)
class Leftover(Generic[T]):
    """Something aioigd created and could not remove, with the reason."""

    subject: T
    error: IGDError
    gateway: str = ""
    #: A short text naming the subject (``TCP 203.0.113.7:8000 -> 192.168.1.2:8000``).
    what: str = ""

    def __str__(self) -> str:
        where = f" at {self.gateway}" if self.gateway else ""
        return f"{self.what or self.subject}{where}: {self.error}"


class Backend(Protocol[T]):
    """What a :class:`Keeper` needs from the thing that talks to the gateway."""

    @property
    def location(self) -> str:
        """The gateway's current LOCATION (for reports)."""
        ...

    def endpoint(self, subject: T) -> Hashable:
        """What peers connect to; a change is an ``external_ip_changed`` event."""
        ...

    def describe(self, subject: T) -> str:
        """A short text for log lines."""
        ...

    async def refresh(self, kept: Kept[T], action: Action) -> Outcome[T]:
        """Renew (``RENEW``) or check (``CHECK``) ``kept``; re-create it if it is gone.

        Raises ``PortInUse`` when it cannot be held any more (aioigd gives up), an
        ``IGDConnectionError`` when the gateway is unreachable, another ``IGDError``
        for any other failure (retried).
        """
        ...

    async def remove(self, subject: T, *, verify: bool = False) -> None:
        """Delete ``subject`` from the gateway (gone already is success); with
        ``verify``, first make sure it is still ours (it may have been lost and
        handed to another host)."""
        ...

    async def reconnect(self) -> bool:
        """Find the gateway again after it stopped answering; True when found."""
        ...


class _Subscriber(Generic[E]):
    def __init__(self, maxlen: int) -> None:
        self.queue: deque[E] = deque(maxlen=maxlen)
        self.ready = asyncio.Event()
        self.closed = False


class EventIterator(Generic[E]):
    """An async iterator over events from the moment it was created on.

    It ends after the last event of what it follows (a terminal one), or when
    :meth:`aclose` is called. A reader that falls behind by more than
    :data:`MAX_QUEUED_EVENTS` loses the oldest (``dropped`` counts them).
    """

    def __init__(self, hub: EventHub[E], sub: _Subscriber[E]) -> None:
        self._hub = hub
        self._sub = sub
        self.dropped = 0

    def __aiter__(self) -> EventIterator[E]:
        return self

    async def __anext__(self) -> E:
        sub = self._sub
        while not sub.queue:
            if sub.closed:
                self._hub.unsubscribe(sub)
                raise StopAsyncIteration
            sub.ready.clear()
            await sub.ready.wait()
        return sub.queue.popleft()

    async def aclose(self) -> None:
        """Stop following (the iterator ends)."""
        self._sub.closed = True
        self._hub.unsubscribe(self._sub)


class EventHub(Generic[E]):
    """Fans events out to every :class:`EventIterator` subscribed to it."""

    def __init__(self, maxlen: int = MAX_QUEUED_EVENTS) -> None:
        self._maxlen = maxlen
        self._subs: list[tuple[_Subscriber[E], EventIterator[E]]] = []
        self.closed = False

    def subscribe(self) -> EventIterator[E]:
        sub: _Subscriber[E] = _Subscriber(self._maxlen)
        it = EventIterator(self, sub)
        sub.closed = self.closed
        if not self.closed:
            self._subs.append((sub, it))
        return it

    def unsubscribe(self, sub: _Subscriber[E]) -> None:
        self._subs = [(s, i) for s, i in self._subs if s is not sub]

    def publish(self, event: E) -> None:
        for sub, it in self._subs:
            if len(sub.queue) == self._maxlen:
                it.dropped += 1
            sub.queue.append(event)
            sub.ready.set()

    def close(self) -> None:
        """End every subscription once its queued events are read."""
        self.closed = True
        for sub, _ in self._subs:
            sub.closed = True
            sub.ready.set()


class Kept(Generic[T]):
    """A mapping or pinhole that aioigd keeps alive, as the application sees it.

    ``current`` is its value as last confirmed by the gateway (new external
    address, new port after a recovery …), ``state`` where it stands.
    """

    def __init__(self, lifecycle: Lifecycle[T], keeper: Keeper[T], *, strict: bool) -> None:
        self.lifecycle = lifecycle
        #: Keep the external port: give up rather than move to another one.
        self.strict = strict
        self._keeper = keeper
        self._hub: EventHub[Event[T]] = EventHub()
        self._changed = asyncio.Event()

    @property
    def current(self) -> T:
        """The value as last confirmed by the gateway."""
        return self.lifecycle.subject

    @property
    def state(self) -> State:
        """Where it stands now."""
        return self.lifecycle.state

    @property
    def error(self) -> IGDError | None:
        """The failure behind the current state, if any."""
        return self.lifecycle.last_error

    @property
    def requested_lease(self) -> int:
        """The lease asked for (0 = permanent)."""
        return self.lifecycle.requested_lease

    def events(self) -> EventIterator[Event[T]]:
        """Events from now on: ``async for event in kept.events(): ...``.

        Ends after ``released`` or ``failed``.
        """
        return self._hub.subscribe()

    async def wait_for(self, *states: State) -> State:
        """Wait until the state is one of ``states`` (at once if it already is).

        Raises:
            IGDError: it ``failed`` (the reason) and can never reach ``states``.
            RuntimeError: it was released and can never reach ``states``.
        """
        while self.state not in states:
            if self.state is State.FAILED:
                raise self.error or IGDError("failed")
            if self.state is State.RELEASED:
                raise RuntimeError(f"released while waiting for {', '.join(states)}")
            self._changed.clear()
            await self._changed.wait()
        return self.state

    async def wait_lost(self) -> State:
        """Wait until it is no longer held: ``lost``, ``failed`` or ``released``."""
        return await self.wait_for(State.LOST, State.FAILED, State.RELEASED)

    async def release(self, *, cleanup_timeout: float = CLEANUP_TIMEOUT) -> Leftover[T] | None:
        """Stop keeping it and delete it (within ``cleanup_timeout`` seconds); returns what
        could not be deleted."""
        return await self._keeper.release(self, cleanup_timeout=cleanup_timeout)

    def _publish(self, event: Event[T]) -> None:
        self._hub.publish(event)
        self._changed.set()
        if event.state in (State.RELEASED, State.FAILED):
            self._hub.close()


class Held(Protocol):
    """The fields every kept subject shows (a :class:`~aioigd.PortMapping` or a
    :class:`~aioigd.Pinhole`)."""

    @property
    def internal_client(self) -> str: ...

    @property
    def internal_port(self) -> int: ...

    @property
    def protocol(self) -> Transport: ...

    @property
    def lease(self) -> int: ...

    @property
    def gateway(self) -> str: ...

    def as_dict(self) -> dict[str, Any]: ...


H = TypeVar("H", bound=Held)


class KeptEndpoint(Kept[H]):
    """A kept mapping or pinhole whose fields are those of :attr:`current`."""

    @property
    def internal_client(self) -> str:
        return self.current.internal_client

    @property
    def internal_port(self) -> int:
        return self.current.internal_port

    @property
    def protocol(self) -> Transport:
        return self.current.protocol

    @property
    def lease(self) -> int:
        """The lease renewals are scheduled by (0 = permanent)."""
        return self.current.lease

    @property
    def gateway(self) -> str:
        """Where it is held: the gateway's LOCATION (``pcp://…`` for PCP)."""
        return self.current.gateway

    def as_dict(self) -> dict[str, Any]:
        """The current value's fields plus ``state``."""
        return {**self.current.as_dict(), "state": self.state.value}


class Keeper(Generic[T]):
    """Runs the lifecycles of one backend in one task.

    Args:
        backend: talks to the gateway.
        name: the task's name.
        check_interval: seconds between cheap checks between renewals (``None``: none).
        hub: also publish every event here (the owner's ``events()``).
    """

    def __init__(
        self,
        backend: Backend[T],
        *,
        name: str = "aioigd-keeper",
        check_interval: float | None = None,
        hub: EventHub[Event[T]] | None = None,
    ) -> None:
        self.backend = backend
        self.name = name
        self.check_interval = check_interval
        self.hub = hub
        self._kept: list[Kept[T]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def kept(self) -> list[Kept[T]]:
        """What this keeper keeps, in creation order."""
        return list(self._kept)

    def keep(
        self,
        subject: T,
        *,
        requested_lease: int,
        granted_lease: int | None,
        strict: bool = False,
        cls: type[Kept[T]] = Kept,
    ) -> Kept[T]:
        """Start keeping ``subject`` (just created on the gateway); ``cls`` is the
        :class:`Kept` subclass the application gets."""
        now = asyncio.get_running_loop().time()
        lifecycle = Lifecycle(
            subject,
            now=now,
            requested_lease=requested_lease,
            granted_lease=granted_lease,
            endpoint=self.backend.endpoint,
            check_interval=self.check_interval,
        )
        kept = cls(lifecycle, self, strict=strict)
        self._kept.append(kept)
        self._deliver(kept)
        self._start()
        self._wake.set()
        return kept

    def forget(self, kept: Kept[T]) -> None:
        """Stop keeping ``kept`` without deleting it (something else took it over)."""
        if kept in self._kept:
            self._kept.remove(kept)
            kept.lifecycle.released(asyncio.get_running_loop().time())
            self._deliver(kept)

    def retry_all_now(self) -> None:
        """Make every kept subject due at once (the gateway lost them all)."""
        now = asyncio.get_running_loop().time()
        for kept in self._kept:
            kept.lifecycle.retry_now(now)
        self._wake.set()

    # -- the task ---------------------------------------------------------------
    def _start(self) -> None:
        if self._kept and (self._task is None or self._task.done()):
            # Renewals outlive the command that started them: not bound by its deadline().
            self._task = asyncio.create_task(
                self._run(), name=self.name, context=without_deadline()
            )

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._kept:
            now = loop.time()
            due = [(k, a) for k in list(self._kept) if (a := k.lifecycle.poll(now)) is not None]
            self._deliver_all()
            if due:
                await self._attempt(due)
                continue
            deadlines = [d for k in self._kept if (d := k.lifecycle.deadline()) is not None]
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(min(deadlines) if deadlines else None):
                    await self._wake.wait()

    async def _attempt(self, due: Iterable[tuple[Kept[T], Action]]) -> None:
        unreachable = await asyncio.gather(*(self._try(k, a) for k, a in due))
        self._deliver_all()
        if any(unreachable) and self._kept:
            try:
                found = await self.backend.reconnect()
            except Exception as exc:  # noqa: BLE001 - keeping must outlive any one failure
                log.debug("looking for %s again failed: %r", self.backend.location, exc)
                found = False
            if found:
                now = asyncio.get_running_loop().time()
                for kept in self._kept:
                    kept.lifecycle.retry_now(now)

    async def _try(self, kept: Kept[T], action: Action) -> bool:
        """One renewal or check; True when the gateway could not be reached."""
        loop = asyncio.get_running_loop()
        try:
            outcome = await self.backend.refresh(kept, action)
        except PortInUse as exc:
            kept.lifecycle.give_up(loop.time(), exc)
            return False
        except IGDError as exc:
            log.debug("%s of %s failed: %s", action.value, self.backend.describe(kept.current), exc)
            kept.lifecycle.attempt_failed(loop.time(), exc)
            return isinstance(exc, IGDConnectionError | IGDTimeoutError)
        except Exception as exc:  # a bug must not end the keeping of everything else
            log.exception("%s of %s raised", action.value, self.backend.describe(kept.current))
            kept.lifecycle.attempt_failed(loop.time(), IGDError(f"{type(exc).__name__}: {exc}"))
            return False
        kept.lifecycle.succeeded(
            loop.time(),
            outcome.subject,
            granted_lease=outcome.granted_lease,
            recreated=outcome.recreated,
        )
        return False

    # -- events -----------------------------------------------------------------
    def _deliver_all(self) -> None:
        for kept in list(self._kept):
            self._deliver(kept)

    def _deliver(self, kept: Kept[T]) -> None:
        while (event := kept.lifecycle.next_event()) is not None:
            self._log(event)
            kept._publish(event)
            if self.hub is not None:
                self.hub.publish(event)

    def _log(self, event: Event[T]) -> None:
        level = _LOG_LEVELS.get(event.name, logging.DEBUG)
        if isinstance(event, Released) and event.error is not None:
            # INFO: release()/close() hand it to the caller as a Leftover, and __aexit__
            # (no caller) warns through warn_leftovers().
            level = logging.INFO
        if log.isEnabledFor(level):
            why = f": {event.error}" if event.error is not None else ""
            log.log(
                level,
                "%s %s at %s%s",
                self.backend.describe(event.subject),
                event.name.replace("_", " "),
                self.backend.location,
                why,
            )

    # -- release ----------------------------------------------------------------
    async def release(
        self, kept: Kept[T], *, cleanup_timeout: float = CLEANUP_TIMEOUT
    ) -> Leftover[T] | None:
        """Stop keeping ``kept`` and delete it within ``cleanup_timeout`` seconds.

        A cancellation during the delete lets it finish first (bounded), so a
        Ctrl-C here still leaves nothing on the gateway.
        """
        await self._stop()
        try:
            if kept in self._kept:
                self._kept.remove(kept)
            if kept.state is State.RELEASED:
                return None
            return await finish(self._remove(kept, cleanup_timeout), cleanup_timeout)
        finally:
            self._start()

    async def delete(
        self, subject: T, *, cleanup_timeout: float = CLEANUP_TIMEOUT, verify: bool = False
    ) -> Leftover[T] | None:
        """Delete something that is not kept (bounded, finished even if cancelled)."""
        deleting = self._delete(subject, cleanup_timeout, verify=verify)
        return await finish(deleting, cleanup_timeout)

    async def _delete(
        self, subject: T, timeout: float, *, verify: bool = False
    ) -> Leftover[T] | None:
        try:
            async with asyncio.timeout(timeout):
                await self.backend.remove(subject, verify=verify)
        except TimeoutError:
            error: IGDError = IGDTimeoutError(
                f"deleting {self.backend.describe(subject)} timed out after {timeout:g} s"
            )
        except IGDError as exc:
            error = exc
        else:
            return None
        return Leftover(subject, error, self.backend.location, self.backend.describe(subject))

    async def _remove(self, kept: Kept[T], timeout: float) -> Leftover[T] | None:
        leftover: Leftover[T] | None = None
        try:
            # FAILED: another host holds it now; never delete what is not ours.
            if kept.state is not State.FAILED:
                verify = kept.state not in (State.ACTIVE, State.RECOVERED)
                leftover = await self._delete(kept.current, timeout, verify=verify)
        finally:
            error = leftover.error if leftover is not None else None
            kept.lifecycle.released(asyncio.get_running_loop().time(), error)
            self._deliver(kept)
        return leftover

    async def close(
        self, *, release: bool = True, cleanup_timeout: float = CLEANUP_TIMEOUT
    ) -> list[Leftover[T]]:
        """Stop; delete everything kept unless ``release=False`` (then it stays on
        the gateway until its lease ends). Returns what could not be deleted."""
        await self._stop()
        kept, self._kept = self._kept, []
        if not release:
            now = asyncio.get_running_loop().time()
            for k in kept:
                k.lifecycle.released(now)
                self._deliver(k)
            return []
        removing = asyncio.gather(*(self._remove(k, cleanup_timeout) for k in kept))
        results = await finish(removing, cleanup_timeout)
        return [r for r in results if r is not None]


def warn_leftovers(leftovers: Iterable[Leftover[Any] | None]) -> None:
    """Log what could not be removed (for ``__aexit__``, which has no caller to tell)."""
    for leftover in leftovers:
        if leftover is not None:
            # WARNING: something stays on a router and nobody else can say so.
            log.warning("could not delete %s", leftover)


async def merged(*iterators: AsyncIterator[E]) -> AsyncIterator[E]:
    """Interleave several event iterators until all of them end."""
    queue: asyncio.Queue[tuple[bool, E | None]] = asyncio.Queue()

    async def pump(it: AsyncIterator[E]) -> None:
        try:
            async for item in it:
                await queue.put((False, item))
        finally:
            await queue.put((True, None))

    tasks = [asyncio.create_task(pump(it)) for it in iterators]
    try:
        running = len(tasks)
        while running:
            done, item = await queue.get()
            if done:
                running -= 1
            elif item is not None:
                yield item
    finally:
        for task in tasks:
            await stop_task(task)
