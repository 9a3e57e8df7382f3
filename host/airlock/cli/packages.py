"""``airlock package build|sign|verify``, ``airlock keys generate``, ``airlock trust add|list|rm``.

The format, the limits and the verification rules are in ``airlock.packages``; this module reads files,
prints one line per result, and refuses with one ``error: ...`` line changing nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError, PackageError
from ..manifest import load_capabilities
from ..packages import FETCH_TIMEOUT_S, TrustStore, build_package, package_file_name, sign_package
from ..packages.keys import generate_key_files, load_private_key, read_public_key
from . import report
from .app import app, config_from, friendly_errors
from .common import load_component, require_file, runtime_for
from .install_check import check_argument_order, check_world
from .output import Column, JsonOption, Row, print_json, show_rows
from .package_source import AllowPrivateOption, TimeoutOption, open_package

__all__ = ["keys_app", "package_app", "trust_app"]

package_app = typer.Typer(help="Build, sign and verify channel packages (.airlock).", no_args_is_help=True)
keys_app = typer.Typer(help="Publisher signing keys (Ed25519).", no_args_is_help=True)
trust_app = typer.Typer(help="The publisher keys this home trusts.", no_args_is_help=True)
app.add_typer(package_app, name="package")
app.add_typer(keys_app, name="keys")
app.add_typer(trust_app, name="trust")

KeyOption = Annotated[Path, typer.Option("--key", "-k", help="The private key file (from: airlock keys generate).")]


def _write_new(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` through a temporary file; refuse an existing file unless ``replace``."""
    if path.exists() and not replace:
        raise ConfigError(f"{path} already exists (use --force to replace it)")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # a package is for distribution: readable like any download
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- package build | sign | verify -----------------------------------------------------------------------


@package_app.command("build")
@friendly_errors
def package_build(
    ctx: typer.Context,
    wasm: Annotated[Path, typer.Argument(help="The channel component (.wasm).")],
    caps: Annotated[Path, typer.Argument(help="Its capabilities file (.capabilities.json).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The package file, or a directory for "
                                             "<name>-<version>.airlock. (default: the current directory)")] = None,
    key: Annotated[Path | None, typer.Option("--key", "-k", help="Sign it with this private key too.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing package file.")] = False,
) -> None:
    """Package a component and its capabilities file: <name>-<version>.airlock with a manifest (name,
    version, world, sha256 of each member); unsigned unless --key is given. The pair is checked as install
    checks it first (argument order, a strict capabilities file, the component's world)."""
    check_argument_order(wasm, caps)
    doc = load_capabilities(caps)
    signer = load_private_key(key) if key is not None else None
    with runtime_for(config_from(ctx)) as runtime:
        loaded = load_component(runtime, wasm)
    check_world(doc, caps, loaded)
    data = build_package(doc.name, doc.version, loaded.world.name, wasm.read_bytes(), caps.read_bytes())
    if signer is not None:
        data = sign_package(data, *signer)
    target = out if out is not None else Path(".")
    if target.is_dir():
        target = target / package_file_name(doc.name, doc.version)
    _write_new(target, data, replace=force)
    signed = f"signed by {signer[1].name} ({signer[1].key_id})" if signer is not None else "unsigned"
    typer.echo(f"built {target} ({doc.name} {doc.version}, {loaded.world.name}, "
               f"{report.human_size(len(data))}, {signed})")


@package_app.command("sign")
@friendly_errors
def package_sign(
    package: Annotated[Path, typer.Argument(help="The package file (.airlock); replaced by the signed one.")],
    key: KeyOption,
) -> None:
    """Sign a package's manifest with your private key (replacing any signature). The package's digests are
    checked first: a tampered package is never signed."""
    private, public = load_private_key(key)
    require_file(package, "package")
    try:
        data = sign_package(package.read_bytes(), private, public)
    except PackageError as exc:
        raise PackageError(f"{package}: {exc}") from None
    _write_new(package, data, replace=True)
    typer.echo(f"signed {package} with key {public.name} ({public.key_id})")


@package_app.command("verify")
@friendly_errors
def package_verify(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A package file (.airlock) or https:// URL.")],
    allow_unsigned: Annotated[bool, typer.Option(
        "--allow-unsigned", help="Accept a package without a trusted signature (still checks digests).")] = False,
    allow_private_host: AllowPrivateOption = None,
    timeout: TimeoutOption = FETCH_TIMEOUT_S,
    as_json: JsonOption = False,
) -> None:
    """Check a package as install would (limits, manifest, digests, a signature by a trusted key) without
    installing it. --json: {name, version, world, provenance: {signed, publisher, key_id, digests, ...}}."""
    pkg = open_package(config_from(ctx), source, allow_unsigned=allow_unsigned,
                       allow_private=allow_private_host, timeout=timeout)
    if as_json:
        print_json({"name": pkg.name, "version": pkg.version, "world": pkg.world,
                    "provenance": pkg.provenance.as_dict()})
        return
    note = f"; {pkg.provenance.note}" if pkg.provenance.note else ""
    typer.echo(f"ok: {pkg.name} {pkg.version} ({pkg.world}), {pkg.provenance.summary()}{note}")


# ---- keys generate ---------------------------------------------------------------------------------------


@keys_app.command("generate")
@friendly_errors
def keys_generate(
    name: Annotated[str, typer.Argument(help="The publisher name (also the file names NAME.key, NAME.pub).")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the two files.")] = Path("."),
) -> None:
    """Create an Ed25519 signing key pair: NAME.key (private, mode 0600; keep it secret) and NAME.pub (give it
    to operators: airlock trust add NAME.pub). Never replaces an existing file."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory")
    private, public, key = generate_key_files(directory / name, name)
    typer.echo(f"key {key.name} ({key.key_id}): private {private} (mode 0600), public {public}")


# ---- trust add | list | rm -------------------------------------------------------------------------------


@trust_app.command("add")
@friendly_errors
def trust_add(
    ctx: typer.Context,
    public_key: Annotated[Path, typer.Argument(help="A publisher's public key file (NAME.pub).")],
    name: Annotated[str | None, typer.Option("--name", help="Trust it under this name. (default: the name "
                                             "in the key file)")] = None,
) -> None:
    """Trust packages signed by this publisher key. Check the key id with the publisher first."""
    entry = TrustStore(config_from(ctx).home).add(read_public_key(public_key), name)
    typer.echo(f"trusted {entry.key.name} ({entry.key.key_id})")


def _age(row: Row) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(int(row["added_at"])))


TRUST_COLUMNS = (Column("name", "name"), Column("key id", "key_id"), Column("added", "added_at", text=_age))


@trust_app.command("list")
@friendly_errors
def trust_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The trusted publisher keys. --json: a list of {name, key_id, public_key (base64), added_at}."""
    store = TrustStore(config_from(ctx).home)
    show_rows([t.as_dict() for t in store.trusted()], TRUST_COLUMNS, as_json=as_json,
              empty=f"no trusted keys in {store.path} (airlock trust add KEY.pub)")


@trust_app.command("rm")
@friendly_errors
def trust_rm(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The trusted key's name or key id.")],
) -> None:
    """Stop trusting a publisher key (installed channels stay; new installs signed by it are refused)."""
    entry = TrustStore(config_from(ctx).home).remove(key)
    typer.echo(f"no longer trusted: {entry.key.name} ({entry.key.key_id})")

