"""The namespace lab itself works: real miniupnpd, checked with upnpc and plain sockets only."""

from __future__ import annotations

import ipaddress
import os
import re
import select
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.netlab import CLIENT_IP, Lab, require_root

PORT = 8000
_FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"
# Echo server for one connection that prints the peer's address: what a NAT's masquerade shows.
_PEER_SERVER = """\
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[1])))
s.listen(1)
print("ready", flush=True)
c, peer = s.accept()
print(peer[0], flush=True)
c.sendall(c.recv(1024))
"""


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


def _listening_ports(lab: Lab, ns: str) -> set[int]:
    out = lab.run(ns, "ss", "-Hltn").stdout
    return {int(f[3].rsplit(":", 1)[1]) for f in (ln.split() for ln in out.splitlines()) if f}


def _source_seen(lab: Lab, server_ns: str, client_ns: str, host: str, port: int) -> str:
    """The source address a connection from ``client_ns`` to host:port shows in ``server_ns``."""
    server = lab.popen(server_ns, sys.executable, "-I", "-S", "-c", _PEER_SERVER, str(port))
    assert server.stdout is not None
    assert select.select([server.stdout], [], [], 5)[0] and server.stdout.readline() == "ready\n"
    assert lab.tcp_connect(client_ns, host, port)
    return server.stdout.readline().strip()


def _external_ip(lab: Lab, k: int) -> str:
    found = re.search(r"^ExternalIPAddress = (\S*)$", lab.upnpc(k, "-s"), re.MULTILINE)
    assert found is not None
    return found.group(1)


def test_restart_on_new_http_port(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(1)
    old = lab.router(1)
    lab.upnpc(1, "-a", CLIENT_IP, str(PORT), str(PORT), "TCP")
    new_port = lab.new_http_port(1)
    assert new_port != old.http_port and new_port not in _listening_ports(lab, old.ns)

    lab.restart_miniupnpd(1, http_port=new_port)
    r1 = lab.router(1)
    assert r1.http_port == new_port and old.http_port != new_port
    assert r1.location == f"http://{r1.lan_ip}:{new_port}/rootDesc.xml"
    ports = _listening_ports(lab, r1.ns)
    assert new_port in ports and old.http_port not in ports
    gone = lab.run(lab.client_ns, sys.executable, "-c", _FETCH, old.location, check=False)
    assert gone.returncode != 0 and "Connection refused" in gone.stderr

    assert lab.upnpc_mappings(1) == []  # upnpc -u <the new location>: a reboot's empty table
    out = lab.upnpc(1, "-a", CLIENT_IP, str(PORT), str(PORT), "TCP")
    assert f"external {r1.wan_ip}:{PORT} TCP is redirected to internal {CLIENT_IP}:{PORT}" in out
    assert lab.upnpc_mappings(1) == [("TCP", PORT, CLIENT_IP, PORT)]
    lab.tcp_listener(lab.client_ns, PORT)
    assert lab.tcp_connect(lab.outside_ns, r1.wan_ip, PORT)


def test_change_wan_ip_one_layer(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(1)
    old = lab.router(1).wan_ip
    lab.tcp_listener(lab.client_ns, PORT)
    lab.upnpc(1, "-a", CLIENT_IP, str(PORT), str(PORT), "TCP")  # mapped before the change
    pid = lab.miniupnpd_pid(1)

    new = lab.change_wan_ip(1)
    assert new != old and ipaddress.IPv4Address(new).is_global
    assert lab.router(1).wan_ip == new and lab.miniupnpd_pid(1) == pid  # no restart, no signal
    addrs = lab.run(lab.router(1).ns, "ip", "-4", "-br", "addr", "show", "wan").stdout
    assert addrs.split()[2:] == [f"{new}/24"]
    # miniupnpd noticed by itself (netlink interface watcher) and reports the new address.
    assert "should send external iface address change notification(s)" in lab.miniupnpd_log(1)
    assert _external_ip(lab, 1) == new

    lab.tcp_listener(lab.client_ns, PORT + 1)
    out = lab.upnpc(1, "-a", CLIENT_IP, str(PORT + 1), str(PORT + 1), "TCP")
    assert f"external {new}:{PORT + 1} TCP is redirected to internal {CLIENT_IP}:" in out
    assert f"Check protocol tcp for port {PORT + 1} on ext_if wan {new}," in lab.miniupnpd_log(1)
    assert lab.tcp_connect(lab.outside_ns, new, PORT + 1)
    assert lab.tcp_connect(lab.outside_ns, new, PORT)  # DNAT matches iif and port, not address
    assert not lab.tcp_connect(lab.outside_ns, old, PORT + 1, timeout=1)
    assert not lab.tcp_connect(lab.outside_ns, old, PORT, timeout=1)
    # Outbound traffic is masqueraded with the new address.
    assert _source_seen(lab, lab.outside_ns, lab.client_ns, lab.outside_ip, PORT + 2) == new


def test_change_wan_ip_lower_router(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(2)
    old = lab.router(1).wan_ip
    new = lab.change_wan_ip(1)
    r1, r2 = lab.router(1), lab.router(2)
    assert new != old and r1.wan_ip == new and r2.internal_client == new
    assert _external_ip(lab, 1) == new  # upnpc from the client, to r1
    assert _external_ip(lab, 2) == r2.wan_ip  # upnpc from r1 (source: its new address), to r2

    # r2's device route moved; r1's routes up (via r2's LAN address) are unchanged.
    assert f"dev {r2.lan_if}" in lab.run(r2.ns, "ip", "-4", "route", "get", new).stdout
    assert lab.run(r2.ns, "ip", "-4", "route", "get", old, check=False).returncode != 0
    default = lab.run(r1.ns, "ip", "-4", "route", "show", "default").stdout
    assert f"default via {r2.lan_ip} dev {r1.wan_if} onlink" in default
    # r1 masquerades with its new address; r2 does with its own.
    assert _source_seen(lab, r2.ns, lab.client_ns, r2.lan_ip, PORT + 2) == new
    assert _source_seen(lab, lab.outside_ns, lab.client_ns, lab.outside_ip, PORT + 3) == r2.wan_ip

    # Map by hand at both layers: r2 (started before the change) maps for r1's new address.
    lab.tcp_listener(lab.client_ns, PORT)
    for r in lab.routers:
        lab.upnpc(r.index, "-a", r.internal_client, str(PORT), str(PORT), "TCP")
        assert lab.upnpc_mappings(r.index) == [("TCP", PORT, r.internal_client, PORT)]
    assert lab.tcp_connect(lab.outside_ns, r2.wan_ip, PORT)
    assert not lab.tcp_connect(r2.ns, old, PORT, timeout=1)  # the old address reaches nothing


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
