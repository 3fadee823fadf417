"""The package's metadata and the promises README.md makes to newcomers and to CI.

The built artifacts are checked by ``.ci/run`` (``python3 -m build``, ``twine check``,
LICENSE and ``py.typed`` in the wheel, every tracked test file in the sdist); this checks the
sources those come from, without building.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO_COMMAND = "python3 -m pip install -e . && aioigd demo"
TEST_COMMAND = "python3 -m pip install -e '.[test]' && python3 -m pytest -q tests"


def _project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def test_license_is_an_spdx_expression_with_its_file() -> None:
    data = _project()
    project = data["project"]
    assert project["license"] == "MIT"  # not the deprecated {text = ...} table
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "aioigd contributors" in text
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639
    # setuptools understands license expressions and license-files from 77 on.
    (setuptools,) = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools == "setuptools>=77"


def test_classifiers_match_requires_python_and_the_typed_marker() -> None:
    project = _project()["project"]
    classifiers = project["classifiers"]
    minimum = tuple(int(x) for x in re.findall(r"\d+", project["requires-python"]))
    versions = [
        tuple(int(x) for x in c.rsplit(" ", 1)[1].split("."))
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions and min(versions) == minimum
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert any(c.startswith("Operating System ::") for c in classifiers)
    assert "Typing :: Typed" in classifiers
    assert (ROOT / "aioigd" / "py.typed").exists()
    assert "py.typed" in _project()["tool"]["setuptools"]["package-data"]["aioigd"]
    assert project["keywords"]


def test_sdist_ships_the_whole_test_suite() -> None:
    manifest = (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines()
    assert "graft tests" in manifest and "graft docs" in manifest


def _sh_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)]


def test_readme_keeps_the_two_newcomer_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("pip install aioigd") < readme.index("\n## ")  # users first
    blocks = _sh_blocks(readme)
    assert DEMO_COMMAND in blocks and TEST_COMMAND in blocks
    # The paragraph that introduces the test command says how long the suite takes.
    intro = readme[: readme.index(TEST_COMMAND)].rsplit("```sh", 1)[0].strip()
    assert re.search(r"about \d+ minutes", intro.rsplit("\n\n", 1)[-1]), "say how long"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert TEST_COMMAND in ci  # exactly the README's test command, as a line of its own
    assert "twine check --strict dist/*" in ci


def test_development_set_up_lives_in_contributing() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "apt-get install" in contributing and ".ci/run" in contributing
    assert "CONTRIBUTING.md" in readme
    assert "benchmarks/run.py" not in readme  # a developer's tool, not a user's
