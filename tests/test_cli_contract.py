"""The CLI's contract (issue 13): checked input, one exit-code table, one line on
stderr and one JSON outcome per command, errors included; -v; the upnpc-like commands.

Fakes on loopback, as in test_cli.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import aioigd.discovery
import aioigd.gateway
from aioigd.cli import ExitCode, main
from aioigd.testing import FakeIGD, FakeMapping, Quirks
from tests.test_cli import (
    ROOT,
    ThreadedFakes,
    assert_one_error_line,
    free_udp_port,
    json_lines,
    run_cli,
    search_args,
)


@pytest.fixture
def fakes() -> Iterator[ThreadedFakes]:
    tf = ThreadedFakes()
    try:
        yield tf
    finally:
        tf.close()


@pytest.fixture
def fake(fakes: ThreadedFakes) -> FakeIGD:
    return fakes.start()


def assert_json_error(out: str, code: ExitCode, kind: str) -> dict[str, Any]:
    [obj] = json_lines(out)
    assert obj["error"] == kind and obj["exit_code"] == code, obj
    assert obj["message"]
    return obj


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command gets as far as opening a socket or fetching a URL."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a socket was opened before the arguments were checked")

    monkeypatch.setattr(aioigd.discovery, "_unicast_plans", refuse)
    monkeypatch.setattr(aioigd.discovery, "_multicast_plans", refuse)
    monkeypatch.setattr(aioigd.gateway.Gateway, "from_location", refuse)


# -- input checks: exit 2, before anything is sent ----------------------------------------------

USAGE_CASES = {
    "gateway-without-scheme": (["external-ip", "--gateway", "127.0.0.1:33359"], "LOCATION URL"),
    "gateway-ftp": (["list", "--gateway", "ftp://127.0.0.1/x"], "LOCATION URL"),
    "search-host-name": (["discover", "--search", "router.lan"], "host names are not resolved"),
    "search-host-name-port": (["discover", "--search", "router.lan:1900"], "search target"),
    "search-bad-port": (["discover", "--search", "127.0.0.1:99999"], "search target"),
    "via-host-name": (["map", "80", "--via", "router.lan"], "host names are not resolved"),
    "timeout-negative": (["discover", "--timeout", "-1"], "invalid duration: '-1'"),
    "timeout-zero": (["discover", "--timeout", "0"], "invalid duration: '0'"),
    "timeout-nan": (["discover", "--timeout", "nan"], "invalid duration"),
    "http-timeout-inf": (["list", "--http-timeout", "inf"], "invalid duration"),
    "port-word": (["add", "abc"], "invalid port: 'abc'"),
    "port-range": (["add", "70000"], "invalid port: '70000'"),
    "remote-port": (["pinhole", "add", "80", "--remote-port", "70000"], "invalid port: '70000'"),
    "protocol": (["add", "80", "--protocol", "sctp"], "invalid protocol: 'sctp'"),
    "lease": (["add", "80", "--lease", "-1"], "invalid lease: '-1'"),
    "delete-range-backwards": (["delete", "9000-8000"], "invalid port range"),
    "layers": (["map", "80", "--layers", "9"], "invalid layer count"),
    "pinhole-id": (["pinhole", "delete", "x"], "invalid pinhole id"),
    "internal-client-name": (["add", "80", "--internal-client", "me.lan"], "invalid address"),
    "external-port-with-two-ports": (["add", "80", "81", "--external-port", "90"], "one"),
    "nothing-to-search": (["discover", "--no-multicast", "--no-default-gateways"], "nothing"),
    "pinhole-interface": (["pinhole", "status", "--interface", "lo"], "IPv6"),
}


@pytest.mark.parametrize("name", USAGE_CASES)
def test_bad_input_exit_2_before_any_socket(name: str, no_network: None) -> None:
    argv, needle = USAGE_CASES[name]
    code, out, err = run_cli(*argv)
    assert code == ExitCode.USAGE
    assert out == ""
    line = assert_one_error_line(err)
    assert needle in line, line
    assert len(err.splitlines()) == 1, err
    # argparse's own text names the type function ("invalid _port value"): never shown.
    assert " value:" not in line and "_port" not in line, line

    code, out, err = run_cli(*argv, "--json")
    assert code == ExitCode.USAGE
    obj = assert_json_error(out, ExitCode.USAGE, "usage")
    assert needle in obj["message"]
    assert_one_error_line(err)


def test_unknown_interface_exit_2(no_network: None) -> None:
    code, out, err = run_cli("discover", "--interface", "no-such-if0", "--json")
    assert code == ExitCode.USAGE
    assert "no-such-if0" in assert_json_error(out, ExitCode.USAGE, "usage")["message"]
    assert_one_error_line(err)
    code, _, err = run_cli("discover", "--interface", "192.0.2.77")
    assert code == ExitCode.USAGE and "not an address of this host" in err


def test_interface_names_and_addresses() -> None:
    from aioigd.cli.common import interface_addresses

    assert interface_addresses(["127.0.0.1"]) == ["127.0.0.1"]
    assert "127.0.0.1" in interface_addresses(["lo"])
    with pytest.raises(ValueError, match="no such interface"):
        interface_addresses(["no-such-if0"])


def test_help_epilog_is_the_exit_code_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--help")[0] == 0
    text = capsys.readouterr().out
    for code in ExitCode:
        assert f"  {code.value:>3}  " in text, code
    readme = (ROOT / "README.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} |" in readme, f"README exit-code table lacks {code.value}"


# -- outcomes: one line on stderr, one JSON object ----------------------------------------------


def test_external_ip_none_is_its_own_outcome(fakes: ThreadedFakes) -> None:
    fake = fakes.start(quirks=Quirks(external_ip_value=""))
    code, out, err = run_cli("external-ip", "--gateway", fake.location)
    assert code == ExitCode.NO_EXTERNAL_IP == 9
    assert out == ""
    assert "external" in assert_one_error_line(err)
    code, out, _ = run_cli("external-ip", "--json", "--gateway", fake.location)
    assert code == 9
    assert_json_error(out, ExitCode.NO_EXTERNAL_IP, "no_external_ip")


def test_unparsable_fault_code_is_not_error_0(fakes: ThreadedFakes) -> None:
    fault = (
        b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
        b'<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>abc'
        b"</errorCode><errorDescription>Odd</errorDescription></UPnPError></detail></s:Fault>"
        b"</s:Body></s:Envelope>"
    )
    fake = fakes.start(quirks=Quirks(soap_body=fault))
    code, out, err = run_cli("external-ip", "--json", "--gateway", fake.location)
    assert code == ExitCode.UPNP_FAULT
    obj = assert_json_error(out, ExitCode.UPNP_FAULT, "upnp_fault")
    assert obj["fault_code"] is None and obj["action"] == "GetExternalIPAddress"
    line = assert_one_error_line(err)
    assert "without a readable error code" in line and "error 0" not in line


def test_fault_json_carries_its_code(fake: FakeIGD) -> None:
    code, out, err = run_cli("delete", "6000", "--json", "--gateway", fake.location)
    assert code == ExitCode.UPNP_FAULT
    obj = assert_json_error(out, ExitCode.UPNP_FAULT, "upnp_fault")
    assert obj["fault_code"] == 714
    assert_one_error_line(err)


def test_no_gateway_says_what_was_tried() -> None:
    silent = free_udp_port()
    code, out, err = run_cli(
        "discover", "--json", "--no-multicast", "--no-default-gateways",
        "--timeout", "0.3", "--search", f"127.0.0.1:{silent}",
    )  # fmt: skip
    assert code == ExitCode.NOT_FOUND
    obj = assert_json_error(out, ExitCode.NOT_FOUND, "not_found")
    assert f"searched: 127.0.0.1:{silent}" in obj["message"]
    assert f"127.0.0.1:{silent}" in assert_one_error_line(err)


MAP_FAILURES = {
    "fault": (Quirks(fail_actions={"AddPortMapping": 606}), ExitCode.UPNP_FAULT, "606"),
    "timeout": (
        Quirks(hang_actions=frozenset({"AddPortMapping", "GetExternalIPAddress"})),
        ExitCode.NETWORK,
        "",
    ),
}


@pytest.mark.parametrize("name", MAP_FAILURES)
def test_map_failures_use_the_add_exit_codes(fakes: ThreadedFakes, name: str) -> None:
    quirks, expected, needle = MAP_FAILURES[name]
    fake = fakes.start(quirks=quirks)
    argv = ["map", "6000", "--layers", "1", "--http-timeout", "0.5", "--gateway", fake.location]
    code, out, err = run_cli(*argv)
    assert code == expected, err
    assert out == ""  # nothing on stdout, not even "IPv4 failed:"
    assert needle in assert_one_error_line(err)
    code, out, err = run_cli(*argv, "--json")
    assert code == expected
    assert_json_error(out, expected, expected.name.lower())


def test_map_without_a_gateway_exit_3() -> None:
    silent = free_udp_port()
    code, out, err = run_cli(
        "map", "6000", "--layers", "1", "--json", "--no-multicast", "--no-default-gateways",
        "--timeout", "0.3", "--search", f"127.0.0.1:{silent}",
    )  # fmt: skip
    assert code == ExitCode.NOT_FOUND
    assert_json_error(out, ExitCode.NOT_FOUND, "not_found")
    assert_one_error_line(err)


def test_map_external_port(fakes: ThreadedFakes) -> None:
    fake = fakes.start()
    code, out, err = run_cli(
        "map", "6000", "--external-port", "16000", "--layers", "1", "--json",
        "--gateway", fake.location,
    )  # fmt: skip
    assert code == ExitCode.OK, err
    [obj] = json_lines(out)
    assert obj["public"]["port"] == 16000
    held = fakes.run(lambda: fake.mappings[("TCP", 16000)])
    assert held.internal_port == 6000


# -- stdout closed early ---------------------------------------------------------------------


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_in_process_is_quiet(fakes: ThreadedFakes) -> None:
    fake = fakes.start()
    err = io.StringIO()
    code = main(["list", "--gateway", fake.location], out=_ClosedPipe(), err=err)
    assert code == ExitCode.BROKEN_PIPE == 141
    assert err.getvalue() == ""


def test_broken_pipe_subprocess_is_quiet(fakes: ThreadedFakes) -> None:
    """`aioigd list | head`: the reader is gone before anything is written."""
    fake = fakes.start()

    def fill() -> None:
        for port in range(7000, 7050):
            fake.mappings[("TCP", port)] = FakeMapping(
                "", port, "TCP", port, "192.168.1.10", True, "x", 0, None
            )

    fakes.run(fill)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "aioigd", "list", "--gateway", fake.location],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        os.close(write_end)
    assert proc.returncode == ExitCode.BROKEN_PIPE, proc.stderr
    assert proc.stderr == ""


# -- -v -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_before_or_after_the_command(fake: FakeIGD, where: str) -> None:
    argv = ["external-ip", "--gateway", fake.location]
    argv = ["-v", *argv] if where == "before" else [*argv, "-v"]
    root_handlers = list(logging.getLogger().handlers)
    code, out, err = run_cli(*argv)
    assert code == 0, err
    assert out.strip() == "203.0.113.7"
    traffic = [ln for ln in err.splitlines() if ln.startswith("aioigd.traffic:")]
    assert any("GetExternalIPAddress" in ln for ln in traffic), err  # the SOAP call was logged
    # Only aioigd's loggers: the root logger (asyncio's parent) is left alone, and the
    # handler is gone after main() returns.
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger("asyncio").getEffectiveLevel() > logging.DEBUG
    assert not any(
        isinstance(h, logging.StreamHandler) for h in logging.getLogger("aioigd").handlers
    )


def test_verbose_discovery_log(fake: FakeIGD) -> None:
    code, _, err = run_cli("discover", "-v", *search_args(fake))
    assert code == 0, err
    target = f"('127.0.0.1', {fake.ssdp_port})"
    assert f"M-SEARCH urn:schemas-upnp-org:device:InternetGatewayDevice:1 -> {target}" in err
    assert "SSDP answer from 127.0.0.1: " in err and fake.location in err
    assert f"chose {fake.location}" in err


def test_verbose_traffic_shows_the_fault(fake: FakeIGD) -> None:
    code, _, err = run_cli("delete", "6000", "-v", "--gateway", fake.location)
    assert code == ExitCode.UPNP_FAULT
    assert "fault: GetSpecificPortMappingEntry: UPnP error 714" in err


def test_verbose_refusal_is_logged(fakes: ThreadedFakes) -> None:
    fake = fakes.start(quirks=Quirks(ssdp_location="http://127.0.0.9:1/rootDesc.xml"))
    code, _, err = run_cli("discover", "-v", *search_args(fake, timeout=0.5))
    assert code == ExitCode.NOT_FOUND
    assert "refused: 127.0.0.1 announced LOCATION on another host (127.0.0.9)" in err


# -- upnpc parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_status(fakes: ThreadedFakes, version: int) -> None:
    fake = fakes.start(version=version)
    code, out, err = run_cli("status", "--json", "--gateway", fake.location)
    assert code == 0, err
    [obj] = json_lines(out)
    assert obj["connection_status"] == "Connected"
    assert isinstance(obj["uptime"], int)
    assert obj["external_ip"] == "203.0.113.7"
    assert obj["local_address"] == "127.0.0.1"
    assert obj["service_type"] == fake.service_type
    assert obj["traffic"] == {
        "bytes_sent": 123456789,
        "bytes_received": 987654321,
        "packets_sent": 1234,
        "packets_received": 5678,
    }
    code, out, _ = run_cli("status", *search_args(fake))
    assert code == 0
    assert "Connected" in out and "203.0.113.7" in out and fake.service_type in out
    assert "bytes sent 123456789" in out


def test_status_counters_the_gateway_lacks(fakes: ThreadedFakes) -> None:
    fake = fakes.start()
    fakes.run(lambda: fake.traffic.pop("PacketsSent"))
    code, out, err = run_cli("status", "--json", "--gateway", fake.location)
    assert code == 0, err
    [obj] = json_lines(out)
    assert obj["traffic"]["packets_sent"] is None
    assert obj["traffic"]["bytes_sent"] == 123456789


def test_status_without_get_status_info(fakes: ThreadedFakes) -> None:
    fake = fakes.start(quirks=Quirks(fail_actions={"GetStatusInfo": 401}))
    code, out, err = run_cli("status", "--json", "--gateway", fake.location)
    assert code == 0, err
    [obj] = json_lines(out)
    assert obj["connection_status"] is None and "401" in obj["status_error"]
    assert obj["external_ip"] == "203.0.113.7" and obj["traffic"]["bytes_sent"] == 123456789
    code, out, _ = run_cli("status", "--gateway", fake.location)
    assert code == 0 and "connection:  unknown" in out


def test_status_without_external_address(fakes: ThreadedFakes) -> None:
    fake = fakes.start(quirks=Quirks(external_ip_value=""))
    code, out, err = run_cli("status", "--json", "--gateway", fake.location)
    assert code == 0, err
    [obj] = json_lines(out)
    assert obj["external_ip"] is None and obj["external_ip_error"]


def test_add_several_ports_tcp_and_udp(fakes: ThreadedFakes) -> None:
    fake = fakes.start()
    code, out, err = run_cli(
        "add", "6000", "6001", "--protocol", "both", "--json", "--gateway", fake.location
    )
    assert code == 0, err
    [obj] = json_lines(out)  # one outcome holding the four
    got = sorted((o["protocol"], o["external_port"]) for o in obj["port_mappings"])
    assert got == [("TCP", 6000), ("TCP", 6001), ("UDP", 6000), ("UDP", 6001)]
    assert sorted(fakes.run(lambda: list(fake.mappings))) == got
    # Text: one line per mapping, as each is made.
    code, out, err = run_cli("add", "6002", "6003", "--gateway", fake.location)
    assert code == 0, err
    assert len(out.splitlines()) == 2 and "6002" in out and "6003" in out


def test_add_several_stops_at_the_first_failure(fakes: ThreadedFakes) -> None:
    fake = fakes.start()

    def occupy() -> None:
        fake.mappings[("TCP", 6001)] = FakeMapping(
            "", 6001, "TCP", 6001, "192.168.1.99", True, "other", 0, None
        )

    fakes.run(occupy)
    argv = ["add", "6000", "6001", "6002", "--strict", "--gateway", fake.location]
    code, out, err = run_cli(*argv, "--json")
    assert code == ExitCode.MAPPING
    obj = assert_json_error(out, ExitCode.MAPPING, "mapping")
    assert "done before it: TCP" in obj["message"] and ":6000" in obj["message"]
    assert_one_error_line(err)
    # 6000 stays (like one `add`), 6002 was not tried.
    assert sorted(fakes.run(lambda: list(fake.mappings))) == [("TCP", 6000), ("TCP", 6001)]


@pytest.mark.parametrize("version", [1, 2])
def test_delete_range(fakes: ThreadedFakes, version: int) -> None:
    fake = fakes.start(version=version)
    code, _, err = run_cli("add", "6000", "6001", "6002", "6010", "--gateway", fake.location)
    assert code == 0, err

    def other() -> None:  # another host's mapping in the range stays
        fake.mappings[("TCP", 6005)] = FakeMapping(
            "", 6005, "TCP", 6005, "192.168.1.99", True, "other", 0, None
        )

    if version == 1:  # (on v2 the gateway decides: FakeIGD ignores NewManage)
        fakes.run(other)
    code, out, err = run_cli("delete", "6000-6005", "--json", "--gateway", fake.location)
    assert code == 0, err
    [obj] = json_lines(out)
    assert (obj["deleted"], obj["start_port"], obj["end_port"]) == (True, 6000, 6005)
    left = sorted(fakes.run(lambda: list(fake.mappings)))
    if version == 1:
        assert obj["count"] == 3
        assert left == [("TCP", 6005), ("TCP", 6010)]
    else:
        assert "count" not in obj
        assert left == [("TCP", 6010)]
        assert fakes.run(lambda: fake.actions().count("DeletePortMappingRange")) == 1


def test_delete_both_protocols(fakes: ThreadedFakes) -> None:
    fake = fakes.start()
    assert run_cli("add", "6000", "--protocol", "TCP,UDP", "--gateway", fake.location)[0] == 0
    code, out, err = run_cli("delete", "6000", "--protocol", "both", "--gateway", fake.location)
    assert code == 0, err
    assert out.splitlines() == ["deleted TCP 6000", "deleted UDP 6000"]
    assert fakes.run(lambda: dict(fake.mappings)) == {}


def test_json_outcome_for_every_command(fakes: ThreadedFakes) -> None:
    """Each command prints exactly one JSON object, success or not."""
    fake = fakes.start()
    gw = ["--gateway", fake.location]
    for argv in (
        ["discover", *gw],
        ["external-ip", *gw],
        ["status", *gw],
        ["list", *gw],
        ["add", "6000", *gw],
        ["delete", "6000", *gw],
        ["delete", "6000", *gw],  # the second one fails: 714
        ["map", "6001", "--layers", "1", *gw],
        ["add", "x"],
    ):
        _, out, _ = run_cli(*argv, "--json")
        assert len(json_lines(out)) == 1, (argv, out)
        json.loads(out)


def test_add_and_delete_for_one_remote_host(fakes: ThreadedFakes) -> None:
    fake = fakes.start()
    code, out, err = run_cli(
        "add", "6000", "--remote-host", "198.51.100.7", "--json", "--gateway", fake.location
    )
    assert code == 0, err
    [obj] = json_lines(out)
    assert (obj["remote_host"], obj["external_port"], obj["internal_port"]) == (
        "198.51.100.7",
        6000,
        6000,
    )
    held = fakes.run(lambda: fake.mappings[("TCP", 6000)])
    assert held.remote_host == "198.51.100.7"
    sent = fakes.run(lambda: [r.args for r in fake.requests if r.action == "AddPortMapping"])
    assert [a["NewRemoteHost"] for a in sent] == ["198.51.100.7"]
    code, out, err = run_cli(
        "delete", "6000", "--remote-host", "198.51.100.7", "--gateway", fake.location
    )
    assert code == 0, err
    deletes = fakes.run(lambda: [r.args for r in fake.requests if r.action == "DeletePortMapping"])
    assert [a["NewRemoteHost"] for a in deletes] == ["198.51.100.7"]
    assert fakes.run(lambda: dict(fake.mappings)) == {}


def test_interrupted_json_outcome() -> None:
    """Ctrl-C during a search: exit 130, "aioigd: interrupted" and, under --json, an object."""
    silent = free_udp_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "aioigd", "discover", "--json", "-v", "--no-multicast",
            "--no-default-gateways", "--timeout", "60", "--search", f"127.0.0.1:{silent}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        # The debug log says when the search is under way (--json prints no progress).
        for line in proc.stderr:
            if "M-SEARCH" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert err.strip().splitlines()[-1] == "aioigd: interrupted"
    assert_json_error(out, ExitCode.INTERRUPTED, "interrupted")
