"""Reading a channel package for a command: from a file or an ``https://`` URL (``packages.fetch``), then
verified against the home's trust store (``packages.verify_package``). Shared by ``channels install`` and
``package verify``; nothing is written here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError, PackageError
from ..host_config import HostConfig
from ..packages import MAX_PACKAGE_BYTES, TrustStore, VerifiedPackage, fetch_package, is_url, verify_package
from .common import require_file

__all__ = ["MAX_TIMEOUT_S", "AllowPrivateOption", "TimeoutOption", "open_package", "read_package_source"]

MAX_TIMEOUT_S = 600.0
"""Largest ``--timeout`` accepted for a download."""

AllowPrivateOption = Annotated[list[str] | None, typer.Option(
    "--allow-private-host", metavar="HOST",
    help="Let a package URL on HOST resolve to a private or loopback address (repeatable; exact host or "
         "*.suffix). Without it such a URL is refused, as guest egress is.")]
TimeoutOption = Annotated[float, typer.Option(
    "--timeout", metavar="S", help="Seconds for the whole download of a package URL.")]


def read_package_source(config: HostConfig, source: str, allow_private: list[str] | None,
                        timeout: float) -> bytes:
    """The bytes of a package file or ``https://`` URL (at most ``MAX_PACKAGE_BYTES``; nothing written).

    Raises:
        PackageError / ConfigError: missing file, too large, a refused or failed download.
    """
    if not 0 < timeout <= MAX_TIMEOUT_S:
        raise ConfigError(f"--timeout: expected seconds between 0 and {MAX_TIMEOUT_S:g}")
    if is_url(source):
        exempt = [*config.allow_private_hosts, *(allow_private or [])]
        return fetch_package(source, allow_private_hosts=exempt, timeout_s=timeout)
    path = Path(source)
    require_file(path, "package")
    size = path.stat().st_size
    if size > MAX_PACKAGE_BYTES:
        raise PackageError(f"{path}: {size} bytes, over the {MAX_PACKAGE_BYTES}-byte package limit")
    return path.read_bytes()


def open_package(config: HostConfig, source: str, *, allow_unsigned: bool, allow_private: list[str] | None,
                 timeout: float) -> VerifiedPackage:
    """Read and verify a package against the home's trust store. Errors name the source."""
    data = read_package_source(config, source, allow_private, timeout)
    label = source if is_url(source) else str(Path(source).resolve())
    try:
        return verify_package(data, source=label, trust=TrustStore(config.home), allow_unsigned=allow_unsigned)
    except PackageError as exc:
        raise PackageError(f"{source}: {exc}") from None
