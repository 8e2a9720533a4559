"""local_stack is a package of its own: what it imports is what its metadata declares, at the versions
the tests run, and none of it is the product's code (the emulator must not share the product's bugs)."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "local_stack"
PRODUCT = {"session_core", "functions"}  # the layer and the functions


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


def pins() -> dict[str, str]:
    lines = (ROOT / "requirements" / "dev.txt").read_text().splitlines()
    return {canonicalize_name(name): version for name, _, version in
            (line.partition("==") for line in lines if "==" in line and not line.startswith("#"))}


def top_level_imports() -> dict[str, list[str]]:
    """Absolute imports of local_stack's modules: top-level module -> files importing it."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], []).append(path.name)
    return found


def test_every_third_party_import_is_a_declared_dependency():
    distributions = metadata.packages_distributions()
    requirements = declared()
    undeclared = {}
    for module, files in top_level_imports().items():
        if module in sys.stdlib_module_names or module == "local_stack":
            continue
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not names & set(requirements):
            undeclared[module] = sorted(set(files))
    assert undeclared == {}


def test_every_declared_dependency_is_imported():
    """A dependency nothing imports any more is one more thing to install and to keep patched."""
    distributions = metadata.packages_distributions()
    imported = {canonicalize_name(name) for module in top_level_imports()
                for name in distributions.get(module, [module])}
    assert sorted(set(declared()) - imported) == []


def test_no_import_of_the_product():
    imports = top_level_imports()
    assert {module: imports[module] for module in PRODUCT & set(imports)} == {}
    sources = "\n".join(path.read_text() for path in PACKAGE.glob("*.py"))
    assert "session_core" not in sources  # nor by importlib or a path on sys.path


def test_dependency_ranges_hold_the_pinned_versions():
    pinned = pins()
    for name, requirement in declared().items():
        assert name in pinned, f"{name} is not pinned in requirements/dev.txt"
        assert requirement.specifier.contains(pinned[name]), f"{requirement} excludes the pinned {pinned[name]}"


def test_the_package_is_the_folder_python_m_local_stack_runs():
    config = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["package-dir"] == {"local_stack": "."}
    assert config["project"]["scripts"]["local-stack"] == "local_stack.cli:main"
    assert (PACKAGE / "__main__.py").is_file() and (PACKAGE / "cli.py").is_file()
