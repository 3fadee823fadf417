"""Busy routers on real miniupnpd: mapping one port takes a bounded number of requests,
whatever the table's size (issue 10). Ports: 30000+ for the filler, 9500 for the map.

Reading a table of ~1,000 entries one by one took miniupnpd 18.7 s (each request gets
slower as the table grows); a cold ``aioigd add`` must not pay that, and must never send a
listing that covers 100 entries or more (miniupnpd 2.3.1 crashes).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest

from aioigd.cli import ExitCode
from tests.integration.test_miniupnpd import aioigd, run_script
from tests.netlab import Lab

MakeLab = Callable[..., Lab]

_FILL = r"""
import asyncio, json, sys
import aioigd

async def main(location, client, count):
    async with await aioigd.Gateway.from_location(location, http_timeout=30) as gw:
        for port in range(30000, 30000 + count):
            await gw.add_port_mapping(
                port, protocol="TCP", internal_port=port, internal_client=client,
                description="filler", lease=0,
            )
    print(json.dumps({"added": count}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""

_SOAP = re.compile(r"SOAPAction: [^#\s]+#(\w+)")


@pytest.mark.parametrize("size", [0, 101, 500, 1000])
def test_cold_add_takes_bounded_requests_whatever_the_table_size(
    make_lab: MakeLab, size: int
) -> None:
    lab = make_lab(1)
    r1 = lab.router(1)
    if size:
        (done,) = run_script(lab, _FILL, r1.location, lab.client_ip, str(size), timeout=120)
        assert done == {"added": size}
    before = len(lab.miniupnpd_log(1))
    started = time.monotonic()
    proc = aioigd(lab, "add", "9500", "--json", "--gateway", r1.location)
    took = time.monotonic() - started
    assert proc.returncode == ExitCode.OK, proc.stderr
    mapping = json.loads(proc.stdout)
    assert (mapping["external_port"], mapping["internal_client"]) == (9500, lab.client_ip)
    actions = _SOAP.findall(lab.miniupnpd_log(1)[before:])
    print(f"table {size}: cold add {took * 1000:.0f} ms, {len(actions)} requests: {actions}")
    # External IP, size probe, (small table: its listings), add, verify.
    assert len(actions) <= 6, actions
    assert actions.count("AddPortMapping") == 1
    if size >= 100:
        assert "GetListOfPortMappings" not in actions  # never a listing over 100 entries
    assert lab.miniupnpd_pid(1) is not None  # alive
    # The router's own rules, not `upnpc -l`: listing 1,000 entries one by one takes upnpc
    # tens of seconds on a loaded machine.
    assert ("TCP", 9500, lab.client_ip, 9500) in lab.redirects(1)
