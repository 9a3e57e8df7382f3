"""Channel packages and trust through the real ``airlock`` command (a subprocess) and real files: keys,
package build/sign/verify, trust add/list/rm, ``channels install`` of a package, and the provenance it
records. Every refusal prints one line and leaves the home exactly as it was."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from clirun import one_line_error, run_cli, tree
from watguest import build_component

from airlock.channels.install import stage
from airlock.channels.layout import ChannelStore
from airlock.cli.package_source import MAX_TIMEOUT_S
from airlock.packages import TrustStore, build_package, sign_package
from airlock.packages.archive import read_archive, write_archive
from airlock.packages.keys import generate_key_files, load_private_key, read_public_key

WORLD = "airlock:channel/sandboxed-channel@0.1.0"


@pytest.fixture(scope="module")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_component(tmp_path_factory.mktemp("packages-wat"))


@pytest.fixture
def caps(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "minimal.capabilities.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"name": "minimal", "version": "0.3.0", "wit_version": "0.1.0",
                                "capabilities": {"channel": {"allowed_paths": ["/webhook/minimal"]}},
                                "config": {"dm_policy": "open"}}))
    return path


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc.stdout


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sign_trust_install_and_the_recorded_provenance(airlock_home: Path, wasm: Path, caps: Path,
                                                        tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    out = ok(run_cli(airlock_home, "keys", "generate", "acme", "--dir", str(keys)))
    key_id = out.split("(")[1].split(")")[0]
    assert stat.S_IMODE((keys / "acme.key").stat().st_mode) == 0o600
    assert (keys / "acme.pub").read_text().startswith("airlock-ed25519 ")

    out = ok(run_cli(airlock_home, "package", "build", str(wasm), str(caps), "--out", str(tmp_path)))
    pkg = tmp_path / "minimal-0.3.0.airlock"
    assert f"built {pkg}" in out and "unsigned" in out
    assert sorted(zipfile.ZipFile(pkg).namelist()) == ["manifest.json", "minimal.capabilities.json", "minimal.wasm"]
    before = tree(airlock_home)
    one_line_error(run_cli(airlock_home, "channels", "install", str(pkg)), "the package is unsigned")
    assert tree(airlock_home) == before

    assert f"with key acme ({key_id})" in ok(run_cli(airlock_home, "package", "sign", str(pkg),
                                                      "--key", str(keys / "acme.key")))
    one_line_error(run_cli(airlock_home, "channels", "install", str(pkg)),
                   f"signed by key {key_id}, which is not trusted")
    assert tree(airlock_home) == before

    assert f"trusted acme ({key_id})" in ok(run_cli(airlock_home, "trust", "add", str(keys / "acme.pub")))
    assert [k["key_id"] for k in json.loads(ok(run_cli(airlock_home, "trust", "list", "--json")))] == [key_id]
    assert f"signed by acme ({key_id})" in ok(run_cli(airlock_home, "package", "verify", str(pkg)))
    out = ok(run_cli(airlock_home, "channels", "install", str(pkg)))
    assert f"installed minimal 0.3.0 ({WORLD}" in out and f"signed by acme ({key_id})" in out

    installed = airlock_home / "channels" / "minimal" / "0.3.0"  # the package's version, kept (channels.layout)
    row = json.loads(ok(run_cli(airlock_home, "channels", "list", "--json")))[0]
    prov = row["provenance"]
    assert (prov["signed"], prov["publisher"], prov["key_id"], prov["recorded"]) == (True, "acme", key_id, True)
    assert prov["digests"] == {"minimal.wasm": sha(installed / "component.wasm"),
                               "minimal.capabilities.json": sha(installed / "capabilities.json")}
    assert prov["digests"]["minimal.wasm"] == sha(wasm) and prov["package_sha256"] == sha(pkg)
    assert prov["source"] == str(pkg) and prov["version"] == "0.3.0" and prov["world"] == WORLD
    assert stat.S_IMODE((installed / "provenance.json").stat().st_mode) == 0o600

    before = tree(airlock_home)  # a signed channel is replaced only by the same signer's package
    one_line_error(run_cli(airlock_home, "channels", "install", str(wasm), str(caps), "--force"),
                   f"channel 'minimal' was installed signed by acme ({key_id}); this one is unsigned",
                   "airlock channels remove minimal first")
    assert tree(airlock_home) == before
    ok(run_cli(airlock_home, "channels", "remove", "minimal"))
    assert not installed.exists() and not installed.parent.exists()
    assert "no longer trusted: acme" in ok(run_cli(airlock_home, "trust", "rm", key_id))
    assert json.loads(ok(run_cli(airlock_home, "trust", "list", "--json"))) == []


def test_bare_and_allowed_unsigned_installs_are_recorded_as_unsigned(airlock_home: Path, wasm: Path, caps: Path,
                                                                     tmp_path: Path) -> None:
    out = ok(run_cli(airlock_home, "channels", "install", str(wasm), str(caps)))
    assert "unsigned" in out
    prov = json.loads(ok(run_cli(airlock_home, "channels", "list", "--json")))[0]["provenance"]
    assert (prov["signed"], prov["publisher"], prov["key_id"]) == (False, "unsigned", None)
    assert prov["note"] == "bare component and capabilities file" and prov["source"] == str(wasm)
    assert prov["digests"]["minimal.wasm"] == sha(wasm)

    private, _, key = generate_key_files(tmp_path / "stranger", "stranger")
    data = build_package("minimal", "0.3.0", WORLD, wasm.read_bytes(), caps.read_bytes())
    pkg = tmp_path / "minimal-0.3.0.airlock"
    pkg.write_bytes(sign_package(data, *load_private_key(private)))
    ok(run_cli(airlock_home, "channels", "install", str(pkg), "--allow-unsigned", "--force"))
    prov = json.loads(ok(run_cli(airlock_home, "channels", "list", "--json")))[0]["provenance"]
    assert (prov["signed"], prov["publisher"]) == (False, "unsigned")
    assert prov["note"] == f"signed by untrusted key {key.key_id} (not verified)"


# ---- refusals: one line, nothing changed -------------------------------------------------------------------


@pytest.fixture
def trusted_home(airlock_home: Path, wasm: Path, caps: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A home that trusts ``acme`` and has ``minimal`` installed (bare); returns (home, acme's private key).
    Set up in-process (the commands themselves are tested above; a subprocess costs about a second)."""
    keys = tmp_path / "keys"
    keys.mkdir()
    private, public, _ = generate_key_files(keys / "acme", "acme")
    TrustStore(airlock_home).add(read_public_key(public))
    stage(ChannelStore(airlock_home / "channels"), wasm.read_bytes(), caps.read_bytes(), source=str(caps))
    return airlock_home, private


