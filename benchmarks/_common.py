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
