"""Every Python example in README.md and docs/*.md is real code.

Every ```python block must compile as a script (no top-level ``await``/``async with``),
and each ``aioigd.NAME`` and ``from aioigd... import NAME`` it uses must exist. Blocks
preceded by an HTML comment run as well:

- ``<!-- docs: run -->``: against a FakeIGD on loopback. ``asyncio.run(main())`` is given
  a loop in which a fake gateway is running, and ``aioigd.discover`` (also as
  :mod:`aioigd.multilayer` uses it) searches only that fake's SSDP port. The example must
  finish, must have added a mapping (or pinhole) on the fake, must leave its table empty,
  and must have printed the fake's external address (IPv4 examples).
- ``<!-- docs: run-until-cancelled -->``: the same, for examples that run until Ctrl-C:
  once the fake holds what the example asked for, ``main()`` is cancelled as
  ``asyncio.run`` does on Ctrl-C, and the table must be empty afterwards.
- Add ``ipv6`` to either to run against a fake with a firewall on ``::1``.
- ``<!-- docs: standalone -->``: runs as it is (it starts its own fakes); test functions
  it defines (``async def test_...()``) are run too.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import io
import re
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aioigd
import aioigd.anymapper
import aioigd.discovery
import aioigd.multilayer
from aioigd.discovery import SearchOptions
from aioigd.gateway import Gateway
from aioigd.testing import FakeIGD

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A global address, so that MultiLayerMapper(layers="auto") stops at the fake.
FAKE_EXTERNAL_IP = "33.0.0.44"
EXAMPLE_GUARD = 30.0

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!--\s*docs:\s*([\w-]+)((?:\s+[\w-]+)*)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str
    mode: str  # "", "run", "run-until-cancelled", "standalone"
    flags: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks() -> list[Block]:
    found: list[Block] = []
    for path in DOCS:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mark = _MARK.search(before)
            mode, flags = (mark.group(1), tuple(mark.group(2).split())) if mark else ("", ())
            line = text.count("\n", 0, m.start()) + 2
            found.append(Block(path, line, m.group(1), mode, flags))
    return found


BLOCKS = _blocks()
RUNNABLE = [b for b in BLOCKS if b.mode]


def test_the_docs_have_runnable_examples() -> None:
    """The marks are what makes examples run: losing them must not go unnoticed."""
    assert (ROOT / "docs").is_dir()
    modes = {b.mode for b in RUNNABLE}
    assert {"run", "run-until-cancelled", "standalone"} <= modes, modes
    assert len(RUNNABLE) >= 8, [b.id for b in RUNNABLE]
    assert all(b.mode in ("run", "run-until-cancelled", "standalone") for b in RUNNABLE)
    readme = [b for b in RUNNABLE if b.path.name == "README.md"]
    assert readme, "the README's library example must run"


def _aioigd_names(tree: ast.AST) -> Iterator[tuple[str, str]]:
    """(module, name) for every aioigd attribute or import the code uses."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "aioigd":
                yield "aioigd", node.attr
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "aioigd" or node.module.startswith("aioigd."):
                for alias in node.names:
                    yield node.module, alias.name


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example_compiles_and_names_exist(block: Block) -> None:
    tree = ast.parse(block.code, block.id)
    compile(tree, block.id, "exec")  # a top-level await or async with fails here
    for module, name in _aioigd_names(tree):
        assert hasattr(importlib.import_module(module), name), f"{module}.{name} does not exist"


# -- running -------------------------------------------------------------------------------


