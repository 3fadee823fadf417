"""aioigd benchmark suite: aioigd and its peers against the same miniupnpd, interleaved.

    python3 benchmarks/run.py            # full run (~4 min on 2 cores), writes RESULTS.md
    python3 benchmarks/run.py --quick    # short run (~1 min)
    python3 benchmarks/run.py --reps 7   # more repetitions
    python3 benchmarks/run.py --only 2,3 --out /tmp/r.md   # some figures, elsewhere

Needs root and the lab's tools (miniupnpd-nftables, miniupnpc, nftables, iproute2) plus the
peers (``pip install miniupnpc==2.3.3 async-upnp-client``). It builds the network-namespace lab
of ``tests/netlab.py`` (client ── r1 [── r2 ── r3 ── r4] ── outside) and runs every worker that
talks UPnP *inside the client namespace*; nothing is sent from the root namespace.

Each figure runs every client once per repetition, the order rotated every repetition, so
all clients see the same daemon in the same state. Reported: median [min–max] over all
samples, and the ratio aioigd ÷ peer (< 1: aioigd is faster). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tests.netlab import NO_MINISSDPD, Lab, LabError, lab_unavailable_reason  # noqa: E402

PY = sys.executable
AIOIGD_SCRIPT = Path(PY).parent / "aioigd"
#: Cold start of aioupnp 0.0.18 from /work/shared/peer-baseline.md (it cannot run on 3.11).
AIOUPNP_COLD_MS = 150.0
#: async-upnp-client cold flow with the URL given, from peer-baseline.md (re-measured here).
AUP_COLD_BASELINE_MS = 230.0
#: `python3.11 -c pass` on the machine where peer-baseline.md was measured.
BASELINE_PYTHON_START_MS = 10.9


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rotated(items: Sequence[Any], rep: int) -> list[Any]:
    k = rep % len(items) if items else 0
    return [*items[k:], *items[:k]]


# -- collection ---------------------------------------------------------------------------------


@dataclass
class Job:
    """One worker process: ``prefix`` names its series (``prefix/series``)."""

    prefix: str
    script: str
    args: list[str]
    timeout: float = 120.0

    @property
    def tag(self) -> str:
        """How errors are filed: the prefix and the worker's first arguments."""
        return f"{self.prefix}: {Path(self.script).stem} {' '.join(self.args[:3])}"[:80]


@dataclass
class Collector:
    series: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    info: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def samples(self, key: str) -> list[float]:
        return [x for x in self.series.get(key, []) if not math.isnan(x)]

    def info_values(self, prefix: str, name: str) -> list[Any]:
        out: list[Any] = []
        for item in self.info.get(prefix, []):
            value = item.get(name)
            if isinstance(value, list):
                out.extend(value)
            elif value is not None:
                out.append(value)
        return out


class Bench:
    def __init__(self, lab: Lab, col: Collector) -> None:
        self.lab = lab
        self.col = col

    def run_job(self, job: Job) -> dict[str, Any] | None:
        cmd = [PY, str(BENCH / job.script), *job.args]
        try:
            proc = self.lab.run(self.lab.client_ns, *cmd, check=False, timeout=job.timeout)
        except subprocess.TimeoutExpired:
            self.col.errors[job.tag].append(f"timed out after {job.timeout:g} s")
            log(f"  {job.prefix}: TIMEOUT")
            return None
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            self.col.errors[job.tag].append(f"rc {proc.returncode}: {' | '.join(tail)}")
            log(f"  {job.prefix}: FAILED rc {proc.returncode}: {' | '.join(tail)}")
            return None
        result: dict[str, Any] = json.loads(lines[-1])
        for name, values in result["series"].items():
            self.col.series[f"{job.prefix}/{name}"].extend(values)
        self.col.info[job.prefix].append(result.get("info", {}))
        for why in result.get("info", {}).get("incomplete") or []:
            self.col.errors[job.tag].append(f"incomplete result (not timed): {why}")
        for label, why in (result.get("info", {}).get("failures") or {}).items():
            self.col.errors[f"{job.prefix}/{label}"].append(why)
        return result

    def interleave(self, name: str, jobs: list[Job], reps: int) -> None:
        for rep in range(reps):
            t0 = time.monotonic()
            for job in rotated(jobs, rep):
                self.run_job(job)
            log(f"{name}: rep {rep + 1}/{reps} done in {time.monotonic() - t0:.1f} s")

    def floor(self, what: str, location: str, *args: str) -> dict[str, Any] | None:
        job = Job(f"floor-{what}", "floor.py", [what, "--location", location, *args], 300)
        return self.run_job(job)

    def check_router(self, k: int, location: str, where: str) -> None:
        """The daemon is alive and its table empty (wipe leftovers one delete at a time)."""
        if self.lab.miniupnpd_pid(k) is None:
            log(f"miniupnpd r{k} died during {where}; restarting it\n{self.lab.log_tails()}")
            self.col.errors[f"router-r{k}"].append(f"miniupnpd died during {where}")
            self.lab.restart_miniupnpd(k)
        res = self.floor("wipe", location)
        removed = (res or {}).get("info", {}).get("removed", 0)
        if removed:
            self.col.errors[f"router-r{k}"].append(f"{removed} leftover mappings after {where}")
            log(f"  wiped {removed} leftover mappings after {where}")


# -- the figures --------------------------------------------------------------------------------


@dataclass
class Plan:
    reps: int
    quick: bool
    bulk_n: int
    prefill_n: int = 100

    @property
    def fast_n(self) -> int:
        return 2 if self.quick else 4


def fig_discovery(b: Bench, p: Plan, loc: str) -> None:
    n = str(p.fast_n)
    spec = [
        {"label": "upnpc -s", "argv": ["upnpc", "-p", NO_MINISSDPD, "-s"]},
        {"label": "upnpc -u URL -s", "argv": ["upnpc", "-p", NO_MINISSDPD, "-u", loc, "-s"]},
    ]
    aup = "worker_async_upnp_client.py"
    jobs = [
        Job("aioigd", "worker_aioigd.py", ["discover", "--n", n]),
        Job("miniupnpc", "worker_miniupnpc.py", ["discover", "--n", "1"]),
        Job("aup", aup, ["discover", "--variant", "default", "--n", "1"]),
        Job("aup", aup, ["discover", "--variant", "t1", "--n", "1"]),
        Job("aup", aup, ["discover", "--variant", "listener", "--n", n]),
        Job("cold", "coldrun.py", ["--location", loc, "--spec", json.dumps(spec)]),
        Job("floor", "floor.py", ["msearch", "--location", loc, "--n", n]),
        Job("floor", "floor.py", ["desc", "--location", loc, "--n", "10"]),
    ]
    b.interleave("fig1 discovery", jobs, p.reps)


def fig_extip(b: Bench, p: Plan, loc: str) -> None:
    n = "50"
    jobs = [
        Job("aioigd", "worker_aioigd.py", ["extip", "--location", loc, "--n", n]),
        Job("miniupnpc", "worker_miniupnpc.py", ["extip", "--location", loc, "--n", n]),
        Job("aup", "worker_async_upnp_client.py", ["extip", "--location", loc, "--n", n]),
        Job("floor", "floor.py", ["soap", "--location", loc, "--n", n]),
    ]
    b.interleave("fig2 GetExternalIPAddress", jobs, p.reps)


