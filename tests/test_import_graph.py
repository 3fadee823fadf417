"""Layering: the sans-I/O core imports no I/O, and errors/models depend on nothing else.

The modules are read with ``ast``, not imported, so the check sees every import statement:
top level, inside functions, under ``if TYPE_CHECKING:`` and relative ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aioigd"

#: Modules that do I/O (or pull it in); the core must not import them.
IO_MODULES = (
    "asyncio",
    "aiohttp",
    "socket",
    "ssl",
    "selectors",
    "subprocess",
    "http.client",
    "urllib.request",
    "ifaddr",
)
#: aioigd modules the core may import besides aioigd.proto.*.
CORE_DEPENDENCIES = {"aioigd.errors", "aioigd.models"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module ``source`` imports (``from m import x`` also counts m.x)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # `from aioigd import session` imports the module aioigd.session.
            found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def _is(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def core_files() -> list[Path]:
    files = sorted((PACKAGE / "proto").glob("*.py"))
    return [*files, PACKAGE / "errors.py", PACKAGE / "models.py"]


def _imports_of(path: Path) -> set[str]:
    return imported_modules(
        path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py"
    )


def _aioigd_modules() -> set[str]:
    return {module_name(p) for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("path", core_files(), ids=lambda p: module_name(p))
def test_core_imports_no_io(path: Path) -> None:
    bad = {name for name in _imports_of(path) for io in IO_MODULES if _is(name, io)}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", core_files(), ids=lambda p: module_name(p))
def test_core_imports_only_core_aioigd_modules(path: Path) -> None:
    modules = _aioigd_modules()
    # Only names that are modules count: `from ..errors import IGDError` also yields
    # "aioigd.errors.IGDError", which is a class.
    used = {name for name in _imports_of(path) if _is(name, "aioigd") and name in modules}
    allowed = {m for m in used if _is(m, "aioigd.proto") or m in CORE_DEPENDENCIES}
    assert used == allowed, f"{module_name(path)} imports {sorted(used - allowed)}"


@pytest.mark.parametrize("name", ["errors", "models"])
def test_errors_and_models_depend_only_on_each_other(name: str) -> None:
    path = PACKAGE / f"{name}.py"
    modules = _aioigd_modules()
    used = {m for m in _imports_of(path) if _is(m, "aioigd") and m in modules}
    assert used <= {"aioigd.errors", "aioigd.models"} - {f"aioigd.{name}"}, sorted(used)


def test_core_files_exist() -> None:
    names = {p.name for p in core_files()}
    for expected in ("ssdp.py", "xmlsafe.py", "urls.py", "description.py", "soap.py", "actions.py"):
        assert expected in names
    assert all(p.is_file() for p in core_files())


# -- the checker itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import asyncio", "aioigd.proto.x", {"asyncio"}),
        ("import socket as s", "aioigd.proto.x", {"socket"}),
        ("import asyncio.events", "aioigd.proto.x", {"asyncio.events"}),
        ("from aiohttp import web", "aioigd.proto.x", {"aiohttp", "aiohttp.web"}),
        (
            "from ..errors import IGDError",
            "aioigd.proto.x",
            {"aioigd.errors", "aioigd.errors.IGDError"},
        ),
        ("from ..session import S", "aioigd.proto.x", {"aioigd.session", "aioigd.session.S"}),
        ("from .. import session", "aioigd.proto.x", {"aioigd", "aioigd.session"}),
        ("from . import urls", "aioigd.proto.x", {"aioigd.proto", "aioigd.proto.urls"}),
        (
            "from .urls import check_url",
            "aioigd.proto.x",
            {"aioigd.proto.urls", "aioigd.proto.urls.check_url"},
        ),
        ("from .ssdp import x", "aioigd.proto", {"aioigd.proto.ssdp", "aioigd.proto.ssdp.x"}),
        ("from .models import M", "aioigd.errors", {"aioigd.models", "aioigd.models.M"}),
        ("from ... import cli", "aioigd.proto.sub.x", {"aioigd", "aioigd.cli"}),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import aiohttp\n",
            "aioigd.proto.x",
            {"typing", "typing.TYPE_CHECKING", "aiohttp"},
        ),
        ("def f():\n    import socket\n", "aioigd.proto.x", {"socket"}),
    ],
)
def test_checker_resolves_imports(source: str, module: str, expected: set[str]) -> None:
    is_package = module == "aioigd.proto"
    assert imported_modules(source, module, is_package) == expected


# -- every layer: imports point one way ------------------------------------------------------

#: Bottom to top. A module may import modules of its own layer and of the layers below,
#: never one above (lazy imports inside functions count too). ``aioigd`` itself (the lazy
#: public facade) and ``aioigd.__main__`` stand above everything.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("aioigd.errors", "aioigd.models"),
    ("aioigd.proto",),
    (
        "aioigd.lifecycle",
        "aioigd.netguard",
        "aioigd.tasks",
        "aioigd.deadlines",
        "aioigd.httpclient",
    ),
    ("aioigd.platform",),
    ("aioigd.netutil", "aioigd.session", "aioigd.traceroute", "aioigd.pmp"),
    ("aioigd.gateway",),
    ("aioigd.discovery",),
    ("aioigd.keeper",),
    ("aioigd.keptmapping",),
    ("aioigd.mapflow",),
    ("aioigd.mapper", "aioigd.firewall"),
    ("aioigd.pmpmapper",),
    ("aioigd.anymapper",),
    ("aioigd.multilayer",),
    ("aioigd.reach",),
    ("aioigd.testing",),
    ("aioigd.demo",),
    ("aioigd.cli",),
)
#: Pure modules above the codecs: state machines that take ``now`` as a parameter.
PURE_MODULES = ("aioigd.lifecycle",)


def layer_of(module: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(_is(module, prefix) for prefix in layer):
            return index
    raise LookupError(module)


def _package_files() -> list[Path]:
    skip = {"aioigd", "aioigd.__main__"}
    return [p for p in sorted(PACKAGE.rglob("*.py")) if module_name(p) not in skip]


def test_every_module_has_a_layer() -> None:
    for path in _package_files():
        layer_of(module_name(path))  # raises for a module nobody placed


@pytest.mark.parametrize("path", _package_files(), ids=lambda p: module_name(p))
def test_imports_point_down_the_layers(path: Path) -> None:
    module = module_name(path)
    modules = _aioigd_modules() - {"aioigd"}
    used = {m for m in _imports_of(path) if m in modules and m != module}
    upward = sorted(m for m in used if layer_of(m) > layer_of(module))
    assert not upward, f"{module} (layer {layer_of(module)}) imports {upward} from above"


@pytest.mark.parametrize("module", PURE_MODULES)
def test_state_machines_import_no_io(module: str) -> None:
    path = PACKAGE / (module.split(".", 1)[1].replace(".", "/") + ".py")
    bad = {name for name in _imports_of(path) for io in (*IO_MODULES, "time") if _is(name, io)}
    assert not bad, f"{module} imports {sorted(bad)}"
    used = {m for m in _imports_of(path) if _is(m, "aioigd") and m in _aioigd_modules()}
    assert used <= {"aioigd.errors", "aioigd.models"}, sorted(used)


def test_the_layer_check_can_fail() -> None:
    assert layer_of("aioigd.gateway") < layer_of("aioigd.firewall")
    assert layer_of("aioigd.proto.soap") == 1
    with pytest.raises(LookupError):
        layer_of("aioigd.nowhere")


def test_every_error_class_lives_in_errors() -> None:
    import importlib
    import inspect

    outside: list[str] = []
    for path in _package_files():
        module = module_name(path)
        if _is(module, "aioigd.testing") or _is(module, "aioigd.cli"):
            continue  # the fake's internal fault signal; the CLI defines none
        for name, obj in vars(importlib.import_module(module)).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module
                and module != "aioigd.errors"
            ):
                outside.append(f"{module}.{name}")
    assert outside == []
