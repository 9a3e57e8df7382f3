"""``make run``'s job (``python -m airlock_demo``): every bundled channel installed, Telegram answering through
pairing and the echo agent, the others inactive and saying which secrets they need."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import BUILT_CHANNELS, REPO

pytestmark = pytest.mark.e2e

BUNDLED = ["discord", "feishu", "slack", "telegram", "wechat", "wecom", "whatsapp"]


def test_demo_transcript_and_channel_status() -> None:
    missing = [n for n in BUNDLED if not (BUILT_CHANNELS / f"{n}.wasm").exists()]
    assert not missing, f"bundled channels not built: {missing} (make guests)"
    env = {**os.environ, "PYTHONPATH": str(REPO / "host")}  # as make run: the demo is not an installed package
    proc = subprocess.run(
        [sys.executable, "-m", "airlock_demo", "--once", "--channels-dir", str(BUILT_CHANNELS),
         "--cache-dir", str(REPO / "build" / "compile-cache")],
        cwd=REPO, capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    status = {line.split(":", 1)[0].removeprefix("airlock> channel "): line.split(": ", 1)[1]
              for line in out if line.startswith("airlock> channel ")}
    assert status["telegram"] == "active"
    for name in ["discord", "feishu", "slack", "wechat", "wecom", "whatsapp"]:
        assert status[name].startswith("inactive: missing secrets "), status[name]
        assert f"channel {name} inactive: missing secrets" in proc.stderr
    assert "slack_signing_secret" in status["slack"]
    assert "wechat_bot_token" in status["wechat"]
    assert "wecom_bot_id" in status["wecom"] and "wecom_bot_secret" in status["wecom"]
    assert out[-1] == "bot> echo: hello from Telegram, through the sandbox"
    assert any(line.startswith("operator> airlock pairing approve telegram ") for line in out)
    [console] = [line for line in out if line.startswith("airlock> admin console on http://127.0.0.1:")]
    assert "(login token, shown once: alk_" in console
