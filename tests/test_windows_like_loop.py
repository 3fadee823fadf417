"""The CLI and MultiLayerMapper on a loop without add_reader/add_signal_handler (as Windows').

Issue 12: ``loop.add_signal_handler`` made every CLI command crash on Windows and the
traceroute's ``loop.add_reader`` made multi-layer mapping crash there. Here the same
code runs on :class:`tests.winloop.WindowsLikeLoop`, in process and in a subprocess
that is sent Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from aioigd.multilayer import MultiLayerMapper, StopReason
from aioigd.testing import FakeIGD
from tests.test_cli import ROOT, ThreadedFakes, json_lines, run_cli
from tests.winloop import WindowsLikeLoop, install

_RUN_CLI = (
    "import sys, tests.winloop as w; w.install(); from aioigd.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture
def fakes() -> Iterator[ThreadedFakes]:
    tf = ThreadedFakes()
    try:
        yield tf
    finally:
        tf.close()


@pytest.fixture
def windows_like_policy() -> Iterator[None]:
    old = asyncio.get_event_loop_policy()
    install()
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(old)


def test_the_loop_lacks_what_windows_lacks() -> None:
    loop = WindowsLikeLoop()
    try:
        with pytest.raises(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, lambda: None)
        with pytest.raises(NotImplementedError):
            loop.add_reader(0, lambda: None)
    finally:
        loop.close()


def test_demo_completes(windows_like_policy: None) -> None:
    code, out, err = run_cli("demo", "--json")
    assert code == 0, err
    assert "Traceback" not in err
    steps = {o["step"]: o for o in json_lines(out)}
    assert steps["released"]["remaining"] == 0
    assert steps["public"]["complete"] is True and len(steps["public"]["layers"]) == 3
    assert steps["chain_released"]["remaining"] == 0


async def _three_layers() -> tuple[list[int], list[int]]:
    assert isinstance(asyncio.get_running_loop(), WindowsLikeLoop)
    ips = ("10.64.0.2", "100.64.7.3", "33.0.0.44")
    fakes = [FakeIGD(f"127.0.0.{i + 2}", external_ip=ip) for i, ip in enumerate(ips)]
    for fake in fakes:
        await fake.start()
    try:
        via = [fakes[0].location] + [f"{f.host}:{f.ssdp_port}" for f in fakes[1:]]
        async with MultiLayerMapper(7000, via=via, probe_target=None, search_timeout=1.0) as result:
            assert result.complete and result.public_ip == "33.0.0.44"
            held = [len(f.mappings) for f in fakes]
        return held, [len(f.mappings) for f in fakes]
    finally:
        for fake in fakes:
            await fake.stop()


def test_fake_three_layer_map_completes() -> None:
    with asyncio.Runner(loop_factory=WindowsLikeLoop) as runner:
        held, after = runner.run(_three_layers())
    assert held == [1, 1, 1] and after == [0, 0, 0]


async def _traced() -> tuple[int, bool, StopReason | None, str]:
    async with FakeIGD("127.0.0.2", external_ip="10.0.0.2") as fake:
        # Tracing towards loopback: the target answers at TTL 1, so there is no further
        # router; the hop finder must get there without add_reader.
        m = MultiLayerMapper(7000, via=[fake.location], probe_target="127.0.0.1", layers=2)
        result = await m.map()
        try:
            return len(result.layers), result.complete, result.stop_reason, result.reason
        finally:
            assert await m.release() == []


def test_traced_map_gives_a_typed_partial_result_not_a_crash() -> None:
    with asyncio.Runner(loop_factory=WindowsLikeLoop) as runner:
        layers, complete, stop, reason = runner.run(_traced())
    assert (layers, complete, stop) == (1, False, StopReason.NO_FURTHER_ROUTER), reason
    assert "no further router" in reason


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_held_three_layer_map_cleans_up(fakes: ThreadedFakes, sig: int) -> None:
    chain = [
        fakes.start(f"127.0.0.{i + 2}", external_ip=ip)
        for i, ip in enumerate(("10.64.0.2", "100.64.7.3", "33.0.0.44"))
    ]
    via = [chain[0].location] + [f"{f.host}:{f.ssdp_port}" for f in chain[1:]]
    args = ["map", "8400", "--hold", "--no-multicast", "--no-default-gateways"]
    for v in via:
        args += ["--via", v]
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN_CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        # A background-job parent leaves SIGINT ignored; Ctrl-C needs the default back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        # "holding" is printed once the signal handlers are in place.
        while not any("holding" in line for line in seen):
            ready, _, _ = select.select([proc.stderr], [], [], 30)
            line = proc.stderr.readline() if ready else ""
            assert line, f"no 'holding' line (rc {proc.poll()}): {seen}"
            seen.append(line)
        assert fakes.run(lambda: [len(f.mappings) for f in chain]) == [1, 1, 1]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()  # our own child, by its pid
            proc.wait()
    assert proc.returncode == 0, "".join(seen) + err
    assert "Traceback" not in err
    assert "33.0.0.44:8400" in out, out
    assert fakes.run(lambda: [len(f.mappings) for f in chain]) == [0, 0, 0]
