"""Long hold: many kept mappings with short leases, RSS, fds and tasks sampled over time.

``python3 benchmarks/soak.py [--mappings 1000] [--lease 20] [--minutes 30] [--every 30]``
starts a FakeIGD in a child process on loopback (so its table and connections are not in
the measured process), keeps ``--mappings`` mappings on it through one ``PortMapper``
(aiohttp, the library's default client) with ``--lease`` s leases (each renewed at half
its lease), and every ``--every`` s prints one JSON line: elapsed s, RSS KiB (from
/proc/self/statm), open fds, asyncio tasks, requests so far, mappings on the fake. The
last line sums it up: RSS, fds and tasks from the first sample after everything was
mapped to the last. Loopback only; not part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aioigd  # noqa: E402

FAKE = """
import asyncio, sys
from aioigd.testing import FakeIGD
async def main():
    async with FakeIGD("127.0.0.1") as fake:
        print(fake.location, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def hold(location: str, a: argparse.Namespace) -> list[dict[str, Any]]:
    gw = await aioigd.Gateway.from_location(location)
    samples: list[dict[str, Any]] = []
    async with aioigd.PortMapper(gw, own_gateway=True) as pm:
        t0 = time.monotonic()
        kept = []
        for i in range(a.mappings):
            kept.append(await pm.keep(20000 + i, lease=a.lease, description="soak"))
        mapped_in = time.monotonic() - t0
        start = time.monotonic()
        end = start + a.minutes * 60
        while True:
            sample = {
                "elapsed_s": round(time.monotonic() - start, 1),
                "rss_kib": rss_kib(),
                "fds": fds(),
                "tasks": len(asyncio.all_tasks()),
                "requests": gw.session.stats.requests,
                "connections": gw.session.stats.connections,
                "held": sum(k.state.value in ("active", "renewing") for k in kept),
            }
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            if time.monotonic() >= end:
                break
            await asyncio.sleep(min(a.every, max(0.0, end - time.monotonic())))
        print(json.dumps({"mapped_in_s": round(mapped_in, 2)}), flush=True)
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mappings", type=int, default=1000)
    ap.add_argument("--lease", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--every", type=float, default=30.0)
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO), AIOIGD_LOOPBACK_ONLY="1")
    os.environ["AIOIGD_LOOPBACK_ONLY"] = "1"
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert fake.stdout is not None
        location = fake.stdout.readline().decode().strip()
        samples = asyncio.run(hold(location, a))
    finally:
        if fake.stdin is not None:
            fake.stdin.close()
        fake.wait(10)
    first, last = samples[0], samples[-1]
    hours = (last["elapsed_s"] or 1) / 3600
    print(
        json.dumps(
            {
                "summary": f"{a.mappings} mappings, lease {a.lease} s, {a.minutes:g} min",
                "rss_kib": [first["rss_kib"], last["rss_kib"]],
                "rss_max_kib": max(s["rss_kib"] for s in samples),
                "fds": [first["fds"], last["fds"], max(s["fds"] for s in samples)],
                "tasks": [first["tasks"], last["tasks"], max(s["tasks"] for s in samples)],
                "requests": last["requests"] - first["requests"],
                "requests_per_s": round((last["requests"] - first["requests"]) / (hours * 3600), 1),
                "connections": last["connections"],
                "held_at_end": last["held"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
