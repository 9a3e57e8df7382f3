"""``airlock new python|rust NAME``: start a channel from a scaffold that builds and has its own tests.

* ``python``: the files come from ``cli/templates/python`` (shipped in the wheel): the channel class, the
  app module componentize-py exports, a capabilities file, ``unittest`` tests that run on plain CPython with
  ``airlock_sdk.testing`` (``pip install sdk/python``), and a README with the build and invoke commands.
* ``rust``: a standalone crate (its own ``[workspace]``) made from the checkout's
  ``guest-plugins/template-rust`` (renamed as ``scripts/new-rust-channel.sh`` does), depending on the Rust
  SDK by path. The SDK crate is not published, so this needs an Airlock checkout: ``--sdk PATH/sdk/rust``,
  else the checkout this ``airlock`` runs from, else one above the current directory.

The scaffold is written to a temporary directory beside ``--dir`` and renamed into place, so a failure leaves
nothing behind; an existing ``--dir`` is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from .app import app, friendly_errors

__all__ = ["new_app"]

new_app = typer.Typer(help="Start a new channel from a scaffold (Python or Rust).", no_args_is_help=True)
app.add_typer(new_app, name="new")

#: A new channel's name: lower-case letters, digits and '-', starting with a letter, at most 32 characters
#: (the Rust package is NAME-channel; secrets are NAME_with_underscores_*).
NEW_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_TEMPLATES = Path(__file__).parent / "templates"
_RUST_TEMPLATE = Path("guest-plugins") / "template-rust"
_RUST_SDK = Path("sdk") / "rust"

NameArg = Annotated[str, typer.Argument(help="The channel's name: a-z, 0-9 and '-', starting with a letter.")]
DirOption = Annotated[Path | None, typer.Option("--dir", help="Where to create it. (default: ./NAME)")]


def _check_name(name: str) -> str:
    if not NEW_NAME_RE.match(name):
        raise ConfigError(f"{name[:80]!r} is not a channel name for a new channel (must match {NEW_NAME_RE.pattern})")
    if name in ("template-rust", "template"):
        raise ConfigError(f"pick a name other than {name!r}")
    return name


@contextmanager
def _staged(dest: Path) -> Iterator[Path]:
    """A temporary directory beside ``dest`` that becomes ``dest`` if the block succeeds."""
    if dest.exists():
        raise ConfigError(f"{dest} already exists; choose another --dir")
    parent = dest.absolute().parent
    if not parent.is_dir():
        raise ConfigError(f"{parent}: directory not found")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent))
    try:
        yield tmp
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fields(name: str) -> dict[str, str]:
    snake = name.replace("-", "_")
    camel = "".join(part.capitalize() for part in name.split("-"))
    return {"name": name, "snake": snake, "module": f"{snake}_channel", "cls": f"{camel}Channel",
            "path": f"/webhook/{name}", "secret_prefix": snake}


def _render(template: str, fields: dict[str, str]) -> str:
    return string.Template((_TEMPLATES / template).read_text()).substitute(fields)


@new_app.command("python")
@friendly_errors
def new_python(name: NameArg, directory: DirOption = None) -> None:
    """A Python channel: channel class, app module, capabilities file, unittest tests, README."""
    fields = _fields(_check_name(name))
    dest = directory if directory is not None else Path(name)
    files = {
        "app.py": "python/app.py.tmpl",
        f"{fields['module']}.py": "python/channel.py.tmpl",
        f"{name}.capabilities.json": "python/capabilities.json.tmpl",
        f"tests/test_{fields['snake']}.py": "python/test_channel.py.tmpl",
        "README.md": "python/README.md.tmpl",
    }
    with _staged(dest) as tmp:
        for rel, template in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(_render(template, fields))
    typer.echo(f"created {dest} (Python channel {name}); next:\n"
               f"  test   cd {dest} && python -m unittest discover -s tests\n"
               f"  build  scripts/build-python-guest.sh {dest} build/channels/{name}.wasm\n"
               f"  try    airlock invoke build/channels/{name}.wasm on-start")


def _checkout(sdk: Path | None) -> Path:
    """The Airlock checkout holding the Rust SDK and the template (module docstring)."""
    if sdk is not None:
        if not (sdk / "Cargo.toml").is_file():
            raise ConfigError(f"--sdk {sdk}: no Cargo.toml there (expected an Airlock checkout's sdk/rust)")
        candidates = [sdk.resolve().parents[1]]
    else:
        candidates = [Path(__file__).resolve().parents[3], *Path.cwd().resolve().parents, Path.cwd().resolve()]
    for root in candidates:
        if (root / _RUST_SDK / "Cargo.toml").is_file() and (root / _RUST_TEMPLATE / "Cargo.toml").is_file():
            return root
    raise ConfigError("the Rust SDK is not published: run this inside an Airlock checkout, or pass "
                      "--sdk PATH/TO/airlock/sdk/rust")


def _renamed(text: str, name: str) -> str:
    # Longest pattern first: "template-rust-channel" becomes "<name>-channel" through "template-rust".
    return (text.replace("Template (Rust)", name).replace("template-rust", name)
            .replace("template_rust", name.replace("-", "_")))


@new_app.command("rust")
@friendly_errors
def new_rust(
    name: NameArg,
    directory: DirOption = None,
    sdk: Annotated[Path | None, typer.Option(
        "--sdk", help="The Rust SDK (an Airlock checkout's sdk/rust). (default: found from the checkout)")] = None,
) -> None:
    """A Rust channel: a standalone crate made from the template, with its unit tests (cargo test)."""
    _check_name(name)
    root = _checkout(sdk)
    dest = directory if directory is not None else Path(name)
    template = root / _RUST_TEMPLATE
    fields = {"name": name, "sdk": str(root / _RUST_SDK)}
    with _staged(dest) as tmp:
        (tmp / "src").mkdir()
        for source in sorted((template / "src").glob("*.rs")):
            (tmp / "src" / source.name).write_text(_renamed(source.read_text(), name))
        caps = template / "template-rust.capabilities.json"
        (tmp / f"{name}.capabilities.json").write_text(_renamed(caps.read_text(), name))
        (tmp / "Cargo.toml").write_text(_render("rust/Cargo.toml.tmpl", fields))
        if (root / "Cargo.lock").is_file():  # the checkout's versions: builds offline, as tested
            shutil.copyfile(root / "Cargo.lock", tmp / "Cargo.lock")
        (tmp / "README.md").write_text(_render("rust/README.md.tmpl", fields))
    typer.echo(f"created {dest} (Rust crate {name}-channel, SDK {fields['sdk']}); next:\n"
               f"  test   cd {dest} && cargo test\n"
               f"  build  {root}/scripts/build-rust-guest.sh {dest} build/channels/{name}.wasm")
