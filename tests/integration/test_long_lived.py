"""Long-lived mappings on real miniupnpd: ``map --hold`` tells what happens and recovers.

The router reboots onto another HTTP port, its WAN address changes, or it goes away
for good; the CLI prints one JSON event per line as it happens, the mapping comes
back by itself (upnpc sees it, a TCP connect from the internet reaches the client),
and the exit code says what could not be removed. Ports: 8400-8499.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aioigd.cli import ExitCode
from tests.integration.test_miniupnpd import Interactive, interactive
from tests.netlab import Lab

MakeLab = Callable[..., Lab]
LEASE = 30  # renewed every 15 s


def read_until(cli: Interactive, name: str, timeout: float) -> tuple[dict[str, Any], list[str]]:
    """Read JSON lines until an ``event`` named ``name``; also return the names read."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {name!r} event within {timeout} s; saw {seen}; {cli.stderr()}"
        line = cli.read(timeout=left)
        seen.append(str(line.get("event")))
        if line.get("event") == name:
            return line, seen


def hold(lab: Lab, port: int, *extra: str, lease: int = LEASE) -> tuple[str, ...]:
    return (
        sys.executable, "-m", "aioigd", "map", str(port), "--lease", str(lease),
        "--hold", "--json", *extra,
    )  # fmt: skip


def test_router_restarted_on_another_http_port_is_found_and_the_mapping_recovered(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    lab = make_lab(1)
    port = 8400
    lab.tcp_listener(lab.client_ns, port)
    cmd = hold(lab, port, "--layers", "1", "--gateway", lab.router(1).location)
    with interactive(lab, tmp_path, *cmd) as cli:
        result = cli.read()
        assert result["complete"] is True, result
        old = lab.router(1).location
        lab.restart_miniupnpd(1, http_port=lab.new_http_port(1))
        started = time.monotonic()
        assert lab.router(1).location != old
        assert lab.upnpc_mappings(1) == []  # the reboot wiped the table
        assert not lab.tcp_connect(lab.outside_ns, lab.router(1).wan_ip, port)
        event, seen = read_until(cli, "recovered", timeout=LEASE + 15)
        took = time.monotonic() - started
        print(f"recovered {took:.1f} s after the restart; events {seen}")
        assert took < LEASE  # back long before the lost mapping's lease would have run out
        assert event["layer"] == 1 and event["state"] == "recovered"
        assert event["gateway"] == lab.router(1).location  # found again on the new port
        assert lab.upnpc_mappings(1) == [("TCP", port, lab.client_ip, port)]
        assert lab.tcp_connect(lab.outside_ns, lab.router(1).wan_ip, port)
        cli.proc.send_signal(signal.SIGINT)
        assert cli.wait(10) == ExitCode.OK, cli.stderr()
        assert "Traceback" not in cli.stderr()
    assert lab.upnpc_mappings(1) == []  # removed from the router at its new port


def test_two_layers_lower_router_restarted_on_another_port(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    lab = make_lab(2)
    port = 8401
    lab.tcp_listener(lab.client_ns, port)
    cmd = hold(lab, port, "--layers", "2", "--probe-target", lab.outside_ip)
    with interactive(lab, tmp_path, *cmd) as cli:
        result = cli.read(timeout=30)
        assert result["complete"] and len(result["layers"]) == 2, result
        top = lab.routers[-1].wan_ip
        assert lab.tcp_connect(lab.outside_ns, top, port)
        lab.restart_miniupnpd(1, http_port=lab.new_http_port(1))
        assert not lab.tcp_connect(lab.outside_ns, top, port)  # layer 1 is gone
        event, seen = read_until(cli, "recovered", timeout=LEASE + 15)
        print(f"events {seen}")
        assert event["layer"] == 1 and event["gateway"] == lab.router(1).location
        assert lab.upnpc_mappings(1) == [("TCP", port, lab.client_ip, port)]
        assert lab.upnpc_mappings(2) == [("TCP", port, lab.router(2).internal_client, port)]
        assert lab.tcp_connect(lab.outside_ns, top, port)  # through both NATs again
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.wait(15) == ExitCode.OK, cli.stderr()
    assert lab.upnpc_mappings(1) == [] and lab.upnpc_mappings(2) == []


def test_wan_address_change_is_an_event_with_the_new_address(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    lab = make_lab(1)
    port = 8402
    lab.tcp_listener(lab.client_ns, port)
    cmd = hold(lab, port, "--layers", "1", "--gateway", lab.router(1).location)
    with interactive(lab, tmp_path, *cmd) as cli:
        result = cli.read()
        old_ip = lab.router(1).wan_ip
        assert result["public"]["ip"] == old_ip
        new_ip = lab.change_wan_ip(1)
        event, _ = read_until(cli, "external_ip_changed", timeout=LEASE + 15)
        assert (event["external_ip"], event["previous_external_ip"]) == (new_ip, old_ip)
        assert event["external_port"] == port
        assert lab.tcp_connect(lab.outside_ns, new_ip, port)
        cli.proc.send_signal(signal.SIGINT)
        assert cli.wait(10) == ExitCode.OK, cli.stderr()
    assert lab.upnpc_mappings(1) == []


def test_router_gone_for_good_is_lost_and_ctrl_c_says_what_was_left(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    lab = make_lab(1)
    port = 8403
    lease = 6
    cmd = hold(lab, port, "--layers", "1", "--gateway", lab.router(1).location, lease=lease)
    with interactive(lab, tmp_path, *cmd) as cli:
        assert cli.read()["complete"] is True
        lab.stop_miniupnpd(1)
        event, seen = read_until(cli, "lost", timeout=lease + 15)
        assert seen == ["renewal_failed", "lost"], seen  # once per state change
        assert event["state"] == "lost" and event["error"]
        started = time.monotonic()
        cli.proc.send_signal(signal.SIGINT)
        rc = cli.wait(15)
        took = time.monotonic() - started
        err = cli.stderr()
        print(f"exit {rc} {took:.2f} s after SIGINT; stderr:\n{err}")
        assert rc == ExitCode.CLEANUP, err
        assert took < 5
        assert f"could not remove TCP {lab.router(1).wan_ip}:{port}" in err
        assert "Traceback" not in err
        assert err.count("WARNING") <= 1
        tail = cli.read(timeout=2)
        assert tail["event"] == "released" and tail.get("error")
        final = cli.read(timeout=2)
        assert final["event"] == "cleanup_failed" and len(final["leftovers"]) == 1