def fig_mapdel(b: Bench, p: Plan, loc: str) -> None:
    n = "6" if p.quick else "10"
    jobs = [
        Job("aioigd", "worker_aioigd.py", ["mapdel", "--location", loc, "--n", n]),
        Job("miniupnpc", "worker_miniupnpc.py", ["mapdel", "--location", loc, "--n", n]),
        Job("aup", "worker_async_upnp_client.py", ["mapdel", "--location", loc, "--n", n]),
        Job("floor", "floor.py", ["mapdel", "--location", loc, "--n", n]),
    ]
    b.interleave("fig3 map/delete", jobs, p.reps)


def fig_bulk(b: Bench, p: Plan, loc: str) -> None:
    n = str(p.bulk_n)
    scripts = [
        ("aioigd-bulk", "worker_aioigd.py", 30000),
        ("miniupnpc-bulk", "worker_miniupnpc.py", 30400),
        ("aup-bulk", "worker_async_upnp_client.py", 30800),
        ("floor-bulk", "floor.py", 31200),
    ]
    jobs = [
        Job(prefix, script, ["bulk", "--location", loc, "--n", n, "--port", str(port)], 300)
        for prefix, script, port in scripts
    ]
    b.interleave(f"fig4 {n} adds + {n} deletes", jobs, p.reps)


def fig_seed(b: Bench, p: Plan, loc: str) -> None:
    log(f"fig5: pre-filling {p.prefill_n} mappings")
    b.floor("prefill", loc, "--n", str(p.prefill_n), "--port", "40000")
    slow_n = "1" if p.quick else "2"
    jobs = [
        Job("aioigd-seed", "worker_aioigd.py", ["seed", "--location", loc, "--n", str(p.fast_n)]),
        Job("miniupnpc-seed", "worker_miniupnpc.py", ["seed", "--location", loc, "--n", slow_n]),
        Job("aup-seed", "worker_async_upnp_client.py", ["seed", "--location", loc, "--n", slow_n]),
    ]
    b.interleave(f"fig5 seed flow on {p.prefill_n} mappings", jobs, p.reps)
    b.floor("wipe", loc)  # the pre-filled mappings, one DeletePortMapping at a time


def byte_compile() -> None:
    """Byte-compile aioigd as pip does for the installed peers: an editable checkout's
    first cold run would otherwise pay the compilation the peers paid at install."""
    subprocess.run([PY, "-m", "compileall", "-q", str(BENCH.parent / "aioigd")], check=True)


BUSY_SIZES = (0, 100, 101, 500, 1000)


def fig_busy(b: Bench, p: Plan, loc: str) -> None:
    """Mapping one port on a router already holding N mappings (issue 10): aioigd's
    map_port and a cold `aioigd add`, beside miniupnpc doing the seed's flow."""
    byte_compile()
    have = 0
    sizes = (0, 101, 1000) if p.quick else BUSY_SIZES
    for n in sizes:
        if n > have:
            log(f"fig9: pre-filling to {n} mappings")
            b.floor("prefill", loc, "--n", str(n - have), "--port", str(40000 + have))
            have = n
        spec = [
            {"label": "aioigd add", "port": 46002,
             "argv": [PY, "-m", "aioigd", "add", "46002", "--gateway", loc, "--json"]},
        ]  # fmt: skip
        jobs = [
            Job(f"aioigd-busy{n}", "worker_aioigd.py",
                ["seed", "--location", loc, "--n", str(p.fast_n), "--port", "46000"]),
            Job(f"miniupnpc-busy{n}", "worker_miniupnpc.py",
                ["seed", "--location", loc, "--n", "1", "--port", "46001"], 300),
            Job(f"cold-busy{n}", "coldrun.py", ["--location", loc, "--spec", json.dumps(spec)]),
        ]  # fmt: skip
        b.interleave(f"fig9 map on a router holding {n} mappings", jobs, p.reps)
    b.floor("wipe", loc)


def fig_cold(b: Bench, p: Plan, loc: str, client_ip: str) -> None:
    byte_compile()
    oneshot = BENCH / "oneshot"
    spec = [
        {"label": "python -c pass", "argv": [PY, "-c", "pass"]},
        {"label": "python -c 'import aiohttp'", "argv": [PY, "-c", "import aiohttp"]},
        {"label": "python -m aioigd add", "port": 45001,
         "argv": [PY, "-m", "aioigd", "add", "45001", "--gateway", loc, "--json"]},
        {"label": "aioigd add (console script)", "port": 45002,
         "argv": [str(AIOIGD_SCRIPT), "add", "45002", "--gateway", loc, "--json"]},
        {"label": "upnpc -u URL -a", "port": 45003,
         "argv": ["upnpc", "-p", NO_MINISSDPD, "-u", loc, "-a", client_ip, "45003", "45003",
                  "TCP", "3600"]},
        {"label": "miniupnpc one-shot script", "port": 45004,
         "argv": [PY, str(oneshot / "miniupnpc_add.py"), loc, "45004"]},
        {"label": "async-upnp-client one-shot script", "port": 45005,
         "argv": [PY, str(oneshot / "async_upnp_client_add.py"), loc, "45005", client_ip]},
    ]  # fmt: skip
    rounds = 1 if p.quick else 2
    for rep in range(p.reps):
        order = [item for k in range(rounds) for item in rotated(spec, rep + k)]
        b.run_job(Job("cold", "coldrun.py", ["--location", loc, "--spec", json.dumps(order)]))
    log(f"fig7 cold processes: {p.reps} reps done")


def fig_multilayer(b: Bench, p: Plan, lab: Lab) -> None:
    n = str(p.fast_n)
    jobs = []
    for layers in (1, 2, 3, 4):
        common = ["multilayer", "--layers", str(layers), "--n", n]
        common += ["--probe-target", lab.outside_ip, "--port", str(46000 + 100 * layers)]
        # Routers rate-limit ICMP time-exceeded (Linux: 1/s per peer after a burst of 6):
        # back-to-back traced runs would measure the rate limit, not aioigd. A user maps
        # once; space the traced runs like that.
        jobs.append(Job(f"ml-auto-{layers}", "worker_aioigd.py", [*common, "--gap", "1.2"]))
        via = ",".join(r.location for r in lab.routers[:layers])
        jobs.append(Job(f"ml-via-{layers}", "worker_aioigd.py", [*common, "--via", via]))
    b.interleave("fig6 multi-layer", jobs, p.reps)
    # Evidence for lost traceroute hops: ICMP errors the routers' kernels suppressed.
    for r in lab.routers:
        snmp = lab.run(r.ns, "cat", "/proc/net/snmp").stdout.splitlines()
        icmp = [line.split() for line in snmp if line.startswith("Icmp:")]
        counters = dict(zip(icmp[0][1:], map(int, icmp[1][1:]), strict=False))
        b.col.info["icmp"].append({"router": r.index, **counters})


