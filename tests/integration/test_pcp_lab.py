"""PCP and NAT-PMP on the real miniupnpd: routers with UPnP off (``enable_upnp=no``).

What a router forwards is read from its nftables DNAT rules (``Lab.redirects``): with
UPnP off, ``upnpc -l`` cannot list anything. Reachability is a TCP connect from the
outside namespace through every layer to a listener on the client.
"""

from __future__ import annotations

import ipaddress
import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.netlab import Lab

PORT = 7000


def aioigd(lab: Lab, *args: str) -> tuple[int, str, str]:
    proc = lab.run(lab.client_ns, sys.executable, "-m", "aioigd", *args, check=False, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def read_json(proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no JSON line in time"
    line = proc.stdout.readline()
    assert line, "the process ended"
    data: dict[str, Any] = json.loads(line)
    return data


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.parametrize("protocols", ["upnp,pcp,natpmp", "natpmp"])
def test_add_and_delete_with_upnp_off(make_lab: Callable[..., Lab], protocols: str) -> None:
    lab = make_lab(1, upnp_off=(1,))
    lab.tcp_listener(lab.client_ns, PORT)
    r1 = lab.routers[0]
    assert not lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT), "open before mapping?"

    rc, out, err = aioigd(lab, "add", str(PORT), "--json", "--protocols", protocols)
    assert rc == 0, err
    mapping = json.loads(out)
    want = "pcp" if protocols.startswith("upnp") else "natpmp"
    assert mapping["mechanism"] == want
    assert mapping["gateway"] == f"{want}://{r1.lan_ip}:5351"
    assert (mapping["external_ip"], mapping["external_port"]) == (r1.wan_ip, PORT)
    assert lab.redirects(1) == [("TCP", PORT, lab.client_ip, PORT)]
    assert lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT)

    rc, out, err = aioigd(lab, "delete", str(PORT), "--json", "--protocols", protocols)
    assert rc == 0, err
    assert json.loads(out)["mechanism"] == want
    assert lab.redirects(1) == []
    assert not lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT)


