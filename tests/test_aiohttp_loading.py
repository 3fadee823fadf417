"""aiohttp imported in a worker thread: a caller never gets the half-imported module."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.machinery
import sys
import types
from typing import Any

import aiohttp
import pytest

import aioigd.httpclient as httpclient


def _half_imported() -> types.ModuleType:
    """aiohttp as another thread leaves it halfway through its ``__init__``: some names
    already bound (``ClientSession``), others (``DummyCookieJar``) not yet."""
    module = types.ModuleType("aiohttp")
    module.ClientSession = aiohttp.ClientSession  # type: ignore[attr-defined]
    spec = importlib.machinery.ModuleSpec("aiohttp", None)
    spec._initializing = True  # type: ignore[attr-defined]  # what CPython's import sets
    module.__spec__ = spec
    return module


async def test_a_half_imported_aiohttp_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    monkeypatch.setattr(httpclient, "_import", future)
    monkeypatch.setitem(sys.modules, "aiohttp", _half_imported())
    loading = asyncio.create_task(httpclient.load_aiohttp())
    await asyncio.sleep(0.05)
    assert not loading.done(), "handed out aiohttp before its import finished"
    monkeypatch.setitem(sys.modules, "aiohttp", aiohttp)
    future.set_result(aiohttp)
    assert await asyncio.wait_for(loading, 2) is aiohttp


def test_a_finished_import_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpclient, "_import", None)
    assert httpclient._imported_aiohttp() is aiohttp
    monkeypatch.setitem(sys.modules, "aiohttp", _half_imported())
    assert httpclient._imported_aiohttp() is None
