"""The wheels: ``airlock`` builds with ``python -m build``, installs into a clean venv and ``airlock --version``
runs; it ships the CLI templates and the LICENSE but neither the demo nor its fake Telegram server. The
Python SDK (``sdk/python``) installs into a clean venv too, and a scaffolded channel's unit tests pass there
on plain CPython (no componentize-py, no generated bindings).

No network: the wheels are built without build isolation (``build`` and ``setuptools>=77`` are dev extras),
installed with ``--no-deps --no-index``, and the clean venv finds airlock's dependencies in this venv's
site-packages through a ``.pth`` line (airlock itself comes from the wheel: checked)."""

from __future__ import annotations

import email
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def build_wheel(source: Path, out: Path) -> Path:
    """``python -m build --wheel`` on a copy of ``source`` (an in-tree build would write build/ there)."""
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(source)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [wheel] = out.glob("*.whl")
    return wheel


def clean_venv(path: Path, wheel: Path, *, deps_from_here: bool) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    python = path / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "--quiet", str(wheel)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if deps_from_here:
        [purelib] = [Path(p) for p in subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True).stdout.split()]
        (purelib / "zz_deps_from_test_venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def normalized(requirements: list[str]) -> dict[str, str]:
    return {(r := Requirement(text)).name.lower(): str(r.specifier) for text in requirements}


def ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", "build", "dist") or n.endswith(".egg-info")}


def test_airlock_wheel_installs_and_runs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "host", src / "host", ignore=ignore)
    wheel = build_wheel(src, tmp_path / "dist")

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = email.message_from_bytes(zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "airlock/cli/__init__.py" in names and "airlock/py.typed" in names
    assert "airlock/cli/templates/python/channel.py.tmpl" in names
    assert "airlock/agentapi/openapi.json" in names  # served at /v1/openapi.json
    assert "airlock/manifest/capabilities.schema.json" in names  # airlock channels check validates against it
    # The admin console's templates and assets, read at run time (admin.render, admin.server).
    assert {"airlock/admin/templates/base.html", "airlock/admin/static/console.js",
            "airlock/admin/static/console.css"} <= set(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("airlock_demo/", "airlock/fakes/", "tests/"))]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["License-Expression"] == project["license"] == "Apache-2.0"
    runtime = [d for d in meta.get_all("Requires-Dist") or [] if "extra ==" not in d]  # dev extras have a marker
    assert normalized(runtime) == normalized(project["dependencies"])
    assert "airlock = airlock.cli:main" in entry_points

    python = clean_venv(tmp_path / "venv", wheel, deps_from_here=True)
    where = subprocess.run([str(python), "-c", "import airlock; print(airlock.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert where.startswith(str(tmp_path / "venv")), where  # the wheel's code, not this checkout's
    version = subprocess.run([str(tmp_path / "venv" / "bin" / "airlock"), "--version"], capture_output=True,
                             text=True, timeout=60, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.splitlines()[0] == f"airlock {meta['Version']}"
    page = subprocess.run([str(python), "-c", "from airlock.admin.render import render; print(render('text.html', "
                           "text='<ok>'))"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert page.stdout.strip() == "&lt;ok&gt;", page.stderr
    assert "airlock:channel/sandboxed-channel@0.1.0" in version.stdout
    demo = subprocess.run([str(python), "-c", "import airlock_demo"], capture_output=True, text=True, cwd=tmp_path)
    assert demo.returncode != 0 and "No module named 'airlock_demo'" in demo.stderr


def test_sdk_installs_and_a_channel_is_unit_tested_on_plain_cpython(tmp_path: Path) -> None:
    src = tmp_path / "sdk"
    shutil.copytree(REPO / "sdk" / "python", src, ignore=ignore)
    wheel = build_wheel(src, tmp_path / "dist")
    python = clean_venv(tmp_path / "venv", wheel, deps_from_here=False)
    probe = subprocess.run([str(python), "-c", "import airlock_sdk.testing, componentize_py_types"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert "No module named 'componentize_py_types'" in probe.stderr  # a plain venv: no bindings anywhere

    scaffold = tmp_path / "echo-py"
    made = subprocess.run([sys.executable, "-m", "airlock.cli", "new", "python", "echo-py", "--dir", str(scaffold)],
                          capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO / "host"),
                                                                           "PATH": "/usr/bin:/bin"})
    assert made.returncode == 0, made.stderr
    tests = subprocess.run([str(python), "-m", "unittest", "discover", "-s", "tests", "-v"], cwd=scaffold,
                           capture_output=True, text=True, timeout=60)
    assert tests.returncode == 0, tests.stderr
    assert "Ran 6 tests" in tests.stderr and "test_the_app_module_imports_on_cpython (" in tests.stderr


@pytest.mark.parametrize("path", ["LICENSE"])
def test_license_is_the_apache_2_text_pyproject_names(path: str) -> None:
    text = (REPO / path).read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert text.count("END OF TERMS AND CONDITIONS") == 1
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
