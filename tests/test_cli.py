"""The command line, against FakeIGDs running in a background thread's event loop.

``aioigd.cli.main`` runs its own ``asyncio.run``, so these are plain sync tests.
Discovery is always loopback-only: ``--no-multicast --no-default-gateways
--search 127.0.0.1:PORT`` or ``--gateway URL``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aioigd.cli import main
from aioigd.testing import FakeIGD, FakeMapping, Quirks

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


class ThreadedFakes:
    """FakeIGDs served by an event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fakes: list[FakeIGD] = []

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the fakes' loop (for touching their state safely)."""
        fut: Future[T] = Future()

        def call() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:  # pragma: no cover - surfaced below
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(call)
        return fut.result(10)

    def start(self, host: str = "127.0.0.1", **kwargs: Any) -> FakeIGD:
        fake = FakeIGD(host, **kwargs)
        asyncio.run_coroutine_threadsafe(fake.start(), self.loop).result(10)
        self.fakes.append(fake)
        return fake

    def stop(self, fake: FakeIGD) -> None:
        asyncio.run_coroutine_threadsafe(fake.stop(), self.loop).result(10)

    def close(self) -> None:
        for fake in self.fakes:
            self.stop(fake)

        async def drain() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(drain(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


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


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return int(code), out.getvalue(), err.getvalue()


def search_args(*fakes: FakeIGD, timeout: float = 2.0) -> list[str]:
    args = ["--no-multicast", "--no-default-gateways", "--timeout", str(timeout)]
    for f in fakes:
        args += ["--search", f"{f.host}:{f.ssdp_port}"]
    return args


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def assert_one_error_line(err: str) -> str:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("aioigd: error:")]
    assert len(errors) == 1, err
    # Nothing else but progress lines ("... ") on stderr.
    others = [
        line for line in err.splitlines() if line and not line.startswith(("aioigd:", "... "))
    ]
    assert others == [], err
    return errors[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- discover ------------------------------------------------------------------------------


def test_discover_text(fake: FakeIGD) -> None:
    code, out, err = run_cli("discover", *search_args(fake))
    assert code == 0, err
    assert fake.location in out
    assert "WANIPConnection:2" in out
    assert "Traceback" not in err


def test_discover_json(fake: FakeIGD) -> None:
    code, out, _ = run_cli("discover", "--json", *search_args(fake))
    assert code == 0
    [obj] = json_lines(out)
    assert obj["location"] == fake.location
    assert obj["udn"] == fake.udn
    assert obj["service_type"] == fake.service_type


def test_discover_with_gateway_url(fake: FakeIGD) -> None:
    code, out, _ = run_cli("discover", "--json", "--gateway", fake.location)
    assert code == 0
    assert json_lines(out)[0]["location"] == fake.location


def test_discover_all(fakes: ThreadedFakes) -> None:
    a = fakes.start("127.0.0.2", quirks=Quirks(ssdp_copies=3))
    b = fakes.start("127.0.0.3", version=1)
    code, out, err = run_cli("discover", "--all", "--json", *search_args(a, b, timeout=0.5))
    assert code == 0, err
    [found] = json_lines(out)  # one outcome: the list inside one object
    objs = found["gateways"]
    assert sorted(o["location"] for o in objs) == sorted([a.location, b.location])

    code, out, _ = run_cli("discover", "--all", *search_args(a, b, timeout=0.5))
    assert code == 0
    assert a.location in out and b.location in out
    assert len(out.strip().splitlines()) == 2


def test_no_gateway_exit_3() -> None:
    silent = free_udp_port()
    code, out, err = run_cli(
        "discover",
        "--no-multicast",
        "--no-default-gateways",
        "--timeout",
        "0.3",
        "--search",
        f"127.0.0.1:{silent}",
    )
    assert code == 3
    assert out == ""
    assert_one_error_line(err)


def test_no_gateway_json_exit_3() -> None:
    silent = free_udp_port()
    code, out, err = run_cli(
        "external-ip", "--json", *["--no-multicast", "--no-default-gateways"],
        "--timeout", "0.3", "--search", f"127.0.0.1:{silent}",
    )  # fmt: skip
    assert code == 3
    [obj] = json_lines(out)
    assert obj["error"] == "not_found" and obj["exit_code"] == 3
    assert obj["message"] in assert_one_error_line(err)


# -- external-ip / list / add / delete -----------------------------------------------------


def test_external_ip(fake: FakeIGD) -> None:
    code, out, _ = run_cli("external-ip", *search_args(fake))
    assert code == 0
    assert out.strip() == "203.0.113.7"

    code, out, _ = run_cli("external-ip", "--json", "--gateway", fake.location)
    assert code == 0
    [obj] = json_lines(out)
    assert obj["external_ip"] == "203.0.113.7"


def test_list_empty_and_filled(fakes: ThreadedFakes, fake: FakeIGD) -> None:
    code, out, _ = run_cli("list", "--gateway", fake.location)
    assert code == 0
    assert "no port mappings" in out

    code, out, _ = run_cli("list", "--json", "--gateway", fake.location)
    assert code == 0
    assert json_lines(out) == [
        {"location": fake.location, "port_mappings": [], "skipped_entries": 0}
    ]

    def fill() -> None:
        fake.mappings[("TCP", 8080)] = FakeMapping(
            "", 8080, "TCP", 80, "192.168.1.10", True, "web", 0, None
        )
        fake.mappings[("UDP", 5353)] = FakeMapping(
            "", 5353, "UDP", 5353, "192.168.1.11", True, "mdns", 0, None
        )

    fakes.run(fill)
    code, out, _ = run_cli("list", "--json", *search_args(fake))
    assert code == 0
    [listed] = json_lines(out)
    objs = listed["port_mappings"]
    got = sorted((o["protocol"], o["external_port"], o["internal_client"]) for o in objs)
    assert got == [("TCP", 8080, "192.168.1.10"), ("UDP", 5353, "192.168.1.11")]
    assert {"internal_port", "description", "lease", "enabled"} <= set(objs[0])

    code, out, _ = run_cli("list", "--gateway", fake.location)
    assert code == 0
    assert len(out.strip().splitlines()) == 2
    assert "8080" in out and "192.168.1.10" in out


@pytest.mark.parametrize("version", [1, 2])
def test_add_and_delete(fakes: ThreadedFakes, version: int) -> None:
    fake = fakes.start(version=version)
    code, out, err = run_cli("add", "6000", "--json", "--lease", "600", "--gateway", fake.location)
    assert code == 0, err
    [obj] = json_lines(out)
    for key in (
        "external_ip",
        "external_port",
        "internal_client",
        "internal_port",
        "protocol",
        "lease",
    ):
        assert key in obj, key
    assert obj["external_ip"] == "203.0.113.7"
    assert obj["external_port"] == 6000
    assert obj["internal_port"] == 6000
    assert obj["internal_client"] == "127.0.0.1"
    assert obj["protocol"] == "TCP"
    assert 0 < obj["lease"] <= 600
    # `add` leaves the mapping in place when the command exits.
    assert fakes.run(lambda: ("TCP", 6000) in fake.mappings)

    code, out, err = run_cli(
        "add", "6001", "--protocol", "udp", "--external-port", "16001",
        "--internal-client", "192.168.1.50", "--description", "cli test",
        *search_args(fake),
    )  # fmt: skip
    assert code == 0, err
    assert "UDP" in out and "16001" in out and "192.168.1.50:6001" in out
    held = fakes.run(lambda: fake.mappings[("UDP", 16001)])
    assert (held.internal_client, held.internal_port, held.description) == (
        "192.168.1.50",
        6001,
        "cli test",
    )

    code, out, _ = run_cli("delete", "6000", "--json", "--gateway", fake.location)
    assert code == 0
    [obj] = json_lines(out)
    assert obj["deleted"] is True and obj["external_port"] == 6000
    code, out, _ = run_cli("delete", "16001", "--protocol", "UDP", "--gateway", fake.location)
    assert code == 0
    assert "deleted" in out
    assert fakes.run(lambda: dict(fake.mappings)) == {}


def test_add_strict_port_in_use_exit_6(fakes: ThreadedFakes, fake: FakeIGD) -> None:
    def occupy() -> None:
        fake.mappings[("TCP", 7000)] = FakeMapping(
            "", 7000, "TCP", 7000, "192.168.1.99", True, "other", 0, None
        )

    fakes.run(occupy)
    code, out, err = run_cli("add", "7000", "--strict", "--gateway", fake.location)
    assert code == 6
    assert out == ""
    assert "7000" in assert_one_error_line(err)
    assert fakes.run(lambda: list(fake.mappings)) == [("TCP", 7000)]


def test_add_permanent_only_note(fakes: ThreadedFakes) -> None:
    fake = fakes.start(version=1, quirks=Quirks(permanent_only=True))
    code, out, err = run_cli("add", "6000", "--gateway", fake.location)
    assert code == 0
    assert "permanent" in out
    assert "permanent" in err
    code, out, _ = run_cli("add", "6001", "--json", "--gateway", fake.location)
    [obj] = json_lines(out)
    assert obj["lease"] == 0 and obj["permanent_only"] is True


def test_delete_missing_is_upnp_fault_exit_4(fake: FakeIGD) -> None:
    code, out, err = run_cli("delete", "6000", "--gateway", fake.location)
    assert code == 4
    assert out == ""
    assert "714" in assert_one_error_line(err)


def test_upnp_fault_exit_4(fakes: ThreadedFakes) -> None:
    fake = fakes.start(quirks=Quirks(fail_actions={"GetExternalIPAddress": 501}))
    code, out, err = run_cli("external-ip", "--gateway", fake.location)
    assert code == 4
    assert out == ""
    line = assert_one_error_line(err)
    assert "501" in line and "GetExternalIPAddress" in line


def test_hostile_reply_exit_1(fakes: ThreadedFakes) -> None:
    fake = fakes.start(quirks=Quirks(external_ip_value="<b>x</b>"))
    code, out, err = run_cli("external-ip", "--gateway", fake.location)
    assert code == 1
    assert out == ""
    assert_one_error_line(err)


def test_hanging_gateway_exit_5_within_http_timeout(fakes: ThreadedFakes) -> None:
    fake = fakes.start(quirks=Quirks(hang_actions=frozenset({"GetExternalIPAddress"})))
    code, out, err = run_cli("external-ip", "--http-timeout", "0.5", "--gateway", fake.location)
    assert code == 5
    assert_one_error_line(err)


# -- error paths ---------------------------------------------------------------------------


def test_unreachable_gateway_exit_5() -> None:
    url = f"http://127.0.0.1:{free_port()}/rootDesc.xml"
    for command in (["external-ip"], ["list"], ["discover"], ["add", "6000"], ["delete", "1"]):
        code, out, err = run_cli(*command, "--gateway", url)
        assert code == 5, (command, err)
        assert out == ""
        line = assert_one_error_line(err)
        assert len(err.strip().splitlines()) == 1, err
        assert line.startswith("aioigd: error:")


def test_unreachable_gateway_json_exit_5() -> None:
    url = f"http://127.0.0.1:{free_port()}/rootDesc.xml"
    code, out, err = run_cli("external-ip", "--json", "--gateway", url)
    assert code == 5
    [obj] = json_lines(out)
    assert obj["error"] == "network" and obj["exit_code"] == 5 and "127.0.0.1" in obj["message"]
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "http://user:pw@127.0.0.1:1/x",
        "not a url",
    ],
)
def test_unsafe_gateway_url_one_line(url: str) -> None:
    code, out, err = run_cli("external-ip", "--gateway", url)
    assert code != 0
    assert out == ""
    assert "root:" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert_one_error_line(err)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["add"],
        ["add", "70000"],
        ["add", "0"],
        ["add", "80", "--protocol", "sctp"],
        ["add", "80", "--lease", "-1"],
        ["delete", "port"],
        ["discover", "--timeout", "soon"],
    ],
    ids=lambda a: " ".join(a) or "nothing",
)
def test_bad_args_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(*argv)
    assert code == 2
    assert out == ""
    assert "--help" in assert_one_error_line(err)
    assert len(err.splitlines()) == 1, err
    assert capsys.readouterr().err == ""  # nothing printed behind main()'s back


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--help")[0] == 0
    assert "discover" in capsys.readouterr().out
    assert run_cli("--version")[0] == 0
    assert "aioigd" in capsys.readouterr().out


# -- demo ----------------------------------------------------------------------------------


def test_demo_in_process_json() -> None:
    code, out, err = run_cli("demo", "--json")
    assert code == 0, err
    steps = [o["step"] for o in json_lines(out)]
    for step in ("fake_gateway", "discovered", "external_ip", "mapped", "listed", "released"):
        assert step in steps
    released = next(o for o in json_lines(out) if o["step"] == "released")
    assert released["remaining"] == 0


def test_demo_subprocess() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "aioigd", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    for n in range(1, 7):
        assert any(line.startswith(f"{n}. ") for line in lines), (n, proc.stdout)
    assert "203.0.113.7" in proc.stdout
