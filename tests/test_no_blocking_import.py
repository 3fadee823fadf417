"""Issue 13: the first call inside an application's running loop must not import heavy
modules there (aiohttp's import stalled the loop for 0.2-0.5 s).

The README's library example runs against the FakeIGD under ``python -X dev`` (asyncio
debug mode: every callback or task step over 0.1 s is logged as "Executing <Task ...>
took N seconds"). An import hook in the child records which modules are imported on the
loop's thread while the loop runs. The test fails when a heavy module is among them, or
when a slow-step warning coincides with imports on the loop (a slow step on a loaded
machine with no import behind it is not this bug).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Packages whose import alone stalls a loop for tens of milliseconds or more.
HEAVY = ("aiohttp", "yarl", "multidict", "aiohappyeyeballs", "propcache", "frozenlist")

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, threading, time
    from importlib.abc import MetaPathFinder

    on_loop = []

    class Recorder(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            try:
                running = asyncio.get_running_loop() is not None
            except RuntimeError:
                running = False
            if running and threading.current_thread() is threading.main_thread():
                on_loop.append(name)
            return None

    sys.meta_path.insert(0, Recorder())

    import aioigd                      # the README's imports
    from aioigd.testing import FakeIGD # the harness's gateway

    async def main():
        async with FakeIGD() as fake:
            gateway = await aioigd.discover(
                multicast=False, default_gateways=False,
                unicast=[(fake.host, fake.ssdp_port)], timeout=10,
            )
            async with gateway, aioigd.PortMapper(gateway) as mapper:
                print(await gateway.get_external_ip_address())
                async with mapper.mapped(8000, lease=600) as m:
                    print(f"reachable at {m.external_ip}:{m.external_port}")

    asyncio.run(main())
    print("ON_LOOP " + json.dumps(on_loop))
    """
)


def test_readme_example_does_not_import_heavy_modules_on_the_loop(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONASYNCIODEBUG="1")
    proc = subprocess.run(
        [sys.executable, "-X", "dev", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "reachable at 203.0.113.7:8000" in proc.stdout, proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("ON_LOOP "))
    on_loop: list[str] = json.loads(line.removeprefix("ON_LOOP "))
    heavy = sorted({n for n in on_loop if n.split(".", 1)[0] in HEAVY})
    assert not heavy, f"imported on the running loop: {heavy}"
    slow = [ln for ln in proc.stderr.splitlines() if "Executing <" in ln and " took " in ln]
    assert not (slow and on_loop), f"slow steps {slow} while importing on the loop: {on_loop}"


def test_the_check_sees_an_import_on_the_loop(tmp_path: Path) -> None:
    """The recorder is not blind: an import inside a coroutine is seen."""
    script = tmp_path / "probe.py"
    script.write_text(
        CHILD.split("import aioigd")[0]
        + "async def main():\n    import xml.dom.minidom  # noqa\n"
        + "asyncio.run(main())\nprint('ON_LOOP ' + json.dumps(on_loop))\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("ON_LOOP "))
    assert "xml.dom.minidom" in json.loads(line.removeprefix("ON_LOOP "))
