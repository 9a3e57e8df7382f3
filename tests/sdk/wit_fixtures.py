"""Fixtures shared by the Python SDK tests: the real componentize-py bindings of ``wit/`` and
``airlock_sdk._wit`` imported against them (host functions are faked by each test).

Not a ``conftest.py``: test modules import ``conftest`` (tests/conftest.py) by name, which a second conftest
would shadow. A test module imports ``bindings_dir_fixture`` and ``wit_fixture`` (registered under the names
``bindings_dir`` and ``wit``, so a test's ``wit`` parameter does not shadow the import)."""

from __future__ import annotations

import gc
import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sdk" / "python"))

from airlock_sdk import host  # noqa: E402

WIT_WORLD = "airlock:channel/interactive-channel"
"""The widest world: its bindings hold the base interfaces and all of 0.2.0's optional ones."""


@pytest.fixture(scope="session", name="bindings_dir")
def bindings_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python bindings of ``WIT_WORLD`` generated once per session; skips when componentize-py is missing."""
    exe = ROOT / ".venv" / "bin" / "componentize-py"
    cmd = str(exe) if exe.exists() else shutil.which("componentize-py")
    if not cmd:
        pytest.skip("componentize-py not installed")
    out = tmp_path_factory.mktemp("bindings")
    args = [cmd, "-d", str(ROOT / "wit"), "-w", WIT_WORLD, "bindings", str(out)]
    subprocess.run(args, check=True, capture_output=True)
    return out


@pytest.fixture(name="wit")
def wit_fixture(bindings_dir: Path) -> Iterator[ModuleType]:
    """``airlock_sdk._wit`` imported against the real generated bindings, with no host backend installed.
    Afterwards the generated modules are forgotten (so the next test imports them fresh), objects frozen by a
    pre-warm are unfrozen, and the previous backend is restored."""
    sys.path.insert(0, str(bindings_dir))
    previous = host.set_backend(None)
    try:
        yield importlib.import_module("airlock_sdk._wit")
    finally:
        gc.unfreeze()
        for name in list(sys.modules):
            if name.startswith(("wit_world", "componentize_py_types")) or name == "airlock_sdk._wit":
                del sys.modules[name]
        # the package keeps the submodule as an attribute: without this, ``from . import _wit`` in a later test
        # finds the stale module instead of failing as on plain CPython
        sys.modules["airlock_sdk"].__dict__.pop("_wit", None)
        sys.path.remove(str(bindings_dir))
        host.set_backend(previous)