class _Harness:
    """A fake gateway inside the example's own ``asyncio.run``."""

    def __init__(self, block: Block) -> None:
        self.block = block
        self.ipv6 = "ipv6" in block.flags
        self.fake: FakeIGD | None = None
        self.runs = 0

    def fake_igd(self) -> FakeIGD:
        if self.ipv6:
            return FakeIGD("::1", firewall=True)
        return FakeIGD("127.0.0.1", external_ip=FAKE_EXTERNAL_IP)

    async def discover(self, options: SearchOptions | None = None, **kwargs: object) -> Gateway:
        """``discover()`` that searches only the fake (the caller's options are ignored:
        they would search the real network)."""
        assert self.fake is not None, "discover() outside asyncio.run(main())"
        return await aioigd.discovery.discover(
            SearchOptions(
                timeout=5.0,
                multicast=False,
                default_gateways=False,
                unicast=[(self.fake.host, self.fake.ssdp_port)],
                ipv4=not self.ipv6,
                ipv6=self.ipv6,
            )
        )

    def holds_something(self) -> bool:
        assert self.fake is not None
        return bool(self.fake.mappings or self.fake.pinholes)

    async def around(self, main: Coroutine[Any, Any, Any]) -> Any:
        self.runs += 1
        async with self.fake_igd() as fake:
            self.fake = fake
            try:
                if self.block.mode == "run":
                    result = await asyncio.wait_for(main, EXAMPLE_GUARD)
                else:
                    task = asyncio.ensure_future(main)
                    async with asyncio.timeout(EXAMPLE_GUARD):
                        # Held, and no request for a moment: the example is serving.
                        seen, quiet = -1, 0
                        while quiet < 10 or not self.holds_something():
                            assert not task.done(), task.result()
                            quiet = quiet + 1 if len(fake.requests) == seen else 0
                            seen = len(fake.requests)
                            await asyncio.sleep(0.03)
                        task.cancel()  # what asyncio.run does on Ctrl-C
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                    result = None
                added = {"AddPortMapping", "AddAnyPortMapping", "AddPinhole"}
                assert added & set(fake.actions()), fake.actions()
                assert fake.mappings == {} and fake.pinholes == {}, "left behind"
                return result
            finally:
                self.fake = None


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_example_runs(
    block: Block, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_run = asyncio.run
    namespace: dict[str, Any] = {"__name__": "__main__"}
    if block.mode == "standalone":
        exec(compile(block.code, block.id, "exec"), namespace)  # noqa: S102
        tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
        for fn in tests:
            real_run(asyncio.wait_for(fn(), EXAMPLE_GUARD))
        assert "asyncio.run(" in block.code or tests, "a standalone example that runs nothing"
        return
    harness = _Harness(block)
    monkeypatch.setattr(aioigd, "discover", harness.discover)
    monkeypatch.setattr(aioigd.multilayer, "discover", harness.discover)  # via= hints
    monkeypatch.setattr(aioigd.anymapper, "discover", harness.discover)  # layer 1's search
    monkeypatch.setattr(asyncio, "run", lambda main, **kw: real_run(harness.around(main), **kw))
    exec(compile(block.code, block.id, "exec"), namespace)  # noqa: S102
    assert harness.runs == 1, "the example must end in asyncio.run(main())"
    out = capsys.readouterr().out
    if not harness.ipv6:
        assert FAKE_EXTERNAL_IP in out, out


def test_harness_fails_an_example_that_leaves_a_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner can fail: a mapping made once and never deleted is caught."""
    code = (
        "import asyncio, aioigd\n"
        "async def main():\n"
        "    gw = await aioigd.discover()\n"
        "    async with gw:\n"
        "        m = await aioigd.PortMapper(gw).map_port(8000)\n"
        "        print(m.external_ip)\n"
        "asyncio.run(main())\n"
    )
    harness = _Harness(Block(ROOT / "README.md", 0, code, "run", ()))
    real_run = asyncio.run
    monkeypatch.setattr(aioigd, "discover", harness.discover)
    monkeypatch.setattr(asyncio, "run", lambda main, **kw: real_run(harness.around(main), **kw))
    with (
        pytest.raises(AssertionError, match="left behind"),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        exec(compile(code, "leaky", "exec"), {"__name__": "__main__"})  # noqa: S102
