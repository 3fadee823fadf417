"""aioigd side of the benchmarks; run inside the lab's client namespace by run.py.

``python benchmarks/worker_aioigd.py FIGURE --location URL [...]`` prints one JSON line.
Figures: discover, extip, mapdel, bulk, seed, multilayer, timeline (``--layers 0``: one
discover(); N: one multi-layer map; written to ``--profile``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import sys
from pathlib import Path
from typing import Any

from _common import BENCH_DESCRIPTION, client_cpu, emit, now, routers_cpu, tcp_active_opens

import aioigd
from aioigd import Gateway, PortMapper
from aioigd.multilayer import MultiLayerMapper


async def fig_discover(a: argparse.Namespace) -> None:
    samples: list[float] = []
    requests = []
    prof = cProfile.Profile() if a.profile else None
    for _ in range(a.n):
        if prof:
            prof.enable()
        t0 = now()
        gw = await aioigd.discover()
        samples.append(now() - t0)
        if prof:
            prof.disable()
        assert gw.service.control_url
        requests.append(gw.session.stats.requests)
        await gw.close()
        await asyncio.sleep(a.gap)
    if prof:
        from _common import write_profile

        write_profile(prof, a.profile, f"aioigd: {a.n} x discover() (wall includes waiting)")
    emit({"discover": samples}, requests=requests)


async def fig_extip(a: argparse.Namespace) -> None:
    async with await Gateway.from_location(a.location) as gw:
        conns0 = gw.session.stats.connections
        opens0 = tcp_active_opens()
        samples = []
        prof = cProfile.Profile() if a.profile else None
        for _ in range(a.n):
            if prof:
                prof.enable()
            t0 = now()
            await gw.get_external_ip_address()
            samples.append(now() - t0)
            if prof:
                prof.disable()
        opens = tcp_active_opens() - opens0
        conns = gw.session.stats.connections - conns0
    if prof:
        from _common import write_profile

        write_profile(prof, a.profile, f"aioigd: {a.n} x get_external_ip_address()")
    emit({"extip": samples}, conns_per_call=conns / a.n, opens_per_call=opens / a.n)


async def fig_mapdel(a: argparse.Namespace) -> None:
    """PortMapper.map_port + delete_port_mapping; and the same raw actions as miniupnpc."""
    series: dict[str, list[float]] = {"map_first": [], "map": [], "delete": [], "raw_map": []}
    series["raw_delete"] = []
    reqs_first = reqs = 0
    prof = cProfile.Profile() if a.profile else None
    async with await Gateway.from_location(a.location) as gw:
        client = gw.local_address()
        mapper = PortMapper(gw)  # one mapper: its table cache is what the later maps reuse
        for i in range(a.n):
            r0 = gw.session.stats.requests
            if prof and i:
                prof.enable()
            t0 = now()
            m = await mapper.map_port(a.port, description=BENCH_DESCRIPTION)
            t1 = now()
            await gw.delete_port_mapping(m.external_port, "TCP")
            t2 = now()
            if prof:
                prof.disable()
            if i == 0:
                series["map_first"].append(t1 - t0)
                reqs_first = gw.session.stats.requests - r0 - 1
            else:
                series["map"].append(t1 - t0)
                reqs = gw.session.stats.requests - r0 - 1
            series["delete"].append(t2 - t1)
        for _ in range(a.n):
            t0 = now()
            await gw.add_port_mapping(
                a.port,
                protocol="TCP",
                internal_port=a.port,
                internal_client=client,
                description=BENCH_DESCRIPTION,
                lease=3600,
            )
            await gw.get_specific_port_mapping_entry(a.port, "TCP")
            t1 = now()
            await gw.delete_port_mapping(a.port, "TCP")
            series["raw_map"].append(t1 - t0)
            series["raw_delete"].append(now() - t1)
    if prof:
        from _common import write_profile

        write_profile(prof, a.profile, f"aioigd: {a.n - 1} x PortMapper.map_port + delete")
    emit(series, requests_per_map_first=reqs_first, requests_per_map=reqs)


async def fig_bulk(a: argparse.Namespace) -> None:
    ports = range(a.port, a.port + a.n)
    async with await Gateway.from_location(a.location) as gw:
        client = gw.local_address()
        c0, r0, opens0 = gw.session.stats.connections, gw.session.stats.requests, tcp_active_opens()
        t0 = now()
        for port in ports:
            await gw.add_port_mapping(
                port,
                protocol="TCP",
                internal_port=port,
                internal_client=client,
                description=BENCH_DESCRIPTION,
                lease=3600,
            )
        t1 = now()
        for port in ports:
            await gw.delete_port_mapping(port, "TCP")
        t2 = now()
        info = {
            "active_opens": tcp_active_opens() - opens0,
            "session_connections": gw.session.stats.connections - c0,
            "requests": gw.session.stats.requests - r0,
            "actions": 2 * a.n,
        }
    emit({"add": [t1 - t0], "delete": [t2 - t1], "total": [t2 - t0]}, **info)


async def fig_seed(a: argparse.Namespace) -> None:
    """The whole seed flow on a router that already holds mappings (fresh table cache)."""
    samples, requests, opens = [], [], []
    for _ in range(a.n):
        async with await Gateway.from_location(a.location) as gw:
            r0, o0 = gw.session.stats.requests, tcp_active_opens()
            t0 = now()
            m = await PortMapper(gw).map_port(a.port, description=BENCH_DESCRIPTION)
            samples.append(now() - t0)
            requests.append(gw.session.stats.requests - r0)
            opens.append(tcp_active_opens() - o0)
            await gw.delete_port_mapping(m.external_port, "TCP")
    emit({"seed": samples}, requests=requests, active_opens=opens)


async def fig_multilayer(a: argparse.Namespace) -> None:
    """Time map() and release(); an incomplete result is kept apart, with its reason."""
    via = [v for v in a.via.split(",") if v] if a.via else []
    series: dict[str, list[float]] = {"map": [], "release": [], "map_incomplete": []}
    requests, reasons = [], []
    for i in range(a.n):
        mapper = MultiLayerMapper(
            a.port + i,
            layers=a.layers,
            via=via,
            probe_target=a.probe_target,
            description=BENCH_DESCRIPTION,
        )
        # Read outside the client's own accounting: scanning /proc is not the map's work.
        routers0, client0 = routers_cpu(), client_cpu()
        t0 = now()
        result = await mapper.map()
        t1 = now()
        client1, routers1 = client_cpu(), routers_cpu()
        requests.append(sum(g.session.stats.requests for g in mapper.gateways))
        t2 = now()
        await mapper.release()
        if result.complete and len(result.layers) == a.layers:
            series["map"].append(t1 - t0)
            series["release"].append(now() - t2)
            for a0, a1 in ((client0, client1), (routers0, routers1)):
                if a0 is not None and a1 is not None:
                    for key, value in a1.items():
                        series.setdefault(key, []).append(value - a0[key])
        else:
            series["map_incomplete"].append(t1 - t0)
            reasons.append(f"{len(result.layers)}/{a.layers} layers: {result.reason}")
        await asyncio.sleep(a.gap)
    emit(series, requests=requests, complete=not reasons, incomplete=reasons)


def _instrument(events: list[tuple[float, float, str, str]], t0: list[float]) -> None:
    """Record every HTTP request (start, end, host, what) and every SSDP datagram."""
    import aioigd.discovery as disc
    from aioigd.session import SoapSession

    call, get, received = SoapSession.call, SoapSession.get, disc.SsdpProtocol.datagram_received
    send = disc._send

    async def timed_call(self: SoapSession, url: str, st: str, action: str, args: Any = ()) -> Any:
        start = now() - t0[0]
        try:
            return await call(self, url, st, action, args)
        finally:
            events.append((start, now() - t0[0], self.host or "?", action))

    async def timed_get(self: SoapSession, url: str, *, what: str = "description") -> bytes:
        start = now() - t0[0]
        try:
            return await get(self, url, what=what)
        finally:
            events.append((start, now() - t0[0], self.host or "?", f"GET {what}"))

    def timed_received(self: Any, data: bytes, addr: Any) -> None:
        at = now() - t0[0]
        events.append((at, at, str(addr[0]), "SSDP answer"))
        received(self, data, addr)

    def timed_send(protocol: Any, sends: Any, *, first: bool = False) -> None:
        if first:
            at = now() - t0[0]
            events.append((at, at, str(sends[0][0][0]), f"M-SEARCH x{len(sends)}"))
        send(protocol, sends, first=first)

    SoapSession.call = timed_call  # type: ignore[method-assign]
    SoapSession.get = timed_get  # type: ignore[method-assign]
    disc.SsdpProtocol.datagram_received = timed_received  # type: ignore[method-assign]
    disc._send = timed_send


async def fig_timeline(a: argparse.Namespace) -> None:
    """Where the time of one discover() or multi-layer map() goes: every request's span
    and every SSDP datagram, for the run of median length (written to --profile)."""
    events: list[tuple[float, float, str, str]] = []
    t0 = [0.0]
    _instrument(events, t0)
    runs: list[tuple[float, list[tuple[float, float, str, str]]]] = []
    for i in range(a.n):
        events.clear()
        t0[0] = now()
        if a.layers:
            mapper = MultiLayerMapper(
                a.port + i, layers=a.layers, probe_target=a.probe_target,
                description=BENCH_DESCRIPTION,
            )  # fmt: skip
            await mapper.map()
            total = now() - t0[0]
            await mapper.release()
        else:
            gw = await aioigd.discover()
            total = now() - t0[0]
            await gw.close()
        runs.append((total, sorted(e for e in events if e[0] <= total)))
        await asyncio.sleep(a.gap)
    runs.sort(key=lambda r: r[0])
    total, spans = runs[len(runs) // 2]
    what = f"MultiLayerMapper(layers={a.layers}).map()" if a.layers else "discover()"
    lines = [
        f"# aioigd: where one {what} spends its time (the median of {a.n} runs: {total:.2f} ms)",
        "",
        "Every HTTP request (start → end, ms from the call) and every SSDP datagram (sent, or",
        "received: one line per answer). Wall times all: the gaps are this process's own work",
        "(parsing, the event loop) and the routers' (they share this machine's cores).",
        "",
        f"{'start':>8} {'end':>8} {'took':>6}  host             what",
    ]
    for start, end, host, action in spans:
        took = f"{end - start:6.2f}" if end > start else "      "
        lines.append(f"{start:8.2f} {end:8.2f} {took}  {host:16s} {action}")
    lines.append(f"{total:8.2f} {'':8} {'':6}  {'':16} returned")
    lines.append("")
    lines.append(f"all runs (ms): {', '.join(f'{r[0]:.1f}' for r in runs)}")
    Path(a.profile).write_text("\n".join(lines) + "\n")
    emit({"timeline": [r[0] for r in runs]})


FIGURES = {
    "discover": fig_discover,
    "extip": fig_extip,
    "mapdel": fig_mapdel,
    "bulk": fig_bulk,
    "seed": fig_seed,
    "multilayer": fig_multilayer,
    "timeline": fig_timeline,
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--location", default="")
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--port", type=int, default=20000)
    p.add_argument("--gap", type=float, default=0.1)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--via", default="")
    p.add_argument("--probe-target", default=None)
    p.add_argument("--profile", default="", help="write a cProfile summary here")
    a = p.parse_args()
    asyncio.run(FIGURES[a.figure](a))


if __name__ == "__main__":
    sys.exit(main())