def _signed(wasm: Path, caps: Path, private: Path, *, name: str = "minimal", world: str = WORLD) -> dict[str, bytes]:
    data = build_package(name, "0.3.0", world, wasm.read_bytes(), caps.read_bytes())
    return read_archive(sign_package(data, *load_private_key(private))).members


def _raw_zip(members: list[tuple[str, bytes, int]]) -> bytes:
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, body, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, body)
    return out.getvalue()


REG = stat.S_IFREG | 0o644


def _bad_package(case: str, wasm: Path, caps: Path, private: Path) -> bytes:
    m = _signed(wasm, caps, private)
    plain = [(n, b, REG) for n, b in m.items()]
    if case == "tampered component":
        return write_archive({**m, "minimal.wasm": m["minimal.wasm"] + b"\0"})
    if case == "tampered capabilities":
        return write_archive({**m, "minimal.capabilities.json": m["minimal.capabilities.json"].replace(
            b'"open"', b'"pairing"')})
    if case == "edited manifest":
        return write_archive({**m, "manifest.json": m["manifest.json"].replace(b'"0.3.0"', b'"0.3.1"')})
    if case == "path traversal":
        return _raw_zip([*plain[:3], ("../minimal.wasm", b"x", REG)])
    if case == "symlink":
        return _raw_zip([*[p for p in plain if p[0] != "minimal.wasm"], ("minimal.wasm", b"/etc/passwd",
                                                                          stat.S_IFLNK | 0o777)])
    if case == "duplicate":
        with pytest.warns(UserWarning):
            return _raw_zip([*plain[:3], (plain[0][0], plain[0][1], REG)])
    if case == "too many members":
        return _raw_zip([*plain, ("extra.json", b"{}", REG)])
    if case == "manifest over limit":
        return write_archive({**m, "manifest.json": m["manifest.json"] + b" " * 16384})
    if case == "world mismatch":
        return write_archive(_signed(wasm, caps, private, world="near:agent/sandboxed-channel@0.3.1"))
    if case == "name mismatch":
        other = json.loads(caps.read_text()) | {"name": "other"}
        data = build_package("minimal", "0.3.0", WORLD, wasm.read_bytes(), json.dumps(other).encode())
        return sign_package(data, *load_private_key(private))
    if case == "unknown capabilities key":
        loose = json.loads(caps.read_text()) | {"capabilites": {}}
        data = build_package("minimal", "0.3.0", WORLD, wasm.read_bytes(), json.dumps(loose).encode())
        return sign_package(data, *load_private_key(private))
    if case == "not a zip":
        return wasm.read_bytes()
    raise AssertionError(case)


