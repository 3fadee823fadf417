"""Helpers shared by the benchmark workers (stdlib only; imported as a sibling module).

Every worker runs inside the lab's client namespace and prints exactly one JSON line on
stdout: ``{"series": {name: [samples...]}, "info": {...}}``. Times are milliseconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

#: miniupnpc asks a minissdpd socket first; its path is shared by every namespace.
NO_MINISSDPD = "/nonexistent/minissdpd.sock"
BENCH_DESCRIPTION = "bench"


def now() -> float:
    """A monotonic clock in milliseconds."""
    return time.perf_counter() * 1000.0


def tcp_active_opens() -> int:
    """The namespace's TCP ActiveOpens (connect() calls) from /proc/net/snmp.

    /proc/net follows the reading process's network namespace, so inside the client
    namespace this counts exactly the connections the client opened.
    """
    lines = Path("/proc/net/snmp").read_text().splitlines()
    tcp = [line.split() for line in lines if line.startswith("Tcp:")]
    header, values = tcp[0], tcp[1]
    return int(values[header.index("ActiveOpens")])


def _schedstat(path: Path) -> tuple[float, float]:
    # /proc/PID/schedstat: nanoseconds on a CPU, nanoseconds runnable but waiting for one.
    run, wait, _ = path.read_text().split()
    return int(run) / 1e6, int(wait) / 1e6


def client_cpu() -> dict[str, float] | None:
    """Milliseconds so far that this process (all its threads) ran on a CPU, and waited
    runnable for one (the scheduler's own accounting); None without schedstat."""
    try:
        times = [_schedstat(task / "schedstat") for task in Path("/proc/self/task").iterdir()]
    except (OSError, ValueError):
        return None
    return {"client_cpu": sum(t[0] for t in times), "client_wait": sum(t[1] for t in times)}


def routers_cpu() -> dict[str, float] | None:
    """The same for every miniupnpd on the machine (the lab's namespaces share one PID
    space): how much CPU the routers used, and how long they waited for one."""
    run = wait = 0.0
    try:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if (proc / "comm").read_text().strip() != "miniupnpd":
                    continue
                r, w = _schedstat(proc / "schedstat")
            except OSError:
                continue  # it ended meanwhile
            run, wait = run + r, wait + w
    except (OSError, ValueError):
        return None
    return {"routers_cpu": run, "routers_wait": wait}


def emit(series: dict[str, list[float]], **info: Any) -> None:
    """Print the one JSON result line the orchestrator reads."""
    print(json.dumps({"series": series, "info": info}), flush=True)


def write_profile(profiler: Any, path: str, title: str, limit: int = 35) -> None:
    """Write the top of a cProfile run, sorted by cumulative time, as text."""
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    Path(path).write_text(f"# {title}\n\n{buf.getvalue()}")
