"""Real ``airlock serve`` processes for the cluster tests: each its own home (``AIRLOCK_HOME``) whose
``airlock.toml`` names one shared PostgreSQL state database, the same ``AIRLOCK_MASTER_KEY`` for all."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from servers import free_port

HOST_DIR = Path(__file__).resolve().parents[2] / "host"
START_TIMEOUT_S = 60.0
"""Seconds a node may take to serve (first compile of its channels included)."""
CLUSTER_KEY = secrets.token_hex(32)
"""The master key every node of the test cluster shares (``AIRLOCK_MASTER_KEY``)."""


def make_home(base: Path, name: str, state_url: str, compile_cache: Path | None = None) -> Path:
    """A node's home: ``channels/`` and an ``airlock.toml`` pointing at ``state_url``."""
    home = base / name
    (home / "channels").mkdir(parents=True)
    if compile_cache is not None:
        (home / "cache").symlink_to(compile_cache, target_is_directory=True)
    (home / "airlock.toml").write_text(f"state = {json.dumps(state_url)}\n")
    return home


def node_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "_AIRLOCK"))}
    env.update(AIRLOCK_HOME=str(home), AIRLOCK_MASTER_KEY=CLUSTER_KEY, AIRLOCK_AGENT_API_PORT="0", NO_COLOR="1",
               COLUMNS="200", PYTHONPATH=os.pathsep.join([str(HOST_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


def cli(home: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``airlock ARGS`` on ``home``, as that node's operator runs it."""
    return subprocess.run([sys.executable, "-m", "airlock.cli", *args], env=node_env(home), input=input,
                          capture_output=True, text=True, timeout=60, cwd=home.parent)


class Node:
    """One running ``airlock serve`` (no in-process agent; the admin listener with ``admin``) on a free loopback
    port; its agent API on another (``api_url``, ``.../v1``)."""

    def __init__(self, home: Path, *, admin: bool = False) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{free_port()}" if admin else None
        api_port = free_port()
        self.api_url = f"http://127.0.0.1:{api_port}/v1"
        listeners = ["--admin-port", self.admin_url.rsplit(":", 1)[1]] if self.admin_url else ["--no-admin"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airlock.cli", "serve", "--port", str(self.port), *listeners, "--agent", "none"],
            env=node_env(home) | {"AIRLOCK_AGENT_API_PORT": str(api_port)}, cwd=home.parent,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        runfile = home / "run" / "gateway.json"
        while not (runfile.exists() and f'"pid": {self.proc.pid},' in runfile.read_text()):
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return cli(self.home, *args, input=input)

    def admin_post(self, path: str, token: str) -> int:
        assert self.admin_url is not None
        req = urllib.request.Request(self.admin_url + path, method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)

    def stop(self) -> str:
        """SIGTERM, wait; returns stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=30)