def profiles(b: Bench, loc: str, col: Collector, prof_dir: Path) -> None:
    """cProfile summaries of the per-call paths and the import-time breakdown of the CLI."""
    prof_dir.mkdir(exist_ok=True)
    discover = ["discover", "--n", "10", "--profile", str(prof_dir / "aioigd_discover.txt")]
    b.run_job(Job("profile-discover", "worker_aioigd.py", discover))
    timeline = ["timeline", "--layers", "0", "--n", "9", "--gap", "0.2"]
    timeline += ["--profile", str(prof_dir / "discover_timeline.txt")]
    b.run_job(Job("profile-discover-timeline", "worker_aioigd.py", timeline))
    b.run_job(Job("profile-extip", "worker_aioigd.py",
                  ["extip", "--location", loc, "--n", "200",
                   "--profile", str(prof_dir / "aioigd_extip.txt")]))  # fmt: skip
    b.run_job(Job("profile-mapdel", "worker_aioigd.py",
                  ["mapdel", "--location", loc, "--n", "21", "--port", "20500",
                   "--profile", str(prof_dir / "aioigd_map_port.txt")]))  # fmt: skip
    # The cold CLI under cProfile (imports included).
    proc = b.lab.run(
        b.lab.client_ns,
        *[PY, "-m", "cProfile", "-s", "cumulative", "-m", "aioigd", "add", "45010"],
        *["--gateway", loc, "--json"],
        check=False,
    )
    lines = proc.stdout.splitlines()
    (prof_dir / "cli_add_cprofile.txt").write_text(
        "# python -m cProfile -s cumulative -m aioigd add 45010 --gateway URL --json\n\n"
        + "\n".join(lines[:70])
        + "\n"
    )
    b.floor("wipe", loc)
    # Import time, three runs each, keeping the run with the median total: the bare CLI
    # import (what the brief asks for) and a whole `add` command (what a cold run imports).
    commands = {
        "importtime": ["-c", "import aioigd.cli"],
        "importtime_add": ["-m", "aioigd", "add", "45011", "--gateway", loc, "--json"],
    }
    texts = []
    for key, args in commands.items():
        runs = []
        for _ in range(3):
            proc = b.lab.run(b.lab.client_ns, PY, "-X", "importtime", *args, check=False)
            runs.append(parse_importtime(proc.stderr))
            b.floor("wipe", loc)
        runs.sort(key=lambda r: r["total_us"])
        col.info[key].append(runs[1])
        texts.append(render_importtime(runs[1], shlex.join([PY, "-X", "importtime", *args])))
    (prof_dir / "importtime.txt").write_text("\n\n".join(texts))


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def parse_importtime(stderr: str) -> dict[str, Any]:
    rows = []
    for line in stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            depth = len(m.group(3)) // 2
            rows.append({"self": int(m.group(1)), "cum": int(m.group(2)), "depth": depth,
                         "name": m.group(4)})  # fmt: skip
    top_level = [r for r in rows if r["depth"] == 0]
    total = sum(r["cum"] for r in top_level)
    return {"rows": rows, "total_us": total, "raw": stderr}


def render_importtime(data: dict[str, Any], command: str) -> str:
    rows = data["rows"]
    total = data["total_us"]
    by_cum = sorted(rows, key=lambda r: r["cum"], reverse=True)[:10]
    by_self = sorted(rows, key=lambda r: r["self"], reverse=True)[:10]
    out = [
        f"# {command}  (run inside the lab client namespace; URL = r1's rootDesc.xml)",
        f"# total of top-level imports: {total / 1000:.1f} ms",
        "",
        "## top 10 by cumulative time",
        f"{'cumulative ms':>14} {'self ms':>8}  module",
    ]
    out += [f"{r['cum'] / 1000:14.1f} {r['self'] / 1000:8.1f}  {r['name']}" for r in by_cum]
    out += ["", "## top 10 by self time", f"{'self ms':>8}  module"]
    out += [f"{r['self'] / 1000:8.1f}  {r['name']}" for r in by_self]
    out += ["", "## raw -X importtime output", data["raw"]]
    return "\n".join(out) + "\n"


def importtime_cum(data: dict[str, Any], name: str) -> float:
    """Cumulative ms of the first import of ``name`` (0 when it was not imported).

    When the package itself has no row (imported in a worker thread, its rows interleave
    with the main thread's), the largest of its submodules' is a lower bound.
    """
    for r in data["rows"]:
        if r["name"] == name:
            return float(r["cum"]) / 1000
    subs = [float(r["cum"]) for r in data["rows"] if str(r["name"]).startswith(name + ".")]
    return max(subs) / 1000 if subs else 0.0


# -- presentation -------------------------------------------------------------------------------


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt(x: float, digits: int | None = None) -> str:
    if math.isnan(x):
        return "—"
    if digits is None:
        digits = 3 if abs(x) < 1 else 2 if abs(x) < 10 else 1 if abs(x) < 1000 else 0
    return f"{x:,.{digits}f}"


@dataclass
class Row:
    label: str
    key: str
    note: str = ""
    ref: bool = False
    floor: bool = False


@dataclass
class Table:
    title: str
    unit: str
    rows: list[Row]
    scale: float = 1.0
    higher_is_better: bool = False
    footnote: str = ""
    #: "this ÷ ref" instead of "aioigd ÷ this" (for growth tables such as multi-layer).
    growth: bool = False

    def render(self, col: Collector) -> str:
        stats = {r.key: [x * self.scale for x in col.samples(r.key)] for r in self.rows}
        ref = next((r for r in self.rows if r.ref), None)
        floor = next((r for r in self.rows if r.floor), None)
        ref_med = med(stats[ref.key]) if ref else float("nan")
        floor_med = med(stats[floor.key]) if floor else float("nan")
        head = f"| client | median ({self.unit}) | [min–max] | n |"
        sep = "|---|---:|---|---:|"
        if ref:
            head += " this ÷ first row |" if self.growth else " aioigd ÷ this |"
            sep += "---:|"
        if floor:
            head += " × floor |"
            sep += "---:|"
        head += " notes |"
        sep += "---|"
        lines = [f"**{self.title}**", "", head, sep]
        for r in self.rows:
            xs = stats[r.key]
            m = med(xs)
            rng = f"[{fmt(min(xs))}–{fmt(max(xs))}]" if xs else "—"
            label = f"**{r.label}**" if r.ref else r.label
            line = f"| {label} | {fmt(m)} | {rng} | {len(xs)} |"
            if ref and self.growth:
                line += f" {m / ref_med:.2f} |" if xs else " — |"
            elif ref:
                line += " — |" if r.ref or not xs else f" {ref_med / m:.2f} |"
            if floor:
                line += f" {m / floor_med:.2f} |" if xs and floor_med else " — |"
            note = r.note if xs else f"{r.note} — no samples (see Errors below)".lstrip(" —")
            lines.append(line + f" {note} |")
        direction = "higher is better" if self.higher_is_better else "lower is better"
        ratio_note = "> 1: aioigd higher" if self.higher_is_better else "< 1: aioigd faster"
        ratio_note = "" if self.growth or not ref else f"; aioigd ÷ this {ratio_note}"
        parts = [direction + ratio_note, self.footnote]
        lines += ["", "_" + ". ".join(p for p in parts if p) + "_"]
        return "\n".join(lines)


