"""Honest answers from real miniupnpd (issue 10): a secure-mode refusal is said as such, and
``delete`` of nothing says "not found". Ports 9600-9699."""

from __future__ import annotations

import re
from collections.abc import Callable

from aioigd.cli import ExitCode
from tests.integration.test_miniupnpd import aioigd
from tests.netlab import Lab

MakeLab = Callable[..., Lab]
_SOAP = re.compile(r"SOAPAction: [^#\s]+#(\w+)")


def test_secure_mode_refusal_is_one_add_and_a_clear_message(make_lab: MakeLab) -> None:
    """miniupnpd's secure mode answers 718 for a free port when the internal client is
    not the requester: was 9 AddPortMappings, AddAnyPortMapping, then "606"/PortInUse."""
    lab = make_lab(1)
    r1 = lab.router(1)
    other = lab.client_ip.rsplit(".", 1)[0] + ".3"
    for strict in ([], ["--strict"]):
        before = len(lab.miniupnpd_log(1))
        proc = aioigd(
            lab, "add", "9600", "--internal-client", other, "--gateway", r1.location, *strict
        )
        assert proc.returncode == ExitCode.MAPPING, proc.stderr
        assert "refuses to map TCP 9600 to " + other in proc.stderr
        assert "secure mode" in proc.stderr and proc.stderr.count("\n") == 1
        actions = _SOAP.findall(lab.miniupnpd_log(1)[before:])
        assert actions.count("AddPortMapping") == 1, actions
        assert "AddAnyPortMapping" not in actions
    assert lab.upnpc_mappings(1) == []


def test_delete_of_nothing_says_not_found(make_lab: MakeLab) -> None:
    lab = make_lab(1)
    r1 = lab.router(1)
    proc = aioigd(lab, "delete", "9601", "--gateway", r1.location)
    assert proc.returncode == ExitCode.UPNP_FAULT, proc.stderr
    assert proc.stdout == "" and "714" in proc.stderr
    assert aioigd(lab, "add", "9601", "--gateway", r1.location).returncode == ExitCode.OK
    proc = aioigd(lab, "delete", "9601", "--gateway", r1.location)
    assert proc.returncode == ExitCode.OK and "deleted TCP 9601" in proc.stdout
    assert lab.upnpc_mappings(1) == []
