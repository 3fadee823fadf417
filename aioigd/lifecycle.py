"""The lifecycle of one kept mapping or pinhole: a pure state machine (no I/O).

One :class:`Lifecycle` per thing aioigd keeps alive on a gateway. It decides
*when* to renew, check or retry and *what the application is told*; it never
waits or talks to a router. The asyncio shell (:mod:`aioigd.keeper`) calls
:meth:`Lifecycle.poll` at :meth:`Lifecycle.deadline`, performs the action it
returns through a backend, and feeds the outcome back with
:meth:`Lifecycle.succeeded` / :meth:`Lifecycle.attempt_failed`. Events queue up
and are drained with :meth:`Lifecycle.next_event` (as h11/aioquic do).

Rules:
- Renewal is scheduled from the *effective* lease: what the gateway granted,
  or the requested lease when it reports 0 for a leased mapping (some gateways
  do; a 600 s mapping must not wait 30 minutes for its first renewal).
- A failed renewal is retried with back-off (2, 4, 8 … s, at most half the
  lease) while the lease may still hold (``renewing``); once the lease has run
  out the mapping is ``lost`` and retried at most every :data:`LOST_RETRY_MAX`
  seconds, forever, until it comes back (``recovered``) or is released.
- A permanent mapping (lease 0) has no end: it is ``lost`` after failing for
  :data:`PERMANENT_GRACE` seconds.
- Events are emitted once per state change, never once per retry.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from .errors import IGDError

__all__ = [
    "State",
    "Action",
    "Lifecycle",
    "Event",
    "Mapped",
    "Renewed",
    "RenewalFailed",
    "ExternalAddressChanged",
    "Lost",
    "Recovered",
    "Failed",
    "Released",
    "effective_lease",
    "renew_delay",
    "retry_delay",
    "PERMANENT_RECHECK",
    "PERMANENT_GRACE",
    "LOST_RETRY_MAX",
]

T = TypeVar("T")

#: How often a permanent (lease 0) mapping is re-asserted, so a reboot is noticed.
PERMANENT_RECHECK = 300.0
#: Seconds of failing renewals after which a permanent mapping counts as lost.
PERMANENT_GRACE = 60.0
#: Longest wait between two attempts to bring a lost mapping back.
LOST_RETRY_MAX = 60.0


class State(enum.StrEnum):
    """Where a kept mapping or pinhole stands."""

    #: Held, and the last renewal (or the creation) succeeded.
    ACTIVE = "active"
    #: A renewal failed; the lease may still hold; retrying with back-off.
    RENEWING = "renewing"
    #: The lease ran out without a renewal (or the gateway is gone): not reachable.
    LOST = "lost"
    #: Back after being lost or wiped (router reboot, new HTTP port); held.
    RECOVERED = "recovered"
    #: aioigd stopped trying (e.g. the port was taken and the mapping was strict).
    FAILED = "failed"
    #: Released by the application (deleted, or the deletion failed: see the event).
    RELEASED = "released"


#: States in which the mapping is believed to be in place.
HELD = frozenset({State.ACTIVE, State.RENEWING, State.RECOVERED})
#: States after which nothing more happens.
TERMINAL = frozenset({State.FAILED, State.RELEASED})


class Action(enum.Enum):
    """What the shell must do for a lifecycle now."""

    #: Renew the lease (and re-create the mapping if the gateway forgot it).
    RENEW = "renew"
    #: Check that it is still there and what the external address is; no new lease.
    CHECK = "check"


@dataclass(frozen=True)
class Event(Generic[T]):
    """Something that happened to a kept mapping or pinhole.

    ``subject`` is its value after the event, ``previous`` the value before
    (where it changed), ``error`` the failure behind it, ``at`` the loop time.
    """

    #: The event's name in the CLI's JSON output.
    name: ClassVar[str] = "event"

    subject: T
    state: State
    at: float
    previous: T | None = None
    error: IGDError | None = None


@dataclass(frozen=True)
class Mapped(Event[T]):
    """Created and verified."""

    name: ClassVar[str] = "mapped"


@dataclass(frozen=True)
class Renewed(Event[T]):
    """The lease was extended."""

    name: ClassVar[str] = "renewed"


@dataclass(frozen=True)
class RenewalFailed(Event[T]):
    """A renewal failed while the lease may still hold; retries follow."""

    name: ClassVar[str] = "renewal_failed"


@dataclass(frozen=True)
class ExternalAddressChanged(Event[T]):
    """The published endpoint (external address or port) changed; ``previous`` has the old."""

    name: ClassVar[str] = "external_ip_changed"


@dataclass(frozen=True)
class Lost(Event[T]):
    """The lease ran out without a successful renewal: the port is not reachable."""

    name: ClassVar[str] = "lost"


@dataclass(frozen=True)
class Recovered(Event[T]):
    """Back in place after being lost or wiped by the gateway."""

    name: ClassVar[str] = "recovered"


@dataclass(frozen=True)
class Failed(Event[T]):
    """aioigd gave up on it; ``error`` says why."""

    name: ClassVar[str] = "failed"


@dataclass(frozen=True)
class Released(Event[T]):
    """Released by the application; ``error`` is set when the deletion failed."""

    name: ClassVar[str] = "released"


def effective_lease(requested: int, granted: int | None) -> int:
    """The lease to schedule by: the granted one, the requested one when the gateway
    reports 0 (or nothing) for a leased mapping, 0 for a permanent one."""
    if requested <= 0:
        return 0 if granted is None or granted <= 0 else granted
    if granted is None or granted <= 0:
        return requested
    return min(requested, granted)


def renew_delay(lease: int) -> float:
    """Seconds after a grant at which to renew: half the lease (at least 1 s before
    it ends); permanent mappings are re-asserted every :data:`PERMANENT_RECHECK` s."""
    if lease <= 0:
        return PERMANENT_RECHECK
    return max(min(lease / 2, lease - 1.0), 0.5)


def retry_delay(failures: int, lease: int, *, lost: bool = False) -> float:
    """Back-off after ``failures`` failed attempts: 2, 4, 8 … s, at least 1 s, at most
    half the lease while it may still hold, at most :data:`LOST_RETRY_MAX` once lost."""
    backoff = 2.0 ** min(failures, 8)
    if lost:
        return max(1.0, min(backoff, LOST_RETRY_MAX))
    ceiling = lease / 2 if lease > 0 else PERMANENT_GRACE / 4
    return max(1.0, min(backoff, ceiling, LOST_RETRY_MAX))


class Lifecycle(Generic[T]):
    """The schedule and state of one kept mapping or pinhole.

    Args:
        subject: its value as created (a :class:`~aioigd.models.PortMapping` or
            :class:`~aioigd.models.Pinhole`).
        now: the clock at creation.
        requested_lease: what was asked for (0 = permanent).
        granted_lease: what the gateway reported (``None``: nothing reported).
        endpoint: the part of ``subject`` peers connect to; a change of it is an
            :class:`ExternalAddressChanged` event.
        check_interval: seconds between cheap checks (is it still there, what is
            the external address) between renewals; ``None`` for none.
    """

    def __init__(
        self,
        subject: T,
        *,
        now: float,
        requested_lease: int,
        granted_lease: int | None = None,
        endpoint: Callable[[T], Hashable] = lambda s: None,
        check_interval: float | None = None,
    ) -> None:
        self.subject = subject
        self.requested_lease = requested_lease
        self.lease = effective_lease(requested_lease, granted_lease)
        self.state = State.ACTIVE
        self.failures = 0
        self.last_error: IGDError | None = None
        self.granted_at = now
        self.checked_at = now
        self.failing_since: float | None = None
        self._endpoint = endpoint
        self._check_interval = check_interval
        self._retry_at: float | None = None
        self._events: deque[Event[T]] = deque()
        self._emit(Mapped, now)

    # -- time -----------------------------------------------------------------
    @property
    def expires_at(self) -> float | None:
        """When the lease runs out without a renewal (``None``: permanent)."""
        return self.granted_at + self.lease if self.lease > 0 else None

    def _lost_at(self) -> float | None:
        if self.lease > 0:
            return self.expires_at
        if self.failing_since is not None:
            return self.failing_since + PERMANENT_GRACE
        return None

    def deadline(self) -> float | None:
        """When the shell must next call :meth:`poll` (``None``: never again)."""
        if self.state in TERMINAL:
            return None
        times: list[float] = []
        if self._retry_at is not None:
            times.append(self._retry_at)
        else:
            times.append(self.granted_at + renew_delay(self.lease))
            if self._check_interval is not None:
                times.append(self.checked_at + self._check_interval)
        lost_at = self._lost_at()
        if self.state in HELD and lost_at is not None:
            times.append(lost_at)
        return min(times)

    def poll(self, now: float) -> Action | None:
        """Advance to ``now``: flag a lease that ran out, say what is due."""
        if self.state in TERMINAL:
            return None
        lost_at = self._lost_at()
        if self.state in HELD and lost_at is not None and now >= lost_at:
            self._set(State.LOST, Lost, now, error=self.last_error)
        if self._retry_at is not None:
            return Action.RENEW if now >= self._retry_at else None
        if now >= self.granted_at + renew_delay(self.lease):
            return Action.RENEW
        if self._check_interval is not None and now >= self.checked_at + self._check_interval:
            return Action.CHECK
        return None

    def retry_now(self, now: float) -> None:
        """Make the next attempt due at once (the gateway was found again)."""
        if self.state not in TERMINAL:
            self._retry_at = now

    # -- outcomes ---------------------------------------------------------------
    def succeeded(
        self, now: float, subject: T, *, granted_lease: int | None, recreated: bool = False
    ) -> None:
        """A renewal or check worked.

        Args:
            subject: the value as the gateway now holds it (new external address …).
            granted_lease: the lease just granted; ``None`` when nothing was renewed
                (a check that found everything in place).
            recreated: the gateway had forgotten it and it was created again.
        """
        if self.state in TERMINAL:
            return
        previous, self.subject = self.subject, subject
        self.checked_at = now
        renewed = granted_lease is not None
        if renewed:
            self.granted_at = now
            self.lease = effective_lease(self.requested_lease, granted_lease)
        self.failures, self.last_error = 0, None
        self._retry_at = self.failing_since = None
        if self.state is State.LOST or recreated:
            self._set(State.RECOVERED, Recovered, now, previous=previous)
        elif renewed:
            self.state = State.ACTIVE
            self._emit(Renewed, now, previous=previous)
        if self._endpoint(subject) != self._endpoint(previous):
            self._emit(ExternalAddressChanged, now, previous=previous)

    def attempt_failed(self, now: float, error: IGDError) -> None:
        """A renewal or check failed; schedule the retry."""
        if self.state in TERMINAL:
            return
        self.failures += 1
        self.last_error = error
        if self.failing_since is None:
            self.failing_since = now
        lost_at = self._lost_at()
        if self.state in HELD and lost_at is not None and now >= lost_at:
            self._set(State.LOST, Lost, now, error=error)
        elif self.state in (State.ACTIVE, State.RECOVERED):
            self._set(State.RENEWING, RenewalFailed, now, error=error)
        self._retry_at = now + retry_delay(self.failures, self.lease, lost=self.state is State.LOST)

    def give_up(self, now: float, error: IGDError) -> None:
        """Stop for good: nothing more is attempted."""
        if self.state not in TERMINAL:
            self.last_error = error
            self._set(State.FAILED, Failed, now, error=error)

    def released(self, now: float, error: IGDError | None = None) -> None:
        """The application released it; ``error`` when the deletion failed."""
        if self.state is not State.RELEASED:
            self._set(State.RELEASED, Released, now, error=error)

    # -- events -----------------------------------------------------------------
    def next_event(self) -> Event[T] | None:
        """The oldest event not yet taken, or ``None``."""
        return self._events.popleft() if self._events else None

    def _set(
        self,
        state: State,
        kind: type[Event[T]],
        now: float,
        *,
        previous: T | None = None,
        error: IGDError | None = None,
    ) -> None:
        self.state = state
        self._emit(kind, now, previous=previous, error=error)

    def _emit(
        self,
        kind: type[Event[T]],
        now: float,
        *,
        previous: T | None = None,
        error: IGDError | None = None,
    ) -> None:
        self._events.append(kind(self.subject, self.state, now, previous, error))