def derive(col: Collector, bulk_n: int) -> None:
    """Series computed from others: bulk rates and per-action connections, combined rows."""
    for prefix in ("aioigd-bulk", "miniupnpc-bulk", "aup-bulk", "floor-bulk"):
        totals = col.samples(f"{prefix}/total")
        col.series[f"{prefix}/rate"] = [2 * bulk_n / (t / 1000) for t in totals]
        for item in col.info.get(prefix, []):
            if item.get("actions"):
                col.series[f"{prefix}/conns"].append(item["active_opens"] / item["actions"])
    for prefix in ("aioigd", "miniupnpc", "aup", "floor"):
        maps, dels = col.samples(f"{prefix}/map"), col.samples(f"{prefix}/delete")
        col.series[f"{prefix}/mapdel"] = [a + b for a, b in zip(maps, dels, strict=False)]
    for prefix in ("aioigd",):
        maps, dels = col.samples(f"{prefix}/raw_map"), col.samples(f"{prefix}/raw_delete")
        raw = zip(maps, dels, strict=False)
        col.series[f"{prefix}/raw_mapdel"] = [a + b for a, b in raw]
    maps, dels = col.samples("floor/map_aiohttp"), col.samples("floor/delete_aiohttp")
    col.series["floor/mapdel_aiohttp"] = [a + b for a, b in zip(maps, dels, strict=False)]
    busy = [f"{c}-busy{n}" for c in ("aioigd", "miniupnpc") for n in BUSY_SIZES]
    for prefix in ("aioigd-seed", "miniupnpc-seed", "aup-seed", *busy):
        col.series[f"{prefix}/requests"] = [float(x) for x in col.info_values(prefix, "requests")]
        col.series[f"{prefix}/opens"] = [float(x) for x in col.info_values(prefix, "active_opens")]
    # Discovery floor: unicast M-SEARCH answer + one description fetch (medians combined).
    u, d = col.samples("floor/unicast"), col.samples("floor/desc")
    if u and d:
        col.series["floor/discovery"] = [med(u) + med(d)]
    # upnpc -s minus upnpc -u URL -s: the discovery part of the CLI.
    s, us = col.samples("cold/upnpc -s"), col.samples("cold/upnpc -u URL -s")
    col.series["cold/upnpc-discovery"] = [x - med(us) for x in s] if us else []


def tables(col: Collector, plan: Plan) -> list[tuple[str, list[Table]]]:
    n = plan.bulk_n
    aup = "async-upnp-client"
    f1 = Table(
        "Discovery → usable gateway (description parsed, control URL known)",
        "ms",
        [
            Row("aioigd `discover()`", "aioigd/discover", "returns on the first answer", ref=True),
            Row("miniupnpc `discover()` + `selectigd()`", "miniupnpc/discover",
                "waits ≥ 1000 ms (discoverdelay minimum)"),
            Row(f"{aup} `IgdDevice.async_search()` (default)", "aup/discover_default",
                "sleeps its whole timeout (4 s), + description and 5 SCPDs"),
            Row(f"{aup} `async_search(timeout=1)`", "aup/discover_t1", "documented minimum"),
            Row(f"{aup} hand-written `SsdpSearchListener` first answer", "aup/discover_listener",
                "not the library's API: custom code"),
            Row("`upnpc -s` minus `upnpc -u URL -s` (CLI)", "cold/upnpc-discovery",
                "fixed 2000 ms wait"),
            Row("floor: unicast M-SEARCH answer + description GET", "floor/discovery",
                "sum of the two medians below", floor=True),
        ],
    )  # fmt: skip
    f1b = Table(
        "Discovery floor parts",
        "ms",
        [
            Row("unicast M-SEARCH → first answer", "floor/unicast", "miniupnpd's fixed 50 ms"),
            Row("multicast M-SEARCH → first answer", "floor/multicast"),
            Row("GET rootDesc.xml, fresh TCP", "floor/desc"),
            Row("`upnpc -s` whole process", "cold/upnpc -s"),
            Row("`upnpc -u URL -s` whole process", "cold/upnpc -u URL -s"),
        ],
    )
    f2 = Table(
        "One GetExternalIPAddress on a known gateway (per call)",
        "ms",
        [
            Row("aioigd `get_external_ip_address()`", "aioigd/extip", ref=True),
            Row("miniupnpc `externalipaddress()` (C)", "miniupnpc/extip"),
            Row(f"{aup} (`AiohttpRequester`, default)", "aup/extip"),
            Row(f"{aup} (`AiohttpSessionRequester`)", "aup/extip_session"),
            Row("floor: raw POST over a fresh TCP socket", "floor/extip", floor=True),
            Row(
                "floor, asyncio: raw POST over `asyncio.open_connection`",
                "floor/extip_asyncio",
                "best case for any asyncio client",
            ),
            Row(
                "floor, aiohttp: the same POST over one tuned `ClientSession`",
                "floor/extip_aiohttp",
                "what aiohttp alone costs; no SOAP, no XML",
            ),
        ],
        footnote="miniupnpd closes every connection: 1 TCP connect per call for everyone",
    )
    f3 = Table(
        "One map (add + verify) and one delete, known gateway: map + delete",
        "ms",
        [
            Row("aioigd `PortMapper.map_port` + `delete_port_mapping` (table cached)",
                "aioigd/mapdel", "map_port = ExtIP + Add + GetSpecific", ref=True),
            Row("aioigd raw `add_port_mapping` + `get_specific…` + `delete…`",
                "aioigd/raw_mapdel", "same 3 actions as the peers"),
            Row("miniupnpc add + getspecific + delete (C)", "miniupnpc/mapdel"),
            Row(f"{aup} add + get_specific + delete", "aup/mapdel"),
            Row("floor: the same 3 raw POSTs", "floor/mapdel", floor=True),
            Row("floor, aiohttp: the same 3 POSTs over one tuned `ClientSession`",
                "floor/mapdel_aiohttp", "what aiohttp alone costs"),
        ],
    )  # fmt: skip
    f3b = Table(
        "Map (add + verify) alone",
        "ms",
        [
            Row("aioigd `map_port` (table cached)", "aioigd/map", ref=True),
            Row("aioigd `map_port`, first on a fresh Gateway (table enumerated)",
                "aioigd/map_first", "+ 2 GetListOfPortMappings"),
            Row("aioigd raw add + verify", "aioigd/raw_map"),
            Row("miniupnpc add + verify", "miniupnpc/map"),
            Row(f"{aup} add + verify", "aup/map"),
            Row("floor add + verify", "floor/map", floor=True),
            Row("floor, aiohttp: add + verify", "floor/map_aiohttp"),
        ],
    )  # fmt: skip
    f3c = Table(
        "Delete alone",
        "ms",
        [
            Row("aioigd `delete_port_mapping`", "aioigd/delete", ref=True),
            Row("miniupnpc delete", "miniupnpc/delete"),
            Row(f"{aup} delete", "aup/delete"),
            Row("floor delete", "floor/delete", floor=True),
            Row("floor, aiohttp: delete", "floor/delete_aiohttp"),
        ],
    )
    bulk_rows = [
        ("aioigd `add_port_mapping`/`delete_port_mapping`", "aioigd-bulk"),
        ("miniupnpc (C)", "miniupnpc-bulk"),
        (aup, "aup-bulk"),
        ("floor: raw sockets", "floor-bulk"),
    ]
    f4 = Table(
        f"{n} adds then {n} deletes, sequential: total time",
        "s",
        [Row(lbl, f"{p}/total", ref=p.startswith("aioigd"), floor=p.startswith("floor"))
         for lbl, p in bulk_rows],
        scale=1 / 1000,
        footnote="the server dominates: nftables cost grows with the table",
    )  # fmt: skip
    f4b = Table(
        f"{n} + {n}: mappings per second (actions / total)",
        "actions/s",
        [Row(lbl, f"{p}/rate", ref=p.startswith("aioigd"), floor=p.startswith("floor"))
         for lbl, p in bulk_rows],
        higher_is_better=True,
    )  # fmt: skip
    f4c = Table(
        "TCP connections opened per action (kernel ActiveOpens in the client namespace)",
        "conns",
        [Row(lbl, f"{p}/conns", ref=p.startswith("aioigd")) for lbl, p in bulk_rows],
        footnote="miniupnpd answers `Connection: close`, so 1.0 is the minimum",
    )
    f5 = Table(
        f"Whole seed flow (ext IP + table + add + verify) on a router holding {plan.prefill_n} "
        "mappings",
        "ms",
        [
            Row("aioigd `PortMapper.map_port` on a fresh Gateway", "aioigd-seed/seed",
                "v2: GetListOfPortMappings TCP+UDP", ref=True),
            Row("miniupnpc by hand (GetGeneric… loop until 713)", "miniupnpc-seed/seed"),
            Row(f"{aup} by hand (GetGeneric… loop until 713)", "aup-seed/seed"),
        ],
    )  # fmt: skip
    f5b = Table(
        "Seed flow: SOAP round trips (requests)",
        "requests",
        [
            Row("aioigd", "aioigd-seed/requests", ref=True),
            Row("miniupnpc by hand", "miniupnpc-seed/requests"),
            Row(aup, "aup-seed/requests"),
        ],
    )
    f6 = Table(
        "Multi-layer `MultiLayerMapper(port, layers=N, probe_target=lab.outside_ip).map()`: "
        "layer 1 by discovery, upper layers by traceroute + unicast M-SEARCH",
        "ms",
        [Row(f"{k} layer(s)", f"ml-auto-{k}/map", ref=k == 1) for k in (1, 2, 3, 4)],
        growth=True,
        footnote="target: 4 layers < 4 × 1 layer; no peer can map through stacked NATs",
    )
    f6v = Table(
        "Multi-layer with `via=[LOCATION, ...]` (no SSDP, no traceroute)",
        "ms",
        [Row(f"{k} layer(s)", f"ml-via-{k}/map", ref=k == 1) for k in (1, 2, 3, 4)],
        growth=True,
    )
    f6b = Table(
        "Multi-layer release (outermost first)",
        "ms",
        [Row(f"{k} layer(s), auto", f"ml-auto-{k}/release", ref=k == 1) for k in (1, 2, 3, 4)],
        growth=True,
    )
    cold_rows = [
        ("`python -m aioigd add PORT --gateway URL --json`", "python -m aioigd add"),
        ("`aioigd add …` (console script)", "aioigd add (console script)"),
        ("`upnpc -u URL -a …` (C)", "upnpc -u URL -a"),
        ("miniupnpc one-shot script", "miniupnpc one-shot script"),
        (f"{aup} one-shot script", "async-upnp-client one-shot script"),
        ("`python -c 'import aiohttp'`", "python -c 'import aiohttp'"),
        ("`python -c pass`", "python -c pass"),
    ]
    f7 = Table(
        "Cold process, URL given: description → ext IP → add → verify → exit (wall time)",
        "ms",
        [Row(lbl, f"cold/{k}", ref=i == 0) for i, (lbl, k) in enumerate(cold_rows)],
        footnote=f"aioupnp (≈{AIOUPNP_COLD_MS:.0f} ms in peer-baseline.md) cannot run on 3.11",
    )
    f7b = Table(
        "Cold process: peak RSS (GNU time %M: the command alone)",
        "MB",
        [Row(lbl, f"cold/{k}#rss", ref=i == 0) for i, (lbl, k) in enumerate(cold_rows)],
    )
    f8 = Table(
        "The floor: plain sockets, same requests",
        "ms",
        [
            Row("unicast M-SEARCH → first answer", "floor/unicast"),
            Row("multicast M-SEARCH → first answer", "floor/multicast"),
            Row("GET rootDesc.xml (fresh TCP)", "floor/desc"),
            Row("GetExternalIPAddress POST (fresh TCP)", "floor/extip"),
            Row("AddPortMapping + GetSpecific… (2 POSTs)", "floor/map"),
            Row("DeletePortMapping", "floor/delete"),
            Row(f"{n} adds + {n} deletes", "floor-bulk/total"),
        ],
    )
    return [
        ("1. Discovery", [f1, f1b]),
        ("2. GetExternalIPAddress", [f2]),
        ("3. Map and delete one port", [f3, f3b, f3c]),
        (f"4. {n} adds then {n} deletes", [f4, f4b, f4c]),
        (f"5. Seed flow on a router with {plan.prefill_n} mappings", [f5, f5b]),
        ("6. Multi-layer (aioigd only)", [f6, f6v, f6b]),
        ("7. Cold CLI process", [f7, f7b]),
        ("8. The floor", [f8]),
        ("9. Busy routers: one map on a router holding N mappings", busy_tables(col)),
    ]


