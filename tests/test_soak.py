"""Soak tests against the in-process FakeIGD on loopback: nothing grows with use.

- 1,000 ``discover()`` + ``close()`` runs in one process: traced memory after run 1,000 is
  within a small margin of run 100, and the process has the same number of open fds and
  asyncio tasks afterwards as before.
- 2,000 ``PortMapper.keep()`` / ``release()`` cycles on one Gateway: fds and live objects
  flat, no keeper task left behind, nothing left on the gateway.
- 100 mappings kept with 2 s leases for 8 s (each renewed every second): fds, tasks and
  traced memory flat (``benchmarks/soak.py`` runs 1,000 for 30 minutes).

The fake records every request; the tests clear that record as they go so that the fake's
own bookkeeping does not count as growth. Memory and fd figures are printed for the report;
so is the time taken, which is not asserted (a loaded machine is slower, not leakier): a
generous guard only turns a runaway into a failure.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import tracemalloc
from collections.abc import Callable

import pytest

import aioigd
from aioigd.session import MAX_CONNECTIONS
from aioigd.testing import FakeIGD
from tests.conftest import loopback_search

DISCOVERY_RUNS = 1000
GUARD = 300.0  # seconds for a whole soak test: a runaway, not a budget (idle: ~10 s and ~3 s)
MEMORY_MARGIN = 1 << 20  # bytes of growth allowed between run 100 and run 1,000
MAPPING_CYCLES = 2000
OBJECT_MARGIN = 1000  # live objects allowed to appear between cycle 100 and cycle 2,000


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settled(baseline: int, measure: Callable[[], int], timeout: float = 2.0) -> int:
    """``measure()`` once it is back to ``baseline`` (or after ``timeout`` s).

    The fake closes its end of a connection when it reads the client's EOF, a few loop
    iterations after the client closed: give it that long, no more.
    """
    deadline = time.monotonic() + timeout
    while (value := measure()) != baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return value


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_thousand_discoveries_flat_memory_and_fds(
    fake_igd: FakeIGD, capsys: pytest.CaptureFixture[str]
) -> None:
    options = loopback_search(fake_igd)
    fds_before = open_fds()
    tasks_before = len(asyncio.all_tasks())
    tracemalloc.start()
    try:
        t0 = time.monotonic()
        mem: dict[int, int] = {}
        for run in range(1, DISCOVERY_RUNS + 1):
            gw = await aioigd.discover(**options)
            try:
                assert gw.location == fake_igd.location
            finally:
                await gw.close()
            fake_igd.requests.clear()
            if run in (100, DISCOVERY_RUNS):
                mem[run] = traced()
            assert time.monotonic() - t0 < GUARD, f"stuck at run {run}"
        elapsed = time.monotonic() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    fds_after = await settled(fds_before, open_fds)
    tasks_after = await settled(tasks_before, lambda: len(asyncio.all_tasks()))
    growth = mem[DISCOVERY_RUNS] - mem[100]
    with capsys.disabled():
        print(
            f"\n[soak] {DISCOVERY_RUNS} discover+close: {elapsed:.1f} s "
            f"({elapsed / DISCOVERY_RUNS * 1000:.1f} ms/run, tracemalloc on); traced memory "
            f"run 100 {mem[100] / 1024:.0f} KiB, run {DISCOVERY_RUNS} "
            f"{mem[DISCOVERY_RUNS] / 1024:.0f} KiB (growth {growth / 1024:+.1f} KiB), "
            f"peak {peak / 1024:.0f} KiB; fds {fds_before} -> {fds_after}; "
            f"tasks {tasks_before} -> {tasks_after}; searches answered {fake_igd.searches}"
        )
    assert growth < MEMORY_MARGIN, f"memory grew {growth} bytes from run 100 to 1,000"
    assert fds_after == fds_before
    assert tasks_after == tasks_before


async def test_two_thousand_map_release_cycles_leave_nothing(
    fake_igd: FakeIGD, capsys: pytest.CaptureFixture[str]
) -> None:
    fds_before = open_fds()
    tasks_before = len(asyncio.all_tasks())
    gw = await aioigd.Gateway.from_location(fake_igd.location)
    pm = aioigd.PortMapper(gw, own_gateway=True)
    try:
        t0 = time.monotonic()
        fds_at: dict[int, int] = {}
        objects_at: dict[int, int] = {}
        max_tasks = 0
        for cycle in range(1, MAPPING_CYCLES + 1):
            port = 20000 + cycle % 500
            kept = await pm.keep(port, lease=600)
            assert kept.external_port == port
            # One keeper task while it is kept.
            keepers = [t for t in asyncio.all_tasks() if t.get_name().startswith("aioigd-keeper")]
            assert len(keepers) == 1, keepers
            max_tasks = max(max_tasks, len(asyncio.all_tasks()))
            await pm.release(kept)
            assert ("TCP", port) not in fake_igd.mappings
            fake_igd.requests.clear()
            if cycle in (100, MAPPING_CYCLES):
                gc.collect()
                fds_at[cycle] = open_fds()
                objects_at[cycle] = len(gc.get_objects())
            assert time.monotonic() - t0 < GUARD, f"stuck at cycle {cycle}"
        elapsed = time.monotonic() - t0
        assert pm.active() == []
        stats = gw.session.stats
    finally:
        failed = await pm.close()
    assert failed == []
    fds_after = await settled(fds_before, open_fds)
    tasks_after = await settled(tasks_before, lambda: len(asyncio.all_tasks()))
    grown = objects_at[MAPPING_CYCLES] - objects_at[100]
    with capsys.disabled():
        print(
            f"\n[soak] {MAPPING_CYCLES} keep/release cycles: {elapsed:.1f} s "
            f"({elapsed / MAPPING_CYCLES * 1000:.2f} ms/cycle); requests {stats.requests}, "
            f"connections {stats.connections}; fds {fds_before} -> cycle 100 {fds_at[100]} "
            f"-> cycle {MAPPING_CYCLES} {fds_at[MAPPING_CYCLES]} -> closed {fds_after}; "
            f"live objects {grown:+d} from cycle 100 to {MAPPING_CYCLES}; "
            f"tasks {tasks_before} -> max {max_tasks} -> {tasks_after}"
        )
    assert fake_igd.mappings == {}
    assert fds_at[MAPPING_CYCLES] == fds_at[100]
    assert fds_after == fds_before
    assert tasks_after == tasks_before
    assert grown < OBJECT_MARGIN, f"{grown} more live objects after {MAPPING_CYCLES} cycles"
    # The session is reused: connections stay far below requests (the fake keeps them alive).
    assert stats.connections <= 8 < stats.requests


KEPT = 100
KEPT_LEASE = 2  # seconds: renewed every second
KEPT_HOLD = 8.0  # seconds held after all are mapped


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def test_many_kept_mappings_with_short_leases_stay_flat(
    fake_igd: FakeIGD, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14: many kept mappings renewed over and over: fds, tasks and memory flat."""
    fds_before = open_fds()
    tasks_before = len(asyncio.all_tasks())
    gw = await aioigd.Gateway.from_location(fake_igd.location)
    pm = aioigd.PortMapper(gw, own_gateway=True)
    tracemalloc.start()
    try:
        kept = [await pm.keep(30000 + i, lease=KEPT_LEASE) for i in range(KEPT)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        samples: list[tuple[float, int, int, int, int]] = []
        while (now := loop.time() - start) < KEPT_HOLD:
            await asyncio.sleep(1.0)
            fake_igd.requests.clear()
            samples.append((now, open_fds(), len(asyncio.all_tasks()), traced(), rss_kib()))
        renewals = gw.session.stats.requests
        assert all(k.state.value in ("active", "renewing") for k in kept), {k.state for k in kept}
        assert len(fake_igd.mappings) == KEPT
    finally:
        tracemalloc.stop()
        failed = await pm.close()
    assert failed == []
    assert fake_igd.mappings == {}
    # From the second sample on (the first renewals have allocated what they keep).
    first, last = samples[1], samples[-1]
    with capsys.disabled():
        print(
            f"\n[soak] {KEPT} kept mappings, lease {KEPT_LEASE} s, {KEPT_HOLD:g} s: "
            f"{renewals} requests; fds {first[1]} -> {last[1]}, tasks {first[2]} -> {last[2]}, "
            f"traced {first[3] / 1024:.0f} -> {last[3] / 1024:.0f} KiB, "
            f"RSS {first[4]} -> {last[4]} KiB"
        )
    assert renewals >= KEPT * 3  # each one was renewed several times while held
    # Renewals in flight come and go (and the fake serves them in this loop): bounded by
    # the connection limit and the number of mappings, not growing with time.
    assert max(s[1] for s in samples[1:]) <= first[1] + MAX_CONNECTIONS
    assert max(s[2] for s in samples[1:]) <= first[2] + 2 * KEPT
    assert last[3] - first[3] < MEMORY_MARGIN
    assert await settled(fds_before, open_fds) == fds_before
    assert await settled(tasks_before, lambda: len(asyncio.all_tasks())) == tasks_before
