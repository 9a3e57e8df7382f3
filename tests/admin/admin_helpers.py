"""Shared by the admin tests: a real host with the admin listener on a free port, WAT channels to drive it,
and small HTTP helpers. A plain module, not a conftest.py (tests import ``conftest`` by name)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import watguest
from conftest import InstallFn, minimal_caps

from airlock.host import AirlockHost
from airlock.host_config import HostConfig

__all__ = ["Api", "admin_host", "install_wat", "post_webhook"]

HOOK_SECRET_NAME = "alpha_hook_secret"
HOOK_HEADER = "X-Alpha-Secret"


def install_wat(install: InstallFn, wat_dir: Path, name: str, *, mode: str = "normal", poll_ms: int = 0,
                secret: bool = False, **channel: Any) -> Path:
    """Install the WAT guest as channel ``name`` (webhook ``/webhook/<name>``); ``secret``: the host checks
    header ``HOOK_HEADER`` against the stored ``HOOK_SECRET_NAME``."""
    caps = minimal_caps(name, **channel)
    if secret:
        caps["capabilities"]["channel"]["webhook"] = {"scheme": "header", "secret_header": HOOK_HEADER,
                                                      "secret_name": HOOK_SECRET_NAME}
        caps["setup"] = {"required_secrets": [{"name": HOOK_SECRET_NAME, "prompt": "hook secret"}]}
    return install(watguest.build_component(wat_dir, name, mode=mode, poll_ms=poll_ms), caps)


class Api:
    """An aiohttp session against the admin listener with the bearer token."""

    def __init__(self, host: AirlockHost, session: aiohttp.ClientSession, token: str) -> None:
        self.host = host
        self.session = session
        self.token = token
        assert host.admin_url is not None
        self.base = host.admin_url

    def _headers(self, token: str | None) -> dict[str, str]:
        value = self.token if token is None else token
        return {"Authorization": f"Bearer {value}"} if value else {}

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        async with self.session.request(method, self.base + path, data=data, headers=self._headers(token),
                                        allow_redirects=False) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body if body is not None else {}, **kw)


@asynccontextmanager
async def admin_host(home: Path, **config: Any) -> AsyncIterator[Api]:
    """A started host with the admin listener on a free 127.0.0.1 port, and an ``Api`` client for it."""
    values: dict[str, Any] = {"home": home, "listen_port": 0, "admin": True, "admin_port": 0}
    values.update(config)
    async with AirlockHost(HostConfig.build(**values)) as host, aiohttp.ClientSession() as session:
        assert host.admin_token is not None  # a fresh home: the token is made at this first start
        yield Api(host, session, host.admin_token)


async def post_webhook(host: AirlockHost, name: str, body: bytes = b"hi",
                       headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}/webhook/{name}", data=body,
                                                    headers=headers or {}) as r:
        await r.read()
        return r.status
