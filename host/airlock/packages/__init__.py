"""Channel packages and trust: ``<name>-<version>.airlock`` files, Ed25519 publisher keys, the trust store,
fetching over https under the SSRF rule, and the provenance recorded with an installed channel.

The seam with the install code is :func:`verify_package` -> :class:`VerifiedPackage` (the component and
capabilities bytes, verified, plus their :class:`Provenance`); nothing is written before it returns.
Modules: ``archive`` (the zip and its limits), ``manifest``, ``keys``, ``trust``, ``verify``, ``fetch``,
``provenance``.
"""

from __future__ import annotations

from .archive import MAX_PACKAGE_BYTES, PACKAGE_SUFFIX
from .fetch import FETCH_TIMEOUT_S, fetch_package, is_url
from .provenance import provenance_doc, provenance_path, read_provenance, write_provenance
from .trust import TrustStore
from .verify import (
    UNSIGNED,
    Provenance,
    VerifiedPackage,
    bare_provenance,
    build_package,
    package_file_name,
    sign_package,
    verify_package,
)

__all__ = [
    "FETCH_TIMEOUT_S",
    "MAX_PACKAGE_BYTES",
    "PACKAGE_SUFFIX",
    "UNSIGNED",
    "Provenance",
    "TrustStore",
    "VerifiedPackage",
    "bare_provenance",
    "build_package",
    "fetch_package",
    "is_url",
    "package_file_name",
    "provenance_doc",
    "provenance_path",
    "read_provenance",
    "sign_package",
    "verify_package",
    "write_provenance",
]
