"""Cold `aioigd add` over a lossy link to real miniupnpd: how many runs fail, and leak.

``sudo python3 benchmarks/lossy.py [--runs 20] [--loss 20] [--compare PATH]`` builds a 1-router
lab, drops ``--loss`` % of the TCP segments to and from miniupnpd's HTTP port in both
directions (nftables ``numgen random`` in the router's namespace: netem is not available on
these kernels), runs ``aioigd add`` ``--runs`` times, and after each run counts what is left
on the router (then removes it, so every run starts from the same table). ``--compare PATH``
runs the aioigd found at PATH (e.g. a ``git worktree`` of an older commit) the same way,
interleaved. Nothing is sent from the root namespace. Not part of the tests: results vary.

``--ssdp-loss 80`` instead drops that share of the SSDP datagrams to and from the router
(UDP 1900, both directions) and runs discovery: ``aioigd external-ip`` (3 s window) beside
``upnpc -s`` (its 2 s window), interleaved; a run succeeds when the command exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tests.netlab import NO_MINISSDPD, Lab, lab_unavailable_reason  # noqa: E402

PORT = 47000


def add_loss(lab: Lab, percent: int) -> None:
    r1 = lab.router(1)
    rules = f"""
table inet lossy {{
    chain in {{
        type filter hook input priority -10; policy accept;
        tcp dport {r1.http_port} numgen random mod 100 < {percent} drop
    }}
    chain out {{
        type filter hook output priority -10; policy accept;
        tcp sport {r1.http_port} numgen random mod 100 < {percent} drop
    }}
}}
"""
    lab.run(r1.ns, "nft", "-f", "-", input=rules)


def add_ssdp_loss(lab: Lab, percent: int) -> None:
    rules = f"""
table inet lossy {{
    chain in {{
        type filter hook input priority -10; policy accept;
        udp dport 1900 numgen random mod 100 < {percent} drop
    }}
    chain out {{
        type filter hook output priority -10; policy accept;
        udp sport 1900 numgen random mod 100 < {percent} drop
    }}
}}
"""
    lab.run(lab.router(1).ns, "nft", "-f", "-", input=rules)


def discovery_run(lab: Lab, name: str, path: Path) -> dict[str, object]:
    if name == "upnpc":
        cmd = ["upnpc", "-p", NO_MINISSDPD, "-s"]
    else:
        cmd = ["env", "-C", "/tmp", f"PYTHONPATH={path}", sys.executable, "-m", "aioigd",
               "external-ip", "--json"]  # fmt: skip
    t0 = time.monotonic()
    proc = lab.run(lab.client_ns, *cmd, check=False, timeout=60)
    took = time.monotonic() - t0
    ok = proc.returncode == 0 and (name != "upnpc" or "ExternalIPAddress = " in proc.stdout)
    return {"rc": 0 if ok else proc.returncode or 1, "seconds": round(took, 2), "left": False,
            "error": "" if ok else (proc.stderr or proc.stdout).strip()[-160:]}  # fmt: skip


def one_run(lab: Lab, path: Path, port: int) -> dict[str, object]:
    # From /tmp, so that PYTHONPATH (not the working directory) says which aioigd runs.
    cmd = ["env", "-C", "/tmp", f"PYTHONPATH={path}", sys.executable, "-m", "aioigd", "add",
           str(port), "--gateway", lab.router(1).location, "--json", "--lease", "600"]  # fmt: skip
    t0 = time.monotonic()
    proc = lab.run(lab.client_ns, *cmd, check=False, timeout=60)
    took = time.monotonic() - t0
    lab.run(lab.router(1).ns, "nft", "delete", "table", "inet", "lossy")  # check loss-free
    left = [m for m in lab.upnpc_mappings(1) if m[1] == port]
    return {"rc": proc.returncode, "seconds": round(took, 2), "left": bool(left),
            "error": proc.stderr.strip()[-160:] if proc.returncode else ""}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--loss", type=int, default=20)
    ap.add_argument("--compare", type=Path, help="another aioigd checkout to run alike")
    ap.add_argument("--ssdp-loss", type=int, default=0, help="discovery under this SSDP loss")
    a = ap.parse_args()
    reason = lab_unavailable_reason()
    if reason:
        print(f"needs the namespace lab: {reason}", file=sys.stderr)
        return 2
    trees = {"this": REPO} | ({"compare": a.compare.resolve()} if a.compare else {})
    if a.ssdp_loss:
        trees["upnpc"] = Path("/usr/bin/upnpc")
    results: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    with Lab(layers=1) as lab:
        if a.ssdp_loss:
            add_ssdp_loss(lab, a.ssdp_loss)
        for _ in range(a.runs if a.ssdp_loss else 0):
            for name, path in trees.items():
                results[name].append(discovery_run(lab, name, path))
        for i in range(0 if a.ssdp_loss else a.runs):
            for name, path in trees.items():
                add_loss(lab, a.loss)
                results[name].append(one_run(lab, path, PORT + i))
                # Remove what the run left (loss-free): a restart wipes the table.
                if results[name][-1]["left"] or results[name][-1]["rc"] == 0:
                    lab.restart_miniupnpd(1)
    for name, runs in results.items():
        failed = [r for r in runs if r["rc"] != 0]
        leaked = [r for r in failed if r["left"]]
        secs = sorted(float(str(r["seconds"])) for r in runs)
        print(json.dumps({
            "tree": name, "path": str(trees[name]), "runs": len(runs),
            "loss": f"SSDP {a.ssdp_loss} %" if a.ssdp_loss else f"TCP {a.loss} %",
            "failed": len(failed), "failed_and_left_a_mapping": len(leaked),
            "median_s": secs[len(secs) // 2], "max_s": secs[-1], "seconds": secs,
            "errors": [r["error"] for r in failed][:5],
        }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
