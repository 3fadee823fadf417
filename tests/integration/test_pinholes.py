"""aioigd pinholes against the real miniupnpd 2.3.1 over IPv6, proven end to end.

client — r1 (miniupnpd, IPv6 forward policy drop) — outside. A TCP connect over
IPv6 from the outside host to the client succeeds only while aioigd's pinhole
exists. Findings about 2.3.1 (402 instead of 704, packet counters always 0,
CheckPinholeWorking always 709) are pinned in test_netlab_ipv6.py.
"""

from __future__ import annotations

import json
import select
import signal
import sys
import time
from collections.abc import Callable

import pytest

from tests.netlab import Lab

PORT = 8000


def aioigd(lab: Lab, *args: str) -> tuple[int, str, str]:
    proc = lab.run(lab.client_ns, sys.executable, "-m", "aioigd", *args, check=False, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def inbound(lab: Lab, port: int = PORT) -> bool:
    return lab.tcp_connect(lab.outside_ns, lab.client_ip6, port)


@pytest.mark.parametrize(
    "how", [["--no-default-gateways"], ["--no-multicast"]], ids=["ff02::c", "default-router"]
)
def test_discover_finds_the_firewall_over_ipv6(
    make_lab: Callable[..., Lab], how: list[str]
) -> None:
    """ff02::c is answered from r1's link-local address with its global LOCATION (aioigd
    confirms that LOCATION by asking it directly); unicast to the IPv6 default router
    (/proc/net/ipv6_route) is answered by that address. Either way: IPv6 control URLs."""
    lab = make_lab(1, ipv6=True)
    rc, out, err = aioigd(lab, "pinhole", "status", "--json", *how)
    assert rc == 0, err
    status = json.loads(out)
    assert status == {
        "firewall_enabled": True,
        "inbound_pinhole_allowed": True,
        "location": lab.router(1).location6,
    }


def test_pinhole_cli_lifecycle_opens_and_closes_inbound(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(1, ipv6=True)
    gw = ("--gateway", lab.router(1).location6)
    lab.tcp_listener(lab.client_ns, PORT, host="::")
    lab.tcp_listener(lab.client_ns, PORT + 1, host="::")
    assert not inbound(lab), "the lab's firewall must block inbound IPv6 first"

    rc, out, err = aioigd(lab, "pinhole", "add", str(PORT), "--lease", "600", "--json", *gw)
    assert rc == 0, err
    hole = json.loads(out)
    assert hole["internal_client"] == lab.client_ip6
    assert hole["internal_port"] == PORT and hole["protocol"] == "TCP"
    uid = str(hole["unique_id"])
    [rule] = lab.firewall_rules()
    assert f"th dport {PORT} " in rule and "accept" in rule
    assert inbound(lab)
    assert not inbound(lab, PORT + 1), "only the pinholed port opens"

    # UpdatePinhole works and keeps the rule.
    rc, _, err = aioigd(lab, "pinhole", "update", uid, "--lease", "900", *gw)
    assert rc == 0, err
    assert len(lab.firewall_rules()) == 1 and inbound(lab)
    # Packets and CheckPinholeWorking answer (2.3.1: counter 0, 709 = "no traffic yet").
    rc, out, err = aioigd(lab, "pinhole", "packets", uid, "--json", *gw)
    assert rc == 0, err
    assert json.loads(out)["packets"] >= 0
    rc, out, err = aioigd(lab, "pinhole", "check", uid, "--json", *gw)
    assert rc == 0, err
    assert json.loads(out)["unique_id"] == int(uid)

    rc, _, err = aioigd(lab, "pinhole", "delete", uid, *gw)
    assert rc == 0, err
    assert lab.firewall_rules() == []
    assert not inbound(lab)

    # A bad UniqueID: a typed fault, one clear line (2.3.1 says 402, the spec 704).
    rc, _, err = aioigd(lab, "pinhole", "delete", "4242", *gw)
    assert rc == 4
    assert err.startswith("aioigd: error: DeletePinhole: UPnP error 40")
    assert err.count("\n") == 1 and "Traceback" not in err
    # A port the router refuses (< 1024 → 606), typed and clear.
    rc, _, err = aioigd(lab, "pinhole", "add", "80", *gw)
    assert rc == 4 and "606" in err and err.count("\n") == 1


def test_library_pinhole_context_manager_and_cross_check(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(1, ipv6=True)
    lab.tcp_listener(lab.client_ns, PORT, host="::")
    script = f"""
import asyncio, json, sys
import aioigd
async def main():
    gw = await aioigd.Gateway.from_location({lab.router(1).location6!r})
    async with gw, aioigd.FirewallControl.from_gateway(gw) as fc:
        async with fc.pinhole({PORT}, lease=60) as hole:
            print(json.dumps(hole.as_dict()), flush=True)
            sys.stdin.readline()
        print("released", flush=True)
        sys.stdin.readline()
asyncio.run(main())
"""
    proc = lab.popen(lab.client_ns, sys.executable, "-c", script, stdin=True)
    assert proc.stdout is not None and proc.stdin is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    assert ready
    hole = json.loads(proc.stdout.readline())
    assert inbound(lab)
    # Cross-check on the router itself: exactly one pinhole rule, for our port and client.
    [rule] = lab.firewall_rules()
    assert f"th dport {PORT} " in rule and hole["internal_port"] == PORT
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released"
    assert lab.firewall_rules() == []
    assert not inbound(lab)
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=20) == 0


def test_map_ipv6_hold_opens_both_and_sigterm_removes_both(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(1, ipv6=True)
    lab.tcp_listener(lab.client_ns, PORT, host="::")
    proc = lab.popen(
        lab.client_ns, sys.executable, "-m", "aioigd", "map", str(PORT), "--layers", "1",
        "--ipv6", "--ipv6-gateway", lab.router(1).location6, "--gateway", lab.router(1).location,
        "--json", "--hold", "--lease", "600", "--probe-target", lab.outside_ip,
    )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "no JSON before holding"
    result = json.loads(proc.stdout.readline())
    assert result["complete"] is True and result["public"]["port"] == PORT
    assert result["ipv6"]["internal_client"] == lab.client_ip6
    assert inbound(lab), "IPv6 pinhole"
    assert lab.tcp_connect(lab.outside_ns, lab.router(1).wan_ip, PORT), "IPv4 mapping"
    assert lab.upnpc_mappings(1) == [("TCP", PORT, lab.client_ip, PORT)]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert lab.upnpc_mappings(1) == []
    assert lab.firewall_rules() == []
    assert not inbound(lab)


def test_update_extends_the_lease_and_upnpc_sees_our_pinhole(make_lab: Callable[..., Lab]) -> None:
    """A 3 s pinhole updated to 600 s outlives its first lease (the router's rule stays), and
    the independent client can act on the pinhole aioigd made (same UniqueID space)."""
    lab = make_lab(1, ipv6=True)
    gw = ("--gateway", lab.router(1).location6)
    lab.tcp_listener(lab.client_ns, PORT, host="::")
    rc, out, err = aioigd(lab, "pinhole", "add", str(PORT), "--lease", "3", "--json", *gw)
    assert rc == 0, err
    uid = str(json.loads(out)["unique_id"])
    rc, _, err = aioigd(lab, "pinhole", "update", uid, "--lease", "600", *gw)
    assert rc == 0, err
    time.sleep(5)  # past the first lease; miniupnpd expires pinholes within 1-3 s
    assert len(lab.firewall_rules()) == 1, "the updated pinhole expired"
    assert inbound(lab)
    # upnpc deletes the pinhole aioigd opened: both speak the same protocol to the router.
    assert "UPNP_DeletePinhole() returned : 0" in lab.upnpc6("-D", uid)
    assert lab.firewall_rules() == []
    assert not inbound(lab)


def test_pinhole_lease_runs_out_without_update(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(1, ipv6=True)
    rc, _, err = aioigd(
        lab, "pinhole", "add", str(PORT), "--lease", "2", "--gateway", lab.router(1).location6
    )
    assert rc == 0, err
    assert len(lab.firewall_rules()) == 1
    deadline = time.monotonic() + 10
    while lab.firewall_rules() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert lab.firewall_rules() == [], "a 2 s pinhole should expire without UpdatePinhole"
