"""``airlock --version`` and ``airlock version [--json]``: what this Airlock is and what it runs."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import TypedDict

import typer

from ..runtime.engine import SUPPORTED_WORLDS, World
from .app import app, friendly_errors
from .output import JsonOption, print_json

__all__ = ["VersionInfo", "version_doc", "version_text"]


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


class VersionInfo(TypedDict):
    """What ``airlock version --json`` prints; ``worlds`` are the component worlds Airlock runs."""

    airlock: str
    wasmtime: str
    python: str
    worlds: list[str]


def version_doc() -> VersionInfo:
    """This Airlock's version, the installed wasmtime-py's, Python's, and the worlds it runs."""
    from .._version import __version__

    worlds = [World(host, channel).name for host, channel in SUPPORTED_WORLDS.items()]
    return VersionInfo(airlock=__version__, wasmtime=_dist_version("wasmtime"),
                       python=platform.python_version(), worlds=worlds)


def version_text() -> str:
    """The ``--version`` text: one ``name version`` line each, then the worlds, one per line."""
    doc = version_doc()
    worlds = "\n".join(f"  {w}" for w in doc["worlds"])
    return (f"airlock {doc['airlock']}\nwasmtime {doc['wasmtime']} (wasmtime-py)\npython {doc['python']}\n"
            f"worlds:\n{worlds}")


@app.command("version")
@friendly_errors
def version(as_json: JsonOption = False) -> None:
    """Print the Airlock and wasmtime versions and the component worlds Airlock runs."""
    if as_json:
        print_json(version_doc())
    else:
        typer.echo(version_text())