BAD = {
    "tampered component": "member 'minimal.wasm' does not match its sha256 in manifest.json",
    "tampered capabilities": "member 'minimal.capabilities.json' does not match its sha256",
    "edited manifest": "the signature does not verify with trusted key 'acme'",
    "path traversal": "unsafe member name '../minimal.wasm'",
    "symlink": "member 'minimal.wasm' is a symbolic link",
    "duplicate": "appears twice",
    "too many members": "5 members, more than the 4 allowed",
    "manifest over limit": "member 'manifest.json' is",
    "world mismatch": "the manifest says world near:agent/sandboxed-channel@0.3.1, the component is airlock",
    "name mismatch": "the manifest says minimal 0.3.0, its capabilities file other 0.3.0",
    "not a zip": "not a zip archive",
    "unknown capabilities key": "minimal-0.3.0.airlock: minimal.capabilities.json: $.capabilites: unknown key",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_package_is_refused_with_one_line_and_nothing_changes(
        case: str, trusted_home: tuple[Path, Path], wasm: Path, caps: Path, tmp_path: Path) -> None:
    home, private = trusted_home
    pkg = tmp_path / "minimal-0.3.0.airlock"
    pkg.write_bytes(_bad_package(case, wasm, caps, private))
    before = tree(home)
    err = one_line_error(run_cli(home, "channels", "install", str(pkg), "--force", "--allow-unsigned"), BAD[case])
    assert err.startswith(f"error: {pkg}: ")
    assert tree(home) == before


def test_wrong_arguments_are_refused(trusted_home: tuple[Path, Path], wasm: Path, caps: Path,
                                     tmp_path: Path) -> None:
    home, private = trusted_home
    pkg = tmp_path / "minimal-0.3.0.airlock"
    pkg.write_bytes(write_archive(_signed(wasm, caps, private)))
    before = tree(home)
    one_line_error(run_cli(home, "channels", "install", str(pkg), str(caps)), "is a package: it holds its own")
    one_line_error(run_cli(home, "channels", "install", str(wasm)), "a bare component needs its capabilities file")
    one_line_error(run_cli(home, "channels", "install", str(tmp_path / "nope.airlock")), "package not found")
    one_line_error(run_cli(home, "channels", "install", "http://example.com/x.airlock"), "only https:// URLs")
    one_line_error(run_cli(home, "channels", "install", str(pkg), "--timeout", str(MAX_TIMEOUT_S + 1)),
                   f"--timeout: expected seconds between 0 and {MAX_TIMEOUT_S:g}")
    one_line_error(run_cli(home, "channels", "install", str(pkg)), "'minimal' is already installed")
    one_line_error(run_cli(home, "package", "build", str(wasm), str(caps), "--out", str(pkg)),
                   f"{pkg} already exists (use --force to replace it)")
    one_line_error(run_cli(home, "package", "build", str(caps), str(wasm), "--out", str(tmp_path)),
                   "the arguments are swapped")
    assert tree(home) == before and pkg.read_bytes() == write_archive(_signed(wasm, caps, private))


def test_key_and_trust_refusals_change_nothing(trusted_home: tuple[Path, Path], tmp_path: Path,
                                               wasm: Path, caps: Path) -> None:
    home, private = trusted_home
    keys = private.parent
    before, keys_before = tree(home), tree(keys)
    one_line_error(run_cli(home, "keys", "generate", "acme", "--dir", str(keys)), "already exists")
    one_line_error(run_cli(home, "trust", "add", str(keys / "acme.pub")), "is already trusted as 'acme'")
    one_line_error(run_cli(home, "trust", "add", str(caps)), "not an Airlock public key")
    one_line_error(run_cli(home, "trust", "rm", "nobody"), "no trusted key named 'nobody'")
    one_line_error(run_cli(home, "keys", "generate", "../evil", "--dir", str(keys)), "is not a key name")
    pkg = tmp_path / "elsewhere" / "p.airlock"
    pkg.parent.mkdir()
    pkg.write_bytes(build_package("minimal", "0.3.0", WORLD, wasm.read_bytes(), caps.read_bytes()))
    private.chmod(0o644)
    one_line_error(run_cli(home, "package", "sign", str(pkg), "--key", str(private)), "readable by others")
    private.chmod(0o600)
    pkg.write_bytes(write_archive({**read_archive(pkg.read_bytes()).members, "minimal.wasm": b"\0asm"}))
    packaged = pkg.read_bytes()
    one_line_error(run_cli(home, "package", "sign", str(pkg), "--key", str(private)),
                   "member 'minimal.wasm' does not match")
    assert pkg.read_bytes() == packaged  # a tampered package is never signed
    assert tree(home) == before and tree(keys) == keys_before