def busy_tables(col: Collector) -> list[Table]:
    """Figure 9: time and requests per map against the table size, per client."""
    sizes = [n for n in BUSY_SIZES if col.samples(f"aioigd-busy{n}/seed")]
    time_rows = [
        Row(f"{n:>4} mappings: {who}", key, ref=(n == 0 and who.startswith("cold")))
        for n in sizes
        for who, key in (
            ("cold `aioigd add` (whole process)", f"cold-busy{n}/aioigd add"),
            ("aioigd `PortMapper.map_port`, fresh Gateway", f"aioigd-busy{n}/seed"),
            ("miniupnpc, the seed flow by hand", f"miniupnpc-busy{n}/seed"),
        )
    ]
    request_rows = [
        Row(f"{n:>4} mappings: {who}", f"{who}-busy{n}/requests", ref=(n == 0 and who == "aioigd"))
        for n in sizes
        for who in ("aioigd", "miniupnpc")
    ]
    return [
        Table("Wall time per map", "ms", time_rows, growth=True,
              footnote="ratio: this ÷ a cold `aioigd add` on an empty table"),
        Table("SOAP requests per map", "requests", request_rows, growth=True),
    ]  # fmt: skip


# -- targets ------------------------------------------------------------------------------------


def m_(col: Collector, key: str) -> float:
    return med(col.samples(key))


def verdict(ok: bool, a: float | None = None, b: float | None = None) -> str:
    """met/missed; with both values, a difference under 5 % is flagged as a tie."""
    text = "**met**" if ok else "**missed**"
    if a is not None and b and abs(a / b - 1) < 0.05:
        text += " (within 5 %: a tie within this machine's noise)"
    return text


def incomplete(col: Collector, mode: str) -> str:
    bad = sum(len(col.series.get(f"ml-{mode}-{k}/map_incomplete", [])) for k in (1, 2, 3, 4))
    good = sum(len(col.samples(f"ml-{mode}-{k}/map")) for k in (1, 2, 3, 4))
    if not bad:
        return ""
    icmp = col.info.get("icmp", [])
    limited = sum(c.get("OutRateLimitHost", 0) + c.get("OutRateLimitGlobal", 0) for c in icmp)
    sent = sum(c.get("OutTimeExcds", 0) for c in icmp)
    return (
        f" {bad} of {bad + good} runs ended incomplete and are not timed (reasons under "
        f"Errors). During the figure the routers sent {sent} ICMP time-exceeded and their "
        f"kernels suppressed {limited} ICMP errors by rate limit (Icmp OutRateLimitHost/Global; "
        "Linux default: 1 per second per peer, burst 6): a lost hop makes aioigd's traceroute "
        "skip that router and try the next one, which refuses the mapping (606/718)."
    )


