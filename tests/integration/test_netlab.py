"""The namespace lab itself works: real miniupnpd, checked with upnpc and plain sockets only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.netlab import CLIENT_IP, Lab, require_root

PORT = 8000
_FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"


def _pgrep(pattern: str) -> str:
    return subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout


def test_one_layer_map_reach_delete(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(1)
    r1 = lab.router(1)
    lab.tcp_listener(lab.client_ns, PORT)
    assert not lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT)  # nothing mapped yet

    out = lab.upnpc(1, "-a", CLIENT_IP, str(PORT), str(PORT), "TCP")
    assert f"external {r1.wan_ip}:{PORT} TCP is redirected to internal {CLIENT_IP}:{PORT}" in out
    assert lab.upnpc_mappings(1) == [("TCP", PORT, CLIENT_IP, PORT)]
    assert lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT)

    lab.upnpc(1, "-d", str(PORT), "TCP")
    assert lab.upnpc_mappings(1) == []
    assert not lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT)


@pytest.mark.parametrize("layers", [2, 4])
def test_stacked_layers_map_by_hand(make_lab: Callable[..., Lab], layers: int) -> None:
    lab = make_lab(layers)
    lab.tcp_listener(lab.client_ns, PORT)
    for r in lab.routers:  # each layer maps to the layer below it, as a multi-layer client would
        lab.upnpc(r.index, "-a", r.internal_client, str(PORT), str(PORT), "TCP")
        assert lab.upnpc_mappings(r.index) == [("TCP", PORT, r.internal_client, PORT)]
    top = lab.routers[-1]
    assert lab.tcp_connect(lab.outside_ns, top.wan_ip, PORT)

    # What an in-process traceroute from the client sees: every router's LAN address (where its
    # SSDP and HTTP listen), then the outside host.
    if shutil.which("traceroute") is None:
        pytest.skip("traceroute (Debian package traceroute) is not installed")
    trace = lab.run(
        lab.client_ns, "traceroute", "-n", "-q", "1", "-w", "1", "-m", "5", lab.outside_ip
    ).stdout
    hops = re.findall(r"^\s*\d+\s+(\S+)", trace, re.MULTILINE)
    assert hops == [*(r.lan_ip for r in lab.routers), lab.outside_ip]


def test_restart_empties_table(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(2)
    lab.upnpc(1, "-a", CLIENT_IP, str(PORT), str(PORT), "TCP")
    lab.upnpc(2, "-a", lab.router(2).internal_client, str(PORT), str(PORT), "UDP")
    old_pid = lab.miniupnpd_pid(2)

    lab.restart_miniupnpd(2)
    assert lab.miniupnpd_pid(2) not in (None, old_pid)
    assert lab.upnpc_mappings(2) == []
    assert lab.upnpc_mappings(1) == [("TCP", PORT, CLIENT_IP, PORT)]  # r1 untouched
    lab.upnpc(2, "-a", lab.router(2).internal_client, str(PORT), str(PORT), "TCP")
    assert len(lab.upnpc_mappings(2)) == 1

    lab.stop_miniupnpd(2)
    assert lab.miniupnpd_pid(2) is None
    lab.stop_miniupnpd(2)  # idempotent
    lab.start_miniupnpd(2)
    assert lab.upnpc_mappings(2) == []


def test_options_reach_miniupnpd(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(1, igd_v1=True, miniupnpd_extra={1: ["friendly_name=lab extra"]})
    desc = lab.run(lab.client_ns, sys.executable, "-c", _FETCH, lab.router(1).location).stdout
    assert "urn:schemas-upnp-org:device:InternetGatewayDevice:1" in desc
    assert "<friendlyName>lab extra</friendlyName>" in desc


def test_teardown_leaves_nothing_even_when_body_raises() -> None:
    require_root()
    prefix = f"igdt{os.getpid()}"  # explicit prefix; unique so parallel runs do not clash
    lab = Lab(2, prefix=prefix)
    subprocess.run(["ip", "netns", "add", f"{prefix}-zz"], check=True)  # a stale leftover
    with pytest.raises(RuntimeError, match="boom"), lab:
        assert f"{prefix}-zz" not in _netns()
        assert lab.miniupnpd_pid(1) is not None and lab.miniupnpd_pid(2) is not None
        assert str(lab.tmpdir) in _pgrep("miniupnpd")
        listener = lab.tcp_listener(lab.client_ns, PORT)
        raise RuntimeError("boom")
    assert not [ns for ns in _netns() if ns.startswith(f"{prefix}-")]
    assert _pgrep(str(lab.tmpdir)) == ""
    assert listener.poll() is not None  # tracked processes are killed and reaped
    assert not lab.tmpdir.exists()
    lab.close()  # idempotent


def _netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line]
