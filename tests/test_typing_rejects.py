"""Mistakes ``mypy --strict`` must catch in code using aioigd (issue 13): each line of
the snippet below marked ``# E: CODE`` must get that error, and no other line any.

tests/type_usage.py holds the same cases behind ``type: ignore[...]`` (strict mypy
flags an unused ignore, so it fails there too if a case stops being an error); this
test shows the errors themselves, on a file a user could have written.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SNIPPET = """\
from __future__ import annotations

import aioigd


async def mistakes(gw: aioigd.Gateway, pm: aioigd.PortMapper) -> None:
    await aioigd.discover(timeout=2.0, unicast=["192.168.1.1"])
    await aioigd.discover(timeot=2)  # E: call-arg
    await aioigd.discover_all(multicats=False)  # E: call-arg
    await pm.map_port(8000, protocol="UDP")
    await pm.map_port(8000, protocol=aioigd.Transport.UDP)
    await pm.map_port(8000, protocol="SCTP")  # E: arg-type
    await pm.keep(8000, protocol="tcp/udp")  # E: arg-type
    await pm.map_port(8000, 8001)  # E: call-arg
    await gw.add_port_mapping(80, "TCP", 80, "192.168.1.2")  # E: call-arg
    await gw.add_port_mapping(80, protocol="TCP", internal_port=80, internal_client="h")
    await gw.delete_port_mapping(80, "ICMP")  # E: arg-type
    aioigd.MultiLayerMapper(8000, timeout=2.0)  # E: call-arg
    aioigd.MultiLayerMapper(8000, search_timeout=2.0)
    await aioigd.Gateway.from_location("http://192.168.1.1/d.xml", timeout=2)  # E: call-arg
"""

_ERROR = re.compile(r"^[^:]+:(\d+):(?:\d+:)? error: .*\[([a-z-]+)\]$")


def test_mypy_rejects_the_mistakes(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    snippet = tmp_path / "user_code.py"
    snippet.write_text(SNIPPET)
    expected = {
        n: line.rsplit("# E: ", 1)[1].strip()
        for n, line in enumerate(SNIPPET.splitlines(), 1)
        if "# E: " in line
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(snippet)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        timeout=600,  # a cold cache on a loaded machine; typically a few seconds
    )
    got: dict[int, set[str]] = {}
    for line in proc.stdout.splitlines():
        m = _ERROR.match(line)
        if m:
            got.setdefault(int(m.group(1)), set()).add(m.group(2))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert set(got) == set(expected), proc.stdout
    for n, code in expected.items():
        assert code in got[n], (n, SNIPPET.splitlines()[n - 1], proc.stdout)