def speed_targets(col: Collector) -> list[str]:
    """Issue 14's targets, each beside the peers and the floor, with its verdict."""
    nan = math.isnan

    def cell(key: str) -> str:
        v = m_(col, key)
        return "—" if nan(v) else fmt(v)

    rows: list[tuple[str, str, str, str, str, str]] = []

    def add(what: str, mine: str, peers: str, floor: str, a: float, limit: float) -> None:
        if nan(a) or nan(limit):
            return
        ok = a <= limit
        rows.append((what, mine, peers, floor, f"≤ {fmt(limit)}", verdict(ok)))

    a, aup, mc = m_(col, "aioigd/extip"), "aup/extip", "miniupnpc/extip"
    add(
        "GetExternalIPAddress per call, aiohttp (ms) ≤ 0.7",
        cell("aioigd/extip"),
        f"async-upnp-client {cell(aup)}, miniupnpc (C) {cell(mc)}",
        f"{cell('floor/extip')} (asyncio {cell('floor/extip_asyncio')}, "
        f"aiohttp {cell('floor/extip_aiohttp')})",
        a,
        0.7,
    )
    add(
        "GetExternalIPAddress per call (ms) ≤ 1.1× the same POST over bare aiohttp",
        cell("aioigd/extip"),
        f"async-upnp-client {cell(aup)}",
        f"aiohttp {cell('floor/extip_aiohttp')}",
        a,
        1.1 * m_(col, "floor/extip_aiohttp"),
    )
    fl = m_(col, "floor/mapdel")
    for prefix, what in (("aioigd", "aiohttp"),):
        add(
            f"Map + delete, the 3 raw actions, {what} (ms) ≤ 1.3× the 3 raw POSTs",
            f"{cell(prefix + '/raw_mapdel')} (`map_port` + delete {cell(prefix + '/mapdel')})",
            f"async-upnp-client {cell('aup/mapdel')}, miniupnpc (C) {cell('miniupnpc/mapdel')}",
            f"{cell('floor/mapdel')} (aiohttp {cell('floor/mapdel_aiohttp')})",
            m_(col, f"{prefix}/raw_mapdel"),
            1.3 * fl,
        )
    add(
        "Map + delete, the 3 raw actions (ms) ≤ 1.1× the same 3 POSTs over bare aiohttp",
        cell("aioigd/raw_mapdel"),
        f"async-upnp-client {cell('aup/mapdel')}",
        f"aiohttp {cell('floor/mapdel_aiohttp')}",
        m_(col, "aioigd/raw_mapdel"),
        1.1 * m_(col, "floor/mapdel_aiohttp"),
    )
    cli, aupc = m_(col, "cold/python -m aioigd add"), "cold/async-upnp-client one-shot script"
    imp_key = "cold/python -c 'import aiohttp'"
    add(
        "Cold `aioigd add --gateway URL` (ms) ≤ 0.75× async-upnp-client",
        f"{cell('cold/python -m aioigd add')} (console script "
        f"{cell('cold/aioigd add (console script)')})",
        f"async-upnp-client {cell(aupc)}, miniupnpc script "
        f"{cell('cold/miniupnpc one-shot script')}, upnpc (C) {cell('cold/upnpc -u URL -a')}",
        f"`python -c pass` {cell('cold/python -c pass')}, `import aiohttp` {cell(imp_key)}",
        cli,
        0.75 * m_(col, aupc),
    )
    rss, imp = "cold/python -m aioigd add#rss", "cold/python -c 'import aiohttp'#rss"
    add(
        "Cold process peak RSS (MB) ≤ 1.1× `import aiohttp` alone",
        cell(rss),
        f"async-upnp-client {cell(aupc + '#rss')}, miniupnpc script "
        f"{cell('cold/miniupnpc one-shot script#rss')}",
        f"`import aiohttp` {cell(imp)}, `python -c pass` {cell('cold/python -c pass#rss')}",
        m_(col, rss),
        1.1 * m_(col, imp),
    )
    add(
        "Discovery → usable gateway (ms) ≤ 1.1× floor",
        cell("aioigd/discover"),
        f"miniupnpc {cell('miniupnpc/discover')}, async-upnp-client listener "
        f"{cell('aup/discover_listener')}",
        cell("floor/discovery"),
        m_(col, "aioigd/discover"),
        1.1 * m_(col, "floor/discovery"),
    )
    add("4 layers (discovery + traceroute) (ms) ≤ 1.3× 1 layer (the lead's item)",
        cell("ml-auto-4/map"), "— (no peer maps through stacked NATs)",
        f"1 layer {cell('ml-auto-1/map')}", m_(col, "ml-auto-4/map"),
        1.3 * m_(col, "ml-auto-1/map"))  # fmt: skip
    if not rows:
        return []
    out = [
        "| target | aioigd | peers | floor | limit | verdict |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]
    return out


#: The multi-layer figure's CPU accounting series (benchmarks/_common.py), in ms per map.
CPU_SERIES = ("client_cpu", "client_wait", "routers_cpu", "routers_wait")


def targets(col: Collector) -> list[str]:
    out: list[str] = []
    nan = math.isnan
    # 9. a cold add at 1,000 mappings within 1.6x the same on an empty table (issue 10).
    empty, full = m_(col, "cold-busy0/aioigd add"), m_(col, "cold-busy1000/aioigd add")
    if not (nan(empty) or nan(full)):
        reqs = col.samples("aioigd-busy1000/requests")
        out.append(
            f"- Cold `aioigd add` at 1,000 mappings within 1.6× the same on an empty table: "
            f"{verdict(full <= 1.6 * empty)} — {fmt(full)} ms vs {fmt(empty)} ms "
            f"({full / empty:.2f}×); `map_port` sends {fmt(med(reqs)) if reqs else '?'} requests "
            f"there, miniupnpc's seed flow {fmt(m_(col, 'miniupnpc-busy1000/requests'))} in "
            f"{fmt(m_(col, 'miniupnpc-busy1000/seed'))} ms."
        )
    # 1. discovery within 2x floor.
    disc, floor = m_(col, "aioigd/discover"), m_(col, "floor/discovery")
    if not (nan(disc) or nan(floor)):
        ok = disc <= 2 * floor
        out.append(
            f"- Discovery within 2× floor: {verdict(ok)} — aioigd {fmt(disc)} ms vs floor "
            f"{fmt(floor)} ms (unicast M-SEARCH answer {fmt(m_(col, 'floor/unicast'))} + "
            f"description {fmt(m_(col, 'floor/desc'))}) = {disc / floor:.2f}× floor "
            f"(limit {fmt(2 * floor)} ms). The rest is miniupnpd's fixed 50 ms SSDP delay, "
            f"which no client can avoid; aioigd returns on the first answer while miniupnpc waits "
            f"{fmt(m_(col, 'miniupnpc/discover'))} ms and async-upnp-client "
            f"{fmt(m_(col, 'aup/discover_default'))} ms."
        )
    # 2. GetExternalIPAddress.
    a, c, s = m_(col, "aioigd/extip"), m_(col, "miniupnpc/extip"), m_(col, "aup/extip")
    fl = m_(col, "floor/extip")
    if not (nan(a) or nan(c)):
        out.append(
            f"- GetExternalIPAddress at least as fast as miniupnpc (C): {verdict(a <= c)} — "
            f"aioigd {fmt(a)} ms vs miniupnpc {fmt(c)} ms "
            + (f"(aioigd slower by {fmt(a - c)} ms, {a / c:.2f}×)" if a > c else "")
            + f"; floor {fmt(fl)} ms, so aioigd's own cost per call is ≈ {fmt(a - fl)} ms "
            "(aiohttp request/response machinery + SOAP build/parse, see "
            "`profiles/aioigd_extip.txt`). The C binding is below even the blocking-socket "
            "Python floor, so no Python client can meet this; the same request over bare "
            f"asyncio streams takes {fmt(m_(col, 'floor/extip_asyncio'))} ms, the realistic "
            "target for aioigd."
        )
    if not (nan(a) or nan(s)):
        out.append(
            f"- GetExternalIPAddress faster than async-upnp-client: {verdict(a < s, a, s)} — "
            f"{fmt(a)} ms vs {fmt(s)} ms ({a / s:.2f}×)."
        )
    # 3. map/unmap.
    am, cm, sm = m_(col, "aioigd/mapdel"), m_(col, "miniupnpc/mapdel"), m_(col, "aup/mapdel")
    araw = m_(col, "aioigd/raw_mapdel")
    reqs = col.info_values("aioigd", "requests_per_map")
    reqs_first = col.info_values("aioigd", "requests_per_map_first")
    if not (nan(am) or nan(cm)):
        out.append(
            f"- Map + unmap at least as fast as miniupnpc (C): {verdict(am <= cm)} — aioigd "
            f"`map_port`+delete {fmt(am)} ms vs miniupnpc {fmt(cm)} ms ({am / cm:.2f}×); "
            f"with the same three raw actions aioigd takes {fmt(araw)} ms ({araw / cm:.2f}×). "
            f"`map_port` sends {int(med(reqs)) if reqs else '?'} requests per map with the table "
            f"cached ({int(med(reqs_first)) if reqs_first else '?'} on a fresh Gateway: the "
            "table and the external IP) where miniupnpc sends 2 (add + verify); the rest is "
            "aiohttp's per-request cost (see `profiles/aioigd_map_port.txt`)."
        )
    if not (nan(am) or nan(sm)):
        out.append(
            f"- Map + unmap faster than async-upnp-client: {verdict(am < sm, am, sm)} — "
            f"{fmt(am)} ms vs {fmt(sm)} ms ({am / sm:.2f}×)."
        )
    # 4. multi-layer.
    for mode, what in (("auto", "discovery + traceroute"), ("via", "via=[LOCATION…]")):
        one, four = m_(col, f"ml-{mode}-1/map"), m_(col, f"ml-{mode}-4/map")
        if nan(one) or nan(four):
            continue
        steps = [m_(col, f"ml-{mode}-{k}/map") for k in (1, 2, 3, 4)]
        inc = [steps[k] - steps[k - 1] for k in (1, 2, 3)]
        out.append(
            f"- 4-layer < 4× 1-layer ({what}): {verdict(four < 4 * one, four, 4 * one)} — "
            f"1 layer {fmt(one)} ms, 4 layers {fmt(four)} ms = {four / one:.2f}× "
            f"(limit {fmt(4 * one)} ms); each extra layer adds {', '.join(fmt(x) for x in inc)} ms"
            + (
                ": every hop is traced and asked for an IGD at once, so the upper layers "
                "pay one shared 50 ms SSDP wait, then description + map_port each."
                if mode == "auto"
                else ": description + map_port per layer, no SSDP."
            )
            + incomplete(col, mode)
        )
    cpu = {k: [m_(col, f"ml-auto-{k}/{x}") for x in CPU_SERIES] for k in (1, 4)}
    if not any(nan(v) for v in (*cpu[1], *cpu[4])):
        (c1, w1, r1, q1), (c4, w4, r4, q4) = cpu[1], cpu[4]
        out.append(
            "- Where the 4-layer time goes, by the scheduler's accounting (`/proc/PID/schedstat`, "
            f"median per map; this machine has {os.cpu_count()} CPUs): 1 layer — the client ran "
            f"{fmt(c1)} ms on a CPU and waited {fmt(w1)} ms for one, the routers ran {fmt(r1)} "
            f"and waited {fmt(q1)}; 4 layers — the client {fmt(c4)} ms, waiting {fmt(w4)}; the "
            f"four miniupnpd {fmt(r4)} ms, waiting {fmt(q4)}. After the shared SSDP wait the "
            "four layers' work runs side by side, and it needs more CPU than the machine has: "
            "the time spent waiting for a CPU is time the 4-layer map could not run."
        )
    # 5. cold CLI.
    cli = m_(col, "cold/python -m aioigd add")
    aupc = m_(col, "cold/async-upnp-client one-shot script")
    if not nan(cli):
        imp = m_(col, "cold/python -c 'import aiohttp'") - m_(col, "cold/python -c pass")
        out.append(
            f"- Cold CLI faster than async-upnp-client (≈{AUP_COLD_BASELINE_MS:.0f} ms in the "
            f"baseline, {fmt(aupc)} ms measured here): {verdict(cli < aupc, cli, aupc)} — "
            f"`python -m aioigd add` {fmt(cli)} ms ({cli / aupc:.2f}×)."
        )
        out.append(
            f"- Cold CLI faster than aioupnp (≈{AIOUPNP_COLD_MS:.0f} ms, peer-baseline, not "
            f"re-measured: it does not run on 3.11): {verdict(cli < AIOUPNP_COLD_MS)} — "
            f"{fmt(cli)} ms"
            + (f", missed by {fmt(cli - AIOUPNP_COLD_MS)} ms" if cli >= AIOUPNP_COLD_MS else "")
            + f". `import aiohttp` alone costs ≈ {fmt(imp)} ms of wall time in a fresh process "
            "here (`python -c 'import aiohttp'` minus `python -c pass`)."
        )
        pas = m_(col, "cold/python -c pass")
        adjusted = cli - pas + BASELINE_PYTHON_START_MS
        out.append(
            f"- The same, net of interpreter start-up: `python -c pass` takes {fmt(pas)} ms on "
            f"this machine (the baseline machine: {BASELINE_PYTHON_START_MS} ms; here `site` "
            "runs .pth hooks of the environment), so aioigd's own cold cost is "
            f"{fmt(cli - pas)} ms vs async-upnp-client {fmt(aupc - pas)} ms and miniupnpc "
            f"{fmt(m_(col, 'cold/miniupnpc one-shot script') - pas)} ms. On the baseline's "
            f"start-up aioigd would take ≈ {fmt(adjusted)} ms vs aioupnp's "
            f"{AIOUPNP_COLD_MS:.0f}: {verdict(adjusted < AIOUPNP_COLD_MS)} even then."
        )
    # 6. import breakdown.
    for key, what in (
        ("importtime", '`python -X importtime -c "import aioigd.cli"`'),
        ("importtime_add", "`python -X importtime -m aioigd add PORT --gateway URL --json`"),
    ):
        for data in col.info.get(key, [])[:1]:
            total = data["total_us"] / 1000
            aiohttp = importtime_cum(data, "aiohttp")
            top = sorted(data["rows"], key=lambda r: r["cum"], reverse=True)[:10]
            share = (
                f"aiohttp {fmt(aiohttp)} ms of it ({100 * aiohttp / total:.0f} %)"
                if aiohttp
                else "aiohttp not imported"
            )
            out.append(
                f"- Import breakdown, {what} (`profiles/importtime.txt`): {fmt(total)} ms of "
                f"imports, {share}. Top 10 cumulative (ms): "
                + ", ".join(f"{r['name']} {r['cum'] / 1000:.1f}" for r in top)
                + "."
            )
    return out


# -- the run ------------------------------------------------------------------------------------


def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def deb(package: str) -> str:
    return sh("dpkg-query", "-W", "-f=${Version}", package)


def machine() -> list[str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    head = sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD")
    dirty = (
        " (+ uncommitted changes)" if sh("git", "-C", str(REPO), "status", "--porcelain") else ""
    )
    return [
        f"- date: {sh('date')}",
        f"- machine: nproc {sh('nproc')}, CPU {cpu}, kernel {platform.release()} "
        f"({platform.machine()}), load average at start {os.getloadavg()[0]:.2f}",
        f"- Python {platform.python_version()} ({PY})",
        f"- miniupnpd: Debian miniupnpd-nftables {deb('miniupnpd-nftables')}, upnpc: Debian "
        f"miniupnpc {deb('miniupnpc')}",
        f"- aioigd {version('aioigd')} at {head}{dirty}, aiohttp {version('aiohttp')}; "
        f"peers: miniupnpc (PyPI) {version('miniupnpc')}, async-upnp-client "
        f"{version('async-upnp-client')}; aioupnp skipped (its 0.0.18 crashes on Python ≥ 3.10: "
        "`wait_for(loop=...)`)",
    ]


def separate_runs(paths: Sequence[str]) -> list[str]:
    """Summaries of separate runs (benchmarks/soak.py, benchmarks/lossy.py), verbatim."""
    out: list[str] = []
    for name in paths:
        lines = [ln for ln in Path(name).read_text().splitlines() if ln.startswith("{")]
        for line in lines:
            item = json.loads(line)
            if "summary" in item or "tree" in item:
                item.pop("seconds", None)
                out.append(f"- `{Path(name).name}`: `{json.dumps(item, ensure_ascii=False)}`")
    return ["### Separate runs (not timed here)", "", *out, ""] if out else []


def write_results(path: Path, header: list[str], sections: list[tuple[str, list[Table]]],
                  col: Collector, plan: Plan, elapsed: float,
                  extra: Sequence[str] = ()) -> str:  # fmt: skip
    out = ["# aioigd benchmark results", "", *header, ""]
    out += [
        f"Run: `python3 benchmarks/run.py{' --quick' if plan.quick else ''} --reps {plan.reps}` "
        f"in {elapsed:.0f} s. Every client talks to the same miniupnpd 2.3.1 in the "
        "network-namespace lab (`tests/netlab.py`), from the client namespace, in the same run; "
        "each figure runs every client once per repetition, the order rotated each time. "
        "Cells: median [min–max] over all samples in ms unless stated; **aioigd ÷ this** < 1 "
        "means aioigd is faster; × floor = this ÷ the plain-socket figure.",
        "",
        "## Issue 14 targets (one run: aioigd beside the peers and the floor)",
        "",
        *speed_targets(col),
        "",
        *extra,
        "## Targets",
        "",
        *targets(col),
        "",
    ]
    for name, tbls in sections:
        if not any(col.samples(r.key) for t in tbls for r in t.rows):
            continue  # figure not run (--only)
        out += [f"## {name}", ""]
        for t in tbls:
            out += [t.render(col), ""]
    errors = {k: v for k, v in col.errors.items() if v}
    if errors:
        out += ["## Errors and warnings during the run", ""]
        out += [f"- `{k}`: {v[0][:300]} (×{len(v)})" for k, v in errors.items()]
        out += [""]
    out += [
        "## Profiles",
        "",
        '- `profiles/importtime.txt`: `python -X importtime` of `-c "import aioigd.cli"` and of a '
        "whole `-m aioigd add PORT --gateway URL --json`, top 10 by cumulative and self time.",
        "- `profiles/aioigd_discover.txt`: cProfile of 10 `discover()` calls.",
        "- `profiles/aioigd_extip.txt`: cProfile of 200 `get_external_ip_address()` calls.",
        "- `profiles/aioigd_map_port.txt`: cProfile of 20 `PortMapper.map_port` + delete.",
        "- `profiles/cli_add_cprofile.txt`: cProfile of one cold `python -m aioigd add`.",
        "- `profiles/discover_timeline.txt`: one `discover()` (the median of 9) as a timeline: "
        "M-SEARCHes sent, answers received, the description fetch.",
        "- `profiles/multilayer_timeline.txt`: one 4-layer `map()` (the median of 7) as a "
        "timeline: every request's start, end and gateway.",
        f"- `{path.with_suffix('.json').name}`: every raw sample of this run.",
        "",
    ]
    text = "\n".join(out)
    path.write_text(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run: 2 reps, fewer samples")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 5)")
    ap.add_argument("--only", default="", help="comma-separated figure numbers, e.g. 2,3")
    ap.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--include", action="append", default=[],
                    help="a soak.py or lossy.py output to quote (repeatable)")  # fmt: skip
    a = ap.parse_args(argv)
    reason = lab_unavailable_reason()
    if reason:
        print(f"benchmarks need the namespace lab: {reason}", file=sys.stderr)
        return 2
    reps = a.reps or (2 if a.quick else 5)
    plan = Plan(reps=reps, quick=a.quick, bulk_n=50 if a.quick else 200)
    only = {int(x) for x in a.only.split(",") if x.strip()} or set(range(1, 10))
    header = machine()
    col = Collector()
    t0 = time.monotonic()
    one_layer: list[tuple[int, Callable[[Bench, Plan, str], None]]] = [
        (1, fig_discovery),
        (2, fig_extip),
        (3, fig_mapdel),
        (4, fig_bulk),
        (5, fig_seed),
    ]
    try:
        if only & {1, 2, 3, 4, 5, 7, 8, 9}:
            log("building the 1-router lab")
            with Lab(layers=1) as lab:
                b = Bench(lab, col)
                r1 = lab.routers[0]
                b.check_router(1, r1.location, "start")
                for num, fig in one_layer:
                    if num in only:
                        fig(b, plan, r1.location)
                        b.check_router(1, r1.location, f"figure {num}")
                if 9 in only:
                    fig_busy(b, plan, r1.location)
                    b.check_router(1, r1.location, "figure 9")
                if 7 in only:
                    fig_cold(b, plan, r1.location, lab.client_ip)
                    b.check_router(1, r1.location, "figure 7")
                    log("profiles")
                    profiles(b, r1.location, col, Path(a.out).parent / "profiles")
                    b.check_router(1, r1.location, "profiles")
        if 6 in only:
            log("building the 4-router lab")
            with Lab(layers=4) as lab:
                fig_multilayer(Bench(lab, col), plan, lab)
                prof_dir = Path(a.out).parent / "profiles"
                prof_dir.mkdir(exist_ok=True)
                timeline = ["timeline", "--layers", "4", "--n", "7", "--gap", "1.2"]
                timeline += ["--probe-target", lab.outside_ip, "--port", "46900"]
                timeline += ["--profile", str(prof_dir / "multilayer_timeline.txt")]
                Bench(lab, col).run_job(Job("profile-ml-timeline", "worker_aioigd.py", timeline))
    except LabError as exc:
        print(f"lab failure: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - t0
    header.append(
        f"- load average at the end: {os.getloadavg()[0]:.2f} (other work may share the machine)"
    )
    derive(col, plan.bulk_n)
    sections = tables(col, plan)
    out = Path(a.out)
    text = write_results(out, header, sections, col, plan, elapsed, separate_runs(a.include))
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "series": col.series,
                "info": {k: v for k, v in col.info.items() if k != "importtime"},
                "errors": col.errors,
            },
            indent=1,
        )
    )
    print(text)
    log(f"wrote {out} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
