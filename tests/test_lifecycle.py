"""The lifecycle state machine on a fake clock: no event loop, no sleeps.

Every path a kept mapping can take — renewed, failing and retried, lost after its
lease, recovered, moved, failed for good, released — and the schedule behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from aioigd.errors import IGDConnectionError, PortInUse, UPnPError
from aioigd.lifecycle import (
    LOST_RETRY_MAX,
    PERMANENT_GRACE,
    PERMANENT_RECHECK,
    Action,
    Event,
    Lifecycle,
    State,
    effective_lease,
    renew_delay,
    retry_delay,
)


@dataclass(frozen=True)
class Thing:
    ip: str
    port: int = 8000


def machine(
    lease: int = 600, granted: int | None = 600, check: float | None = None, now: float = 0.0
) -> Lifecycle[Thing]:
    return Lifecycle(
        Thing("203.0.113.7"),
        now=now,
        requested_lease=lease,
        granted_lease=granted,
        endpoint=lambda t: (t.ip, t.port),
        check_interval=check,
    )


def drain(m: Lifecycle[Thing]) -> list[Event[Thing]]:
    out = []
    while (event := m.next_event()) is not None:
        out.append(event)
    return out


def names(m: Lifecycle[Thing]) -> list[str]:
    return [e.name for e in drain(m)]


DOWN = IGDConnectionError("Cannot connect to host 192.168.1.1:5000")


# -- the schedule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "granted", "expected"),
    [
        (600, 600, 600),
        (600, 0, 600),  # the gateway reports 0 for a leased mapping: use what we asked for
        (600, None, 600),
        (600, 120, 120),  # the gateway shortened it
        (600, 9999, 600),  # never longer than asked
        (0, 0, 0),  # permanent
        (0, 604800, 604800),  # asked permanent, granted a week (IGD v2 clamps)
    ],
)
def test_effective_lease(requested: int, granted: int | None, expected: int) -> None:
    assert effective_lease(requested, granted) == expected


@pytest.mark.parametrize(
    ("lease", "expected"),
    [(3600, 1800.0), (600, 300.0), (2, 1.0), (1, 0.5), (0, PERMANENT_RECHECK)],
)
def test_renew_delay(lease: int, expected: float) -> None:
    assert renew_delay(lease) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("failures", "lease", "lost", "expected"),
    [
        (1, 3600, False, 2.0),
        (2, 3600, False, 4.0),
        (5, 3600, False, 32.0),
        (20, 3600, False, LOST_RETRY_MAX),  # capped
        (5, 10, False, 5.0),  # at most half the lease while it may still hold
        (3, 1, False, 1.0),  # at least 1 s: never a tight loop
        (10, 0, False, PERMANENT_GRACE / 4),  # permanent: several tries inside the grace
        (20, 10, True, LOST_RETRY_MAX),  # lost: slow, but forever
        (1, 10, True, 2.0),
    ],
)
def test_retry_delay(failures: int, lease: int, lost: bool, expected: float) -> None:
    assert retry_delay(failures, lease, lost=lost) == pytest.approx(expected)


# -- renewal ------------------------------------------------------------------------------


def test_created_then_renewed_at_half_the_lease() -> None:
    m = machine()
    assert names(m) == ["mapped"]
    assert m.state is State.ACTIVE
    assert m.deadline() == 300.0
    assert m.poll(299.9) is None
    assert m.poll(300.0) is Action.RENEW
    m.succeeded(300.0, Thing("203.0.113.7"), granted_lease=600)
    assert names(m) == ["renewed"]
    assert m.deadline() == 600.0 and m.expires_at == 900.0


def test_gateway_reporting_lease_zero_is_renewed_on_the_requested_schedule() -> None:
    """The issue's case: a 600 s mapping the gateway lists with NewLeaseDuration 0."""
    m = machine(lease=600, granted=0)
    assert m.lease == 600
    assert m.deadline() == 300.0  # not 1800 s, long after the mapping expired
    m.succeeded(300.0, m.subject, granted_lease=0)
    assert m.lease == 600 and m.deadline() == 600.0


def test_permanent_mapping_is_reasserted() -> None:
    m = machine(lease=0, granted=0)
    assert m.expires_at is None
    assert m.deadline() == PERMANENT_RECHECK
    assert m.poll(PERMANENT_RECHECK) is Action.RENEW


def test_checks_between_renewals() -> None:
    m = machine(lease=3600, granted=3600, check=300.0)
    assert m.deadline() == 300.0
    assert m.poll(300.0) is Action.CHECK
    m.succeeded(300.0, m.subject, granted_lease=None)  # still there, nothing renewed
    assert names(m) == ["mapped"]  # a check that finds everything in place says nothing
    assert m.deadline() == 600.0
    assert m.expires_at == 3600.0  # a check does not extend the lease


# -- failures -----------------------------------------------------------------------------


