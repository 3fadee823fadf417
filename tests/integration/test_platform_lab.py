"""The platform layer inside the namespace lab: routing tables and hop finders, for real.

Each check runs a short Python program inside the client's namespace (``ip netns
exec``), so the route reader reads that namespace's kernel tables and the probes
go only to the lab's routers and its outside host.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.netlab import CLIENT_IP, OUTSIDE_IP, Lab

MakeLab = Callable[..., Lab]

_ROUTES = """\
import json
from aioigd import netutil
from aioigd.platform import default_routes, linux
print(json.dumps({
    "netlink": [r.__dict__ for r in linux.netlink_routes()],
    "proc": [r.__dict__ for r in linux.proc_routes()],
    "best": [r.__dict__ for r in default_routes()],
    "v4": netutil.default_gateways(),
    "v6": netutil.default_gateways_v6(),
}))
"""

# argv: finder kind (udp | icmp | raw), loop (plain | windows), target
_TRACE = """\
import asyncio, json, socket, sys
from aioigd.errors import HopsUnavailable
from aioigd.platform import bsd, hop_finder
from aioigd.traceroute import trace
from tests.winloop import WindowsLikeLoop

kind, loop, target = sys.argv[1:4]
async def main():
    try:
        if kind == "raw":  # the macOS receive path: whole IPv4 datagrams from an ICMP socket
            finder = bsd.IcmpDatagramFinder(socket.SOCK_RAW)
        else:
            finder = hop_finder(kind)
    except HopsUnavailable as exc:
        return {"unavailable": str(exc)}
    hops = await trace(target, max_hops=5, timeout=3.0, attempts=3, finder=finder)
    return {"finder": finder.name, "hops": [[h.ttl, h.address, h.reached_target] for h in hops]}
factory = WindowsLikeLoop if loop == "windows" else None
with asyncio.Runner(loop_factory=factory) as runner:
    print(json.dumps(runner.run(main())))
"""


def _python(lab: Lab, code: str, *args: str) -> dict[str, Any]:
    proc = lab.run(lab.client_ns, sys.executable, "-c", code, *args, timeout=60)
    return dict(json.loads(proc.stdout))


def test_netlink_reads_every_table_in_the_namespace(make_lab: MakeLab) -> None:
    lab = make_lab(1)
    r1 = lab.router(1)
    # A default route in a policy-routing table, as `ip rule ... lookup 100` (a VPN) uses.
    lab.run(lab.client_ns, "ip", "route", "add", "default", "via", "192.168.1.254", "dev", "eth0",
            "onlink", "metric", "7", "table", "100")  # fmt: skip
    lab.run(lab.client_ns, "ip", "-6", "route", "add", "default", "via", "fe80::99", "dev",
            "eth0", "table", "100")  # fmt: skip
    got = _python(lab, _ROUTES)
    netlink = [(r["version"], r["gateway"], r["interface"], r["table"]) for r in got["netlink"]]
    assert (4, r1.lan_ip, "eth0", 254) in netlink
    assert (4, "192.168.1.254", "eth0", 100) in netlink
    assert (6, "fe80::99%eth0", "eth0", 100) in netlink
    assert {r["metric"] for r in got["netlink"] if r["gateway"] == "192.168.1.254"} == {7}
    # /proc shows the main table only; the netlink reader is what the library uses.
    assert [r["gateway"] for r in got["proc"] if r["version"] == 4] == [r1.lan_ip]
    assert got["v4"] == [r1.lan_ip, "192.168.1.254"]  # main table first
    assert got["v6"] == ["fe80::99%eth0"]
    assert got["best"][0]["gateway"] == r1.lan_ip


def _expected(lab: Lab) -> list[list[Any]]:
    hops: list[list[Any]] = [[r.index, r.lan_ip, False] for r in lab.routers]
    return [*hops, [len(lab.routers) + 1, OUTSIDE_IP, True]]


@pytest.mark.parametrize("loop", ["plain", "windows"])
def test_icmp_datagram_hop_finder_finds_the_lab_routers(make_lab: MakeLab, loop: str) -> None:
    lab = make_lab(2)
    # Ping sockets are off for every group by default ("1 0"), root included: a typed refusal.
    lab.run(lab.client_ns, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    refused = _python(lab, _TRACE, "icmp", loop, OUTSIDE_IP)
    assert "ping_group_range" in refused["unavailable"]
    lab.run(lab.client_ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    got = _python(lab, _TRACE, "icmp", loop, OUTSIDE_IP)
    assert got["finder"] == "icmp-dgram"
    assert got["hops"] == _expected(lab), got


@pytest.mark.parametrize("loop", ["plain", "windows"])
def test_udp_recverr_hop_finder_with_and_without_add_reader(make_lab: MakeLab, loop: str) -> None:
    lab = make_lab(2)
    got = _python(lab, _TRACE, "udp", loop, OUTSIDE_IP)
    assert got["finder"] == "udp-recverr"
    # UDP to a closed port: the outside host answers port-unreachable.
    assert got["hops"] == _expected(lab), got


def test_macos_receive_path_on_a_raw_icmp_socket(make_lab: MakeLab) -> None:
    # macOS ICMP datagram sockets receive whole IPv4 datagrams, as a raw socket does here
    # (root): the same parse-and-match code meets the lab's real routers.
    lab = make_lab(2)
    got = _python(lab, _TRACE, "raw", "windows", OUTSIDE_IP)
    assert got["hops"] == _expected(lab), got
    assert CLIENT_IP not in {h[1] for h in got["hops"]}
