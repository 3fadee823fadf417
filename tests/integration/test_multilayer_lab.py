"""`aioigd map` through 2 and 4 stacked real miniupnpd NATs, proven end to end.

Each test builds its own namespace lab (client — r1 … rN — outside). The WAN
links look public (miniupnpd refuses private WANs), so the lab climbs with
``--layers N``; next gateways are found by the in-process traceroute (probe
target: the lab's outside host) or given with ``--via``.
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

PORT = 7000


def aioigd(lab: Lab, *args: str, check: bool = False) -> tuple[int, str, str]:
    proc = lab.run(lab.client_ns, sys.executable, "-m", "aioigd", *args, check=check, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def expected_chain(lab: Lab) -> list[tuple[str, int, str, int]]:
    """What `upnpc -l` must show on each router: exactly our mapping, layer by layer."""
    return [("TCP", PORT, r.internal_client, PORT) for r in lab.routers]


def assert_no_mappings(lab: Lab) -> None:
    for k in range(1, len(lab.routers) + 1):
        assert lab.upnpc_mappings(k) == [], f"mapping left on r{k}"


@pytest.mark.parametrize("layers", [2, 4])
@pytest.mark.parametrize("how", ["traceroute", "via"])
def test_map_through_n_layers_reaches_the_client(
    make_lab: Callable[..., Lab], layers: int, how: str
) -> None:
    lab = make_lab(layers)
    lab.tcp_listener(lab.client_ns, PORT)
    outermost = lab.routers[-1]
    assert not lab.tcp_connect(lab.outside_ns, outermost.wan_ip, PORT), "open before mapping?"

    args = ["map", str(PORT), "--layers", str(layers), "--json", "--lease", "600"]
    args += ["--probe-target", lab.outside_ip]  # lab address; never the real default
    if how == "via":
        for r in lab.routers:
            args += ["--via", r.location]
    rc, out, err = aioigd(lab, *args)
    assert rc == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["complete"] is True
    assert len(result["layers"]) == layers
    assert result["public"] == {"ip": outermost.wan_ip, "port": PORT}
    for layer, router in zip(result["layers"], lab.routers, strict=True):
        assert layer["gateway"] == router.location
        assert layer["internal_client"] == router.internal_client
        assert layer["external_ip"] == router.wan_ip

    # The independent client sees exactly our mapping on every router.
    for k, want in enumerate(expected_chain(lab), 1):
        assert lab.upnpc_mappings(k) == [want]
    # And the internet reaches the client through every NAT.
    assert lab.tcp_connect(lab.outside_ns, outermost.wan_ip, PORT)

    # Without --hold the mappings stay until their lease: delete them (r1 with aioigd,
    # the others with upnpc from each router's LAN peer) and check they are gone.
    rc, _, err = aioigd(lab, "delete", str(PORT), "--gateway", lab.routers[0].location)
    assert rc == 0, err
    for k in range(2, layers + 1):
        lab.upnpc(k, "-d", str(PORT), "TCP")
    assert_no_mappings(lab)
    assert not lab.tcp_connect(lab.outside_ns, outermost.wan_ip, PORT)


def test_hold_renews_then_sigterm_removes_every_layer(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(4)
    lab.tcp_listener(lab.client_ns, PORT)
    proc = lab.popen(
        lab.client_ns, sys.executable, "-m", "aioigd", "map", str(PORT), "--layers", "4",
        "--probe-target", lab.outside_ip, "--json", "--hold", "--lease", "600",
    )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "no JSON line before holding"
    result = json.loads(proc.stdout.readline())
    assert result["complete"] and len(result["layers"]) == 4
    for k, want in enumerate(expected_chain(lab), 1):
        assert lab.upnpc_mappings(k) == [want]
    assert lab.tcp_connect(lab.outside_ns, lab.routers[-1].wan_ip, PORT)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert_no_mappings(lab)
    assert not lab.tcp_connect(lab.outside_ns, lab.routers[-1].wan_ip, PORT)


def test_layer_three_down_gives_partial_result_and_creates_nothing_above(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab(4)
    lab.stop_miniupnpd(3)
    rc, out, err = aioigd(
        lab, "map", str(PORT), "--layers", "4", "--probe-target", lab.outside_ip, "--json",
        "--timeout", "1",
    )  # fmt: skip
    assert rc == 7, (rc, err)  # ExitCode.PARTIAL
    result = json.loads(out.strip().splitlines()[-1])
    assert result["complete"] is False
    assert result["stopped_at"] == 3
    assert result["reason"]
    assert len(result["layers"]) == 2
    assert lab.upnpc_mappings(1) == [expected_chain(lab)[0]]
    assert lab.upnpc_mappings(2) == [expected_chain(lab)[1]]
    assert lab.upnpc_mappings(4) == []
    # The text output names the layer too.
    rc, out, _ = aioigd(
        lab, "map", str(PORT), "--layers", "4", "--probe-target", lab.outside_ip,
        "--timeout", "1",
    )  # fmt: skip
    assert rc == 7
    assert "stopped at layer 3" in out


def test_library_context_manager_releases_every_layer(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(2)
    script = f"""
import asyncio, json
from aioigd.multilayer import MultiLayerMapper
async def main():
    async with MultiLayerMapper({PORT}, layers=2, probe_target={lab.outside_ip!r}) as r:
        print(json.dumps(r.as_dict()), flush=True)
        input()
asyncio.run(main())
"""
    proc = lab.run(lab.client_ns, sys.executable, "-c", script, input="\n", timeout=60)
    result = json.loads(proc.stdout.strip())
    assert result["complete"] and len(result["layers"]) == 2
    assert_no_mappings(lab)


def test_renewal_re_adds_each_layer_after_its_router_reboots(make_lab: Callable[..., Lab]) -> None:
    """miniupnpd restarted mid-lease (its table empty, as after a reboot) on layer 2, then on
    layer 1: each layer's renewal notices and re-adds its own mapping within one period."""
    lab = make_lab(2)
    lab.tcp_listener(lab.client_ns, PORT)
    script = f"""
import asyncio, json, sys
from aioigd.multilayer import MultiLayerMapper
async def main():
    async with MultiLayerMapper({PORT}, layers=2, lease=4, probe_target={lab.outside_ip!r}) as r:
        print(json.dumps(r.as_dict()), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(main())
"""
    proc = lab.popen(lab.client_ns, sys.executable, "-c", script, stdin=True)
    assert proc.stdout is not None and proc.stdin is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready
    assert json.loads(proc.stdout.readline())["complete"]
    chain = expected_chain(lab)
    for k in (2, 1):
        lab.restart_miniupnpd(k)
        assert lab.upnpc_mappings(k) == [], "a restarted miniupnpd starts empty"
        deadline = time.monotonic() + 6  # lease 4 s: renewal every 2 s
        while lab.upnpc_mappings(k) != [chain[k - 1]] and time.monotonic() < deadline:
            time.sleep(0.3)
        assert lab.upnpc_mappings(k) == [chain[k - 1]], f"layer {k} was not re-added"
    assert lab.tcp_connect(lab.outside_ns, lab.routers[-1].wan_ip, PORT)
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0
    assert_no_mappings(lab)