def test_failing_renewal_backs_off_then_lost_at_the_lease_end_then_recovered() -> None:
    m = machine(lease=60, granted=60)
    drain(m)
    assert m.poll(30.0) is Action.RENEW
    m.attempt_failed(30.0, DOWN)
    assert m.state is State.RENEWING
    assert names(m) == ["renewal_failed"]
    now, attempts = 30.0, 1
    while m.state is State.RENEWING:
        now = m.deadline() or 0.0
        action = m.poll(now)
        if m.state is State.LOST:
            break
        assert action is Action.RENEW
        m.attempt_failed(now, DOWN)
        attempts += 1
    assert m.state is State.LOST
    assert now == pytest.approx(60.0)  # exactly at the lease's end, not a retry later
    events = drain(m)
    # one event per state change, not one per retry
    assert [e.name for e in events] == ["lost"]
    assert events[0].error is DOWN
    assert attempts >= 3
    # lost: retried slowly, forever
    gaps = []
    for _ in range(12):
        nxt = m.deadline()
        assert nxt is not None
        gaps.append(nxt - now)
        now = nxt
        assert m.poll(now) is Action.RENEW
        m.attempt_failed(now, DOWN)
    assert names(m) == []
    assert max(gaps) == LOST_RETRY_MAX
    m.succeeded(now, Thing("203.0.113.7"), granted_lease=60, recreated=True)
    assert m.state is State.RECOVERED
    assert names(m) == ["recovered"]
    assert m.deadline() == now + 30.0
    m.poll(now + 30.0)
    m.succeeded(now + 30.0, m.subject, granted_lease=60)
    assert m.state is State.ACTIVE
    assert names(m) == ["renewed"]


def test_a_failure_that_heals_before_the_lease_ends_is_renewed_not_recovered() -> None:
    m = machine(lease=600, granted=600)
    drain(m)
    m.poll(300.0)
    m.attempt_failed(300.0, UPnPError(501, "Action Failed", "AddPortMapping"))
    retry = m.deadline()
    assert retry == 302.0
    m.poll(retry)
    m.succeeded(retry, m.subject, granted_lease=600)
    assert m.state is State.ACTIVE
    assert names(m) == ["renewal_failed", "renewed"]
    assert m.failures == 0 and m.last_error is None


def test_permanent_mapping_is_lost_after_the_grace() -> None:
    m = machine(lease=0, granted=0)
    drain(m)
    now = PERMANENT_RECHECK
    m.poll(now)
    m.attempt_failed(now, DOWN)
    while m.state is not State.LOST:
        now = m.deadline() or 0.0
        if m.poll(now) is None:
            break
        m.attempt_failed(now, DOWN)
    assert m.state is State.LOST
    assert now == pytest.approx(PERMANENT_RECHECK + PERMANENT_GRACE)


def test_gateway_found_again_makes_the_retry_due_at_once() -> None:
    m = machine(lease=60, granted=60)
    m.poll(30.0)
    m.attempt_failed(30.0, DOWN)
    assert m.poll(30.5) is None
    m.retry_now(30.5)
    assert m.poll(30.5) is Action.RENEW


def test_recreated_after_a_reboot_while_active_is_recovered() -> None:
    """The gateway forgot it (reboot, same port): re-added at the next renewal."""
    m = machine()
    drain(m)
    m.poll(300.0)
    m.succeeded(300.0, m.subject, granted_lease=600, recreated=True)
    assert names(m) == ["recovered"]
    assert m.state is State.RECOVERED


def test_external_address_change_is_an_event_with_the_old_value() -> None:
    m = machine(check=60.0)
    drain(m)
    assert m.poll(60.0) is Action.CHECK
    m.succeeded(60.0, Thing("198.51.100.9"), granted_lease=None)
    (event,) = drain(m)
    assert event.name == "external_ip_changed"
    assert event.subject == Thing("198.51.100.9")
    assert event.previous == Thing("203.0.113.7")
    assert m.state is State.ACTIVE


def test_moved_to_another_port_is_recovered_and_changed() -> None:
    m = machine()
    drain(m)
    m.poll(300.0)
    m.succeeded(300.0, replace(m.subject, port=8001), granted_lease=600, recreated=True)
    assert names(m) == ["recovered", "external_ip_changed"]


def test_give_up_is_terminal() -> None:
    m = machine()
    drain(m)
    m.poll(300.0)
    m.give_up(300.0, PortInUse("TCP port 8000 was taken by 192.168.1.9:8000"))
    assert m.state is State.FAILED
    assert names(m) == ["failed"]
    assert m.deadline() is None and m.poll(10_000.0) is None
    m.succeeded(10_000.0, m.subject, granted_lease=600)  # a late answer changes nothing
    m.attempt_failed(10_000.0, DOWN)
    assert m.state is State.FAILED and names(m) == []


def test_released_is_terminal_and_carries_the_cleanup_error() -> None:
    m = machine()
    drain(m)
    m.released(5.0, DOWN)
    (event,) = drain(m)
    assert (event.name, event.state, event.error, event.at) == (
        "released",
        State.RELEASED,
        DOWN,
        5.0,
    )
    m.released(6.0)
    assert names(m) == [] and m.deadline() is None
