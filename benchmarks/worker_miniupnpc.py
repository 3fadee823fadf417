"""miniupnpc (PyPI binding, C inside) side of the benchmarks; run in the client namespace.

``python benchmarks/worker_miniupnpc.py FIGURE --location URL [...]`` prints one JSON line.
Figures: discover, extip, mapdel, bulk, seed.
"""

from __future__ import annotations

import argparse
import time

import miniupnpc
from _common import BENCH_DESCRIPTION, NO_MINISSDPD, emit, now, tcp_active_opens


def upnp() -> miniupnpc.UPnP:
    # minissdpdsocket is read-only as an attribute; the constructor takes it.
    return miniupnpc.UPnP(minissdpdsocket=NO_MINISSDPD)


def known(location: str) -> miniupnpc.UPnP:
    u = upnp()
    u.selectigd(location)  # skips SSDP, like upnpc -u
    return u


def fig_discover(a: argparse.Namespace) -> None:
    """discover() + selectigd(): the gateway is usable (control URL known) afterwards."""
    samples = []
    for _ in range(a.n):
        u = upnp()  # discoverdelay unset (0) = 1000 ms, the library's minimum
        t0 = now()
        u.discover()
        control = u.selectigd()
        samples.append(now() - t0)
        assert control
        time.sleep(a.gap)
    emit({"discover": samples})


def fig_extip(a: argparse.Namespace) -> None:
    u = known(a.location)
    opens0 = tcp_active_opens()
    samples = []
    for _ in range(a.n):
        t0 = now()
        u.externalipaddress()
        samples.append(now() - t0)
    emit({"extip": samples}, opens_per_call=(tcp_active_opens() - opens0) / a.n)


def fig_mapdel(a: argparse.Namespace) -> None:
    u = known(a.location)
    series: dict[str, list[float]] = {"map": [], "delete": []}
    for _ in range(a.n):
        t0 = now()
        u.addportmapping(a.port, "TCP", u.lanaddr, a.port, BENCH_DESCRIPTION, "", 3600)
        entry = u.getspecificportmapping(a.port, "TCP")
        t1 = now()
        u.deleteportmapping(a.port, "TCP")
        series["map"].append(t1 - t0)
        series["delete"].append(now() - t1)
        assert entry is not None and entry[0] == u.lanaddr
    emit(series)


def fig_bulk(a: argparse.Namespace) -> None:
    u = known(a.location)
    ports = range(a.port, a.port + a.n)
    opens0 = tcp_active_opens()
    t0 = now()
    for port in ports:
        u.addportmapping(port, "TCP", u.lanaddr, port, BENCH_DESCRIPTION, "", 3600)
    t1 = now()
    for port in ports:
        u.deleteportmapping(port, "TCP")
    t2 = now()
    emit(
        {"add": [t1 - t0], "delete": [t2 - t1], "total": [t2 - t0]},
        active_opens=tcp_active_opens() - opens0,
        actions=2 * a.n,
    )


def fig_seed(a: argparse.Namespace) -> None:
    """The seed flow by hand: external IP, GetGenericPortMappingEntry until the end, add, verify."""
    samples, requests, opens = [], [], []
    for _ in range(a.n):
        u = known(a.location)
        o0 = tcp_active_opens()
        t0 = now()
        u.externalipaddress()
        table, index = {}, 0
        while (entry := u.getgenericportmapping(index)) is not None:
            table[(entry[1], entry[0])] = entry
            index += 1
        holder = table.get(("TCP", a.port))
        assert holder is None or holder[2][0] == u.lanaddr
        u.addportmapping(a.port, "TCP", u.lanaddr, a.port, BENCH_DESCRIPTION, "", 3600)
        assert u.getspecificportmapping(a.port, "TCP") is not None
        samples.append(now() - t0)
        requests.append(1 + (index + 1) + 2)
        opens.append(tcp_active_opens() - o0)
        u.deleteportmapping(a.port, "TCP")
    emit({"seed": samples}, requests=requests, active_opens=opens)


FIGURES = {
    "discover": fig_discover,
    "extip": fig_extip,
    "mapdel": fig_mapdel,
    "bulk": fig_bulk,
    "seed": fig_seed,
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--location", default="")
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--port", type=int, default=21000)
    p.add_argument("--gap", type=float, default=0.1)
    a = p.parse_args()
    FIGURES[a.figure](a)


if __name__ == "__main__":
    main()
