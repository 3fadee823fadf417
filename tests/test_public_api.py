"""The public API: every exported name resolves, lazily, and stays typed."""

from __future__ import annotations

import subprocess
import sys

import aioigd


def test_every_public_name_resolves() -> None:
    for name in aioigd.__all__:
        assert getattr(aioigd, name) is not None, name
    assert sorted(dir(aioigd)) == sorted(aioigd.__all__)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        aioigd.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_the_cli_does_not_import_aiohttp() -> None:
    """Start-up cost: `aioigd --help` and argument errors must not pay for aiohttp."""
    code = "import sys, aioigd.cli; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_mapping_and_firewall_names_are_one_object_wherever_imported() -> None:
    import aioigd.errors
    import aioigd.firewall
    import aioigd.mapper

    assert aioigd.PortMapper is aioigd.mapper.PortMapper
    assert aioigd.PortInUse is aioigd.errors.PortInUse is aioigd.mapper.PortInUse
    assert issubclass(aioigd.PortInUse, aioigd.MappingFailed)
    assert (
        aioigd.FirewallUnavailable
        is aioigd.errors.FirewallUnavailable
        is aioigd.firewall.FirewallUnavailable
    )
    assert issubclass(aioigd.FirewallUnavailable, aioigd.IGDError)
    assert "PortMapper" in aioigd.__all__ and "PortInUse" in aioigd.__all__