def test_discover_lists_what_each_gateway_speaks(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(1, upnp_off=(1,))
    rc, out, err = aioigd(lab, "discover", "--json", "--timeout", "1")
    assert rc == 0, err
    found = json.loads(out)
    assert found["speaks"] == ["pcp", "natpmp"]
    assert found["host"] == lab.routers[0].lan_ip


def test_four_layers_mixed_protocols_hold_then_sigint_removes_all(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab(4, upnp_off=(2, 4))
    lab.tcp_listener(lab.client_ns, PORT)
    outermost = lab.routers[-1]
    proc = lab.popen(
        lab.client_ns, sys.executable, "-m", "aioigd", "map", str(PORT), "--layers", "4",
        "--probe-target", lab.outside_ip, "--json", "--hold", "--lease", "600",
    )  # fmt: skip
    try:
        result = read_json(proc)
        assert result["complete"], result
        mechanisms = [layer["mechanism"] for layer in result["layers"]]
        assert mechanisms == ["upnp", "pcp", "upnp", "pcp"]
        for layer, router in zip(result["layers"], lab.routers, strict=True):
            assert layer["internal_client"] == router.internal_client
            assert layer["external_ip"] == router.wan_ip
        assert result["public"] == {"ip": outermost.wan_ip, "port": PORT}
        for k, router in enumerate(lab.routers, 1):
            assert lab.redirects(k) == [("TCP", PORT, router.internal_client, PORT)]
        assert lab.tcp_connect(lab.outside_ns, outermost.wan_ip, PORT)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for k in range(1, 5):
        assert lab.redirects(k) == [], f"mapping left on r{k}"
    assert not lab.tcp_connect(lab.outside_ns, outermost.wan_ip, PORT)


def test_pcp_router_restart_is_seen_by_its_epoch_and_remapped(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab(1, upnp_off=(1,))
    lab.tcp_listener(lab.client_ns, PORT)
    r1 = lab.routers[0]
    # Lease 30 s: renewed at 15 s. The restart at ~8 s leaves the gateway's clock
    # about 8 s behind ours at the renewal, far outside the epoch check's tolerance.
    proc = lab.popen(
        lab.client_ns, sys.executable, "-m", "aioigd", "map", str(PORT), "--layers", "1",
        "--protocols", "pcp", "--probe-target", lab.outside_ip, "--json", "--hold",
        "--lease", "30",
    )  # fmt: skip
    try:
        result = read_json(proc)
        assert [layer["mechanism"] for layer in result["layers"]] == ["pcp"]
        assert lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT)
        time.sleep(8)
        lab.restart_miniupnpd(1)
        assert lab.redirects(1) == [], "a restarted miniupnpd starts empty"
        events = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            event = read_json(proc, timeout=max(0.1, deadline - time.monotonic()))
            events.append(event["event"])
            if event["event"] == "recovered":
                break
        assert "recovered" in events, events
        assert lab.redirects(1) == [("TCP", PORT, lab.client_ip, PORT)]
        assert lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_until(lambda: lab.redirects(1) == [], 5)


def test_ipv6_pinhole_through_pcp_when_upnp_is_off(make_lab: Callable[..., Lab]) -> None:
    """No WANIPv6FirewallControl to ask (UPnP off): the IPv6 port is opened with a PCP
    MAP of the client's IPv6 address, the IPv4 one with a PCP MAP through the NAT."""
    lab = make_lab(1, ipv6=True, upnp_off=(1,))
    lab.tcp_listener(lab.client_ns, PORT, host="::")
    r1 = lab.routers[0]
    assert not lab.tcp_connect(lab.outside_ns, lab.client_ip6, PORT), "open before mapping?"
    proc = lab.popen(
        lab.client_ns, sys.executable, "-m", "aioigd", "map", str(PORT), "--layers", "1",
        "--ipv6", "--probe-target", lab.outside_ip, "--json", "--hold", "--lease", "600",
    )  # fmt: skip
    try:
        result = read_json(proc)
        assert [layer["mechanism"] for layer in result["layers"]] == ["pcp"]
        v6 = result["ipv6"]
        assert v6["mechanism"] == "pcp" and v6["internal_client"] == lab.client_ip6
        assert v6["gateway"] == f"pcp://[{r1.lan_ip6}]:5351"
        assert any(nft_address(lab.client_ip6) in rule for rule in lab.firewall_rules(1))
        assert lab.tcp_connect(lab.outside_ns, lab.client_ip6, PORT)
        assert lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not any(nft_address(lab.client_ip6) in rule for rule in lab.firewall_rules(1))
    assert lab.redirects(1) == []
    assert not lab.tcp_connect(lab.outside_ns, lab.client_ip6, PORT)


def nft_address(address: str) -> str:
    """How miniupnpd's nftables rule spells an IPv6 destination: ``0x2001...``."""
    return "0x" + ipaddress.IPv6Address(address).packed.hex()


def test_natpmp_above_a_upnp_layer(make_lab: Callable[..., Lab]) -> None:
    """NAT-PMP at layer 2: it cannot name an internal client, so the mapping is for the
    sender as the upper router sees it — layer 1's external address, through its NAT."""
    lab = make_lab(2, upnp_off=(2,))
    lab.tcp_listener(lab.client_ns, PORT)
    args = ["map", str(PORT), "--layers", "2", "--json", "--lease", "600"]
    rc, out, err = aioigd(
        lab, *args, "--probe-target", lab.outside_ip, "--protocols", "upnp,natpmp"
    )
    assert rc == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert [layer["mechanism"] for layer in result["layers"]] == ["upnp", "natpmp"]
    assert lab.redirects(2) == [("TCP", PORT, lab.routers[1].internal_client, PORT)]
    assert lab.tcp_connect(lab.outside_ns, lab.routers[1].wan_ip, PORT)
