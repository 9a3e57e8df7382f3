"""``channels install https://...``: a package downloaded from a real HTTPS server on 127.0.0.1 (self-signed
certificate, trusted through ``SSL_CERT_FILE``), under the SSRF rule of guest egress: a loopback or private
address is refused unless the operator exempts the host; plus the download's limits (https only, redirects,
size, timeout) against the same server."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from clirun import one_line_error, run_cli, tree
from tls_server import HttpsServer
from watguest import build_component

from airlock.errors import PackageError
from airlock.packages import TrustStore, build_package, fetch_package, sign_package
from airlock.packages.fetch import MAX_REDIRECTS
from airlock.packages.keys import generate_key_files, load_private_key, read_public_key

WORLD = "airlock:channel/sandboxed-channel@0.1.0"
CAPS = {"name": "minimal", "version": "0.3.0", "wit_version": "0.1.0",
        "capabilities": {"channel": {"allowed_paths": ["/webhook/minimal"]}}, "config": {"dm_policy": "open"}}
PATH = "/dl/minimal-0.3.0.airlock"


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """A signed package of the WAT test guest and the signer's public key file."""
    tmp = tmp_path_factory.mktemp("fetch-pkg")
    wasm = build_component(tmp)
    private, public, _ = generate_key_files(tmp / "acme", "acme")
    data = build_package("minimal", "0.3.0", WORLD, wasm.read_bytes(), json.dumps(CAPS).encode())
    return sign_package(data, *load_private_key(private)), public


@pytest.fixture(scope="module")
def server(signed: tuple[bytes, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    async def package(request: web.Request) -> web.Response:
        return web.Response(body=signed[0], content_type="application/octet-stream")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(10**9)})
        await resp.prepare(request)
        await resp.write(b"PK" * 100)
        return resp

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # chunked: no length declared
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"\0" * 1024)
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)  # over the 0.5 s the test allows; done before the server stops
        return web.Response(body=b"late")

    app = web.Application()
    app.router.add_get(PATH, package)
    app.router.add_get("/moved", moved)
    app.router.add_get("/huge", huge)
    app.router.add_get("/endless", endless)
    app.router.add_get("/slow", slow)
    with HttpsServer(app, tmp_path_factory.mktemp("tls")) as srv:
        yield srv


def test_a_url_on_a_private_address_is_refused_unless_the_operator_allows_it(
        airlock_home: Path, server: HttpsServer, signed: tuple[bytes, Path]) -> None:
    TrustStore(airlock_home).add(read_public_key(signed[1]))
    env = {"SSL_CERT_FILE": str(server.cert_file)}
    before = tree(airlock_home)
    for host in ("127.0.0.1", "localhost"):  # an IP literal (checked before connecting) and a name (resolver)
        err = one_line_error(run_cli(airlock_home, "channels", "install", server.url(PATH, host), **env),
                             "resolves to a non-public address; request refused")
        assert err.endswith(f"(allow it with --allow-private-host {host})")
    assert tree(airlock_home) == before

    out = ok(run_cli(airlock_home, "channels", "install", server.url(PATH), "--allow-private-host", "127.0.0.1",
                     **env))
    assert "installed minimal 0.3.0" in out and "signed by acme" in out
    prov = json.loads(ok(run_cli(airlock_home, "channels", "list", "--json")))[0]["provenance"]
    assert prov["source"] == server.url(PATH) and prov["signed"] is True
    # The host config's exemption (the one guest egress uses) works the same way.
    (airlock_home / "airlock.toml").write_text('allow_private_hosts = ["localhost"]\n')
    doc = json.loads(ok(run_cli(airlock_home, "package", "verify", server.url(PATH, "localhost"), "--json", **env)))
    assert (doc["name"], doc["version"], doc["world"]) == ("minimal", "0.3.0", WORLD)
    assert (doc["provenance"]["publisher"], doc["provenance"]["source"]) == ("acme", server.url(PATH, "localhost"))


def test_the_certificate_is_verified(airlock_home: Path, server: HttpsServer) -> None:
    before = tree(airlock_home)
    one_line_error(run_cli(airlock_home, "package", "verify", server.url(PATH), "--allow-private-host", "127.0.0.1"),
                   "TLS certificate not trusted")
    assert tree(airlock_home) == before


@pytest.fixture
def trust_server_cert(server: HttpsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(server.cert_file))


@pytest.mark.usefixtures("trust_server_cert")
def test_download_limits(server: HttpsServer, signed: tuple[bytes, Path]) -> None:
    exempt = ["127.0.0.1"]
    assert fetch_package(server.url(PATH), allow_private_hosts=exempt) == signed[0]
    with pytest.raises(PackageError, match="over the 1000-byte limit"):
        fetch_package(server.url("/huge"), allow_private_hosts=exempt, max_bytes=1000)
    with pytest.raises(PackageError, match="more than the 1000-byte limit"):
        fetch_package(server.url("/endless"), allow_private_hosts=exempt, max_bytes=1000)
    with pytest.raises(PackageError, match=r"no complete answer within 0\.5 s"):
        fetch_package(server.url("/slow"), allow_private_hosts=exempt, timeout_s=0.5)
    to_http = server.url("/moved?to=http://127.0.0.1:1/x.airlock")
    with pytest.raises(PackageError, match="only https:// URLs are fetched"):
        fetch_package(to_http, allow_private_hosts=exempt)
    chain = server.url(PATH)
    for _ in range(MAX_REDIRECTS):
        chain = server.url(f"/moved?to={quote(chain, safe='')}")
    assert fetch_package(chain, allow_private_hosts=exempt) == signed[0]  # MAX_REDIRECTS are followed
    with pytest.raises(PackageError, match=f"more than {MAX_REDIRECTS} redirects"):
        fetch_package(server.url(f"/moved?to={quote(chain, safe='')}"), allow_private_hosts=exempt)
    with pytest.raises(PackageError, match="user:password@"):
        fetch_package(server.url(PATH).replace("https://", "https://u:p@"), allow_private_hosts=exempt)


@pytest.mark.usefixtures("trust_server_cert")
def test_a_redirect_to_a_private_address_is_refused(server: HttpsServer) -> None:
    # Only "localhost" is exempt: the redirect to 127.0.0.1 is checked on its own and refused.
    to_literal = server.url(f"/moved?to={server.url(PATH)}", host="localhost")
    with pytest.raises(PackageError, match=r"host 127\.0\.0\.1 resolves to a non-public address"):
        fetch_package(to_literal, allow_private_hosts=["localhost"])
