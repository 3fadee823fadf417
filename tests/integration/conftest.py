"""Fixtures for the network-namespace integration tests (root and miniupnpd needed)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from tests.netlab import Lab, require_root

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def make_lab(request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    """Build ``Lab(layers, **kwargs)`` on demand (skip unless root); every lab is torn down.

    When the test fails, the miniupnpd log tails go to the report's captured stderr.
    """
    require_root()
    labs: list[Lab] = []

    def factory(layers: int = 1, **kwargs: Any) -> Lab:
        lab = Lab(layers, **kwargs)
        labs.append(lab)
        return lab.__enter__()

    yield factory
    for lab in labs:
        if request.node.stash.get(_FAILED, False):
            print(lab.log_tails(), file=sys.stderr)
        lab.close()
