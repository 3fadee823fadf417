"""PCP against UPnP on the same real miniupnpd, and a mixed 4-layer map against all-UPnP.

``sudo python3 benchmarks/pcp.py [--runs 200] [--layer-runs 20] [--out PATH]``

Figure P1 (one router serving UPnP IGD and PCP, one table): inside the client namespace,
one process times, interleaved, per iteration

- ``upnp``: ``PortMapper.map_port`` + ``PortMapper.release`` on a known gateway (the seed's
  flow: external IP, wanted port checked, AddPortMapping, verification; then the delete),
- ``pcp``: ``PmpMapper.map_port`` + ``PmpMapper.release`` (one MAP each way, lifetime 0 to
  delete),
- ``floor``: one raw PCP ANNOUNCE round trip on a plain UDP socket (nothing less can ask the
  router anything),
- ``raw_map``: the same MAP and delete as two blocking sendto/recv pairs on a plain socket:
  what aioigd's PCP path costs beyond the router's own work (it adds a rule to nftables).

Figure P2: ``MultiLayerMapper(layers=4).map()`` (then ``release()``, untimed) on a lab whose
layers 2 and 4 speak only PCP against an all-UPnP lab, interleaved in blocks, ``--gap`` s
apart (the routers' ICMP rate limit would otherwise slow the traceroute of the next run).

Medians and ratios are printed and written as JSON; nothing is sent from the root
namespace. Not part of the tests: results vary with the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import textwrap
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tests.netlab import Lab, lab_unavailable_reason  # noqa: E402

_ONE_ROUTER = textwrap.dedent(
    """
    import asyncio, json, socket, sys, time
    from aioigd import Gateway, PortMapper
    from aioigd.pmp import PcpClient
    from aioigd.pmpmapper import PmpMapper
    from aioigd.proto import pcp
    from aioigd.models import Transport

    LOCATION, HOST, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])

    async def main():
        out = {"upnp": [], "pcp": [], "floor": [], "raw_map": []}
        gw = await Gateway.from_location(LOCATION)
        upnp = PortMapper(gw)
        pmp = PmpMapper(PcpClient(HOST))
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.connect((HOST, 5351))
        raw.settimeout(2.0)
        me = raw.getsockname()[0]
        announce = pcp.encode_announce(me)
        nonce = b"benchmark-01"
        add = pcp.encode_map(nonce=nonce, protocol=Transport.TCP, internal_port=47002,
                             lifetime=600, client_ip=me, suggested_port=47002)
        delete = pcp.encode_map(nonce=nonce, protocol=Transport.TCP, internal_port=47002,
                                lifetime=0, client_ip=me)
        for _ in range(5):  # warm up: connections, sockets, code paths
            await upnp.release(await upnp.map_port(47000))
            await pmp.release(await pmp.map_port(47001))
        before = gw.session.stats.requests
        for i in range(RUNS):
            t = time.perf_counter()
            m = await upnp.map_port(47000)
            await upnp.release(m)
            out["upnp"].append(time.perf_counter() - t)
            t = time.perf_counter()
            m = await pmp.map_port(47001)
            await pmp.release(m)
            out["pcp"].append(time.perf_counter() - t)
            t = time.perf_counter()
            raw.send(announce)
            raw.recv(1100)
            out["floor"].append(time.perf_counter() - t)
            t = time.perf_counter()
            raw.send(add)
            raw.recv(1100)
            raw.send(delete)
            raw.recv(1100)
            out["raw_map"].append(time.perf_counter() - t)
        out["upnp_requests"] = (gw.session.stats.requests - before) / RUNS
        await upnp.close()
        await pmp.close()
        await gw.close()
        raw.close()
        print(json.dumps(out))

    asyncio.run(main())
    """
)

_LAYERS = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from aioigd.multilayer import MultiLayerMapper

    TARGET, RUNS, GAP = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

    async def main():
        times, mechanisms = [], None
        for i in range(RUNS):
            m = MultiLayerMapper(47100 + i, layers=4, probe_target=TARGET, lease=600)
            t = time.perf_counter()
            result = await m.map()
            times.append(time.perf_counter() - t)
            assert result.complete, result
            mechanisms = [x.mechanism for x in result.layers]
            assert await m.release() == []
            await asyncio.sleep(GAP)
        print(json.dumps({"times": times, "mechanisms": mechanisms}))

    asyncio.run(main())
    """
)


def _worker(lab: Lab, script: str, *args: str) -> dict[str, Any]:
    proc = lab.run(
        lab.client_ns, "env", "-C", "/tmp", f"PYTHONPATH={REPO}", sys.executable, "-c", script,
        *args, timeout=900,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--layer-runs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=BENCH / "RESULTS-pcp.json")
    ap.add_argument(
        "--gap",
        type=float,
        default=3.0,
        help="seconds between 4-layer runs: routers rate-limit ICMP (time exceeded, port "
        "unreachable) to about one a second per destination, and back-to-back runs would "
        "measure that limit",
    )
    a = ap.parse_args()
    reason = lab_unavailable_reason()
    if reason:
        print(f"needs the namespace lab: {reason}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {}
    with Lab(layers=1) as lab:
        r1 = lab.router(1)
        one = _worker(lab, _ONE_ROUTER, r1.location, r1.lan_ip, str(a.runs))
    floor = _ms(one["floor"])
    report["P1"] = {
        "runs": a.runs,
        "upnp_map_delete_ms": _ms(one["upnp"]),
        "pcp_map_delete_ms": _ms(one["pcp"]),
        "pcp_round_trip_floor_ms": floor,
        "pcp_vs_upnp": round(_ms(one["pcp"]) / _ms(one["upnp"]), 3),
        "pcp_vs_floor": round(_ms(one["pcp"]) / floor, 2),
        "raw_map_delete_ms": _ms(one["raw_map"]),
        "pcp_vs_raw_map_delete": round(_ms(one["pcp"]) / _ms(one["raw_map"]), 3),
        "upnp_requests_per_run": one["upnp_requests"],
        "pcp_datagrams_per_run": 2,
    }
    # Two 4-router labs side by side (their namespaces differ), runs interleaved in blocks.
    mixed_t: list[float] = []
    upnp_t: list[float] = []
    with Lab(layers=4, upnp_off=(2, 4)) as mixed, Lab(layers=4) as plain:
        blocks = max(1, a.layer_runs // 5)
        per = max(1, a.layer_runs // blocks)
        for _ in range(blocks):
            m = _worker(mixed, _LAYERS, mixed.outside_ip, str(per), str(a.gap))
            u = _worker(plain, _LAYERS, plain.outside_ip, str(per), str(a.gap))
            mixed_t += m["times"]
            upnp_t += u["times"]
    report["P2"] = {
        "runs": len(mixed_t),
        "mixed_mechanisms": m["mechanisms"],
        "all_upnp_mechanisms": u["mechanisms"],
        "mixed_4_layers_ms": _ms(mixed_t),
        "all_upnp_4_layers_ms": _ms(upnp_t),
        "mixed_vs_all_upnp": round(_ms(mixed_t) / _ms(upnp_t), 3),
    }
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
