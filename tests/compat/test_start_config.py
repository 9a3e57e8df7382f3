"""near:agent conformance: what the host puts into the config given to on-start, and credentials it cannot fill.

IronClaw (``src/channels/wasm/setup.rs``, ``src/pairing/approval.rs``): the start config carries ``tunnel_url`` (the
public URL), ``webhook_secret`` (the stored webhook secret) and ``owner_id``, and each
``setup.secret_config_mappings`` entry copies a stored secret into it; a declared credential whose secret is not
stored is skipped (``resolve_channel_host_credentials``). End to end with IronClaw's own telegram and feishu files:
Telegram switches to webhook mode and registers the secret it must be called with; Feishu gets its app id, app
secret and verification token, and replies with the tenant token it fetched itself.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from compat_support import free_port, ironclaw_caps, next_message, running, start_config_of
from conftest import InstallFn
from fake_feishu import FakeFeishu, message_event
from typer.testing import CliRunner

from airlock import cli
from airlock.channels.activation import RESERVED_CONFIG_KEYS, start_config
from airlock.errors import ConfigError
from airlock.host_config import HostConfig
from airlock.manifest import parse_capabilities
from airlock.runtime.engine import World
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

VERIFY_TOKEN = "vtok-compat-5e1d"
NEAR = World("near:agent/channel-host@0.3.1", "near:agent/channel@0.3.1")
AIRLOCK = World("airlock:channel/channel-host@0.1.0", "airlock:channel/channel@0.1.0")


@pytest.fixture
async def feishu() -> AsyncIterator[FakeFeishu]:
    async with FakeFeishu() as fake:
        yield fake


async def test_feishu_as_shipped_gets_its_secrets_and_keeps_its_own_bearer(
        airlock_home: Path, install_channel: InstallFn, feishu: FakeFeishu) -> None:
    secrets = {"feishu_app_id": feishu.app_id, "feishu_app_secret": feishu.app_secret,
               "feishu_verification_token": VERIFY_TOKEN}  # feishu_tenant_access_token is never stored
    async with running(airlock_home, install_channel, ironclaw_caps("feishu", dm_policy="open"), secrets=secrets,
                       upstream={"open.feishu.cn": feishu.base_url}) as host:
        cfg = start_config_of(host, "feishu")
        assert (cfg["app_id"], cfg["app_secret"], cfg["verification_token"]) == (
            feishu.app_id, feishu.app_secret, VERIFY_TOKEN)
        url = f"{host.base_url}/webhook/feishu"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=message_event("wrong token", token="nope")) as refused:
                assert refused.status == 401  # the guest checks the token itself (managed_by_host: false)
            async with http.post(url, json=message_event("hello feishu", token=VERIFY_TOKEN)) as resp:
                assert resp.status == 200
        got = await next_message(host)
        assert got.content == "hello feishu"
        out = await host.respond(got, "echo: hello feishu")
        assert out.ok, out.error
        replies = await feishu.wait_for("replies", 1)
        assert replies[0]["text"] == "echo: hello feishu"
        reply_call = next(c for c in feishu.calls if c.path.endswith("/reply"))
        assert reply_call.authorization == f"Bearer {feishu.tokens_issued[0]}" and reply_call.code == 0


async def test_telegram_enters_webhook_mode_with_the_public_url_and_its_secret(
        airlock_home: Path, install_channel: InstallFn) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    caps = ironclaw_caps("telegram", dm_policy="open", owner_id="4242")
    async with FakeTelegram() as tg, running(
            airlock_home, install_channel, caps, secrets={"telegram_bot_token": tg.token},
            upstream={"api.telegram.org": tg.base_url}, listen_port=port, public_base_url=public + "/") as host:
        secret = host.secrets.get("telegram_webhook_secret")  # auto_generate: 64 characters
        assert secret is not None and len(secret) == 64
        cfg = start_config_of(host, "telegram")
        assert (cfg["tunnel_url"], cfg["webhook_secret"], cfg["owner_id"]) == (public, secret, 4242)
        assert tg.webhook_url == f"{public}/webhook/telegram"
        tg.push_message("hello over the webhook", user_id=1001)
        got = await next_message(host)
        assert (got.user_id, got.content) == ("1001", "hello over the webhook")
        assert got.metadata["validated"] is True  # the host checked the header Telegram sent with that secret
        deliveries = await tg.wait_for_webhook_deliveries(1)
        assert deliveries[0]["status"] == 200


def caps_doc(**setup: object) -> dict[str, object]:
    return {"name": "tg", "version": "0.1.0", "wit_version": "0.3.0",
            "setup": {"required_secrets": [{"name": "tg_token"}, {"name": "tg_key"}], **setup},
            "capabilities": {"channel": {"webhook": {"secret_header": "X-Secret", "secret_name": "tg_hook"}}},
            "config": {"owner_id": " 77 ", "dm_policy": "pairing", "tunnel_url": "https://by-hand.example"}}


def test_start_config_rules(caplog: pytest.LogCaptureFixture) -> None:
    mappings = [{"config_key": "token", "secret_name": "tg_token"},
                {"config_key": "missing", "secret_name": "tg_key"},       # declared, not stored: file value stays
                {"config_key": "webhook_secret", "secret_name": "tg_token"},  # a host key: ignored
                {"config_key": "other", "secret_name": "undeclared"}]      # not in required_secrets: ignored
    caps = parse_capabilities(json.dumps(caps_doc(secret_config_mappings=mappings)), "tg.json")
    stored = {"tg_token": "T0K", "tg_hook": "H00K", "undeclared": "nope"}.get
    with caplog.at_level(logging.INFO, logger="airlock.channels"):
        near = json.loads(start_config(caps, NEAR, public_base_url=None, secret_lookup=stored))
    assert near == {"owner_id": 77, "dm_policy": "pairing", "tunnel_url": "https://by-hand.example",
                    "webhook_secret": "H00K", "token": "T0K"}
    assert "T0K" not in caplog.text and "H00K" not in caplog.text  # values are never logged
    assert "owned by the host" in caplog.text and "not in setup.required_secrets" in caplog.text
    assert {"tunnel_url", "webhook_secret", "owner_id"} <= RESERVED_CONFIG_KEYS

    with_url = json.loads(start_config(caps, NEAR, public_base_url="https://gw.example", secret_lookup=stored))
    assert with_url["tunnel_url"] == "https://gw.example"  # the host's public URL wins over a hand-written one

    caplog.clear()
    airlock = json.loads(start_config(caps, AIRLOCK, public_base_url="https://gw.example", secret_lookup=stored))
    assert airlock == {"owner_id": " 77 ", "dm_policy": "pairing", "tunnel_url": "https://gw.example",
                       "instance_name": "tg"}  # Airlock's world only: the instance's name (a near:agent has none)
    assert "instance_name" not in with_url
    second = json.loads(start_config(caps, AIRLOCK, public_base_url=None, secret_lookup=stored, instance="tg-2"))
    assert second["instance_name"] == "tg-2"
    assert "secret_config_mappings is ignored" in caplog.text  # Airlock's world never gets a secret value

    plain = parse_capabilities(json.dumps({**caps_doc(), "capabilities": {}, "config": {"owner_id": "ada"}}), "x")
    cfg = json.loads(start_config(plain, NEAR, public_base_url=None, secret_lookup={"tg_webhook_secret": "D"}.get))
    assert cfg == {"owner_id": "ada", "webhook_secret": "D"}  # IronClaw's default name: <name>_webhook_secret


@pytest.mark.parametrize("url", ["ftp://gw.example", "gw.example", "https://", "https://gw.example/?a=1",
                                 "https://gw.example/#x"])
def test_public_base_url_must_be_a_plain_http_url(url: str) -> None:
    with pytest.raises(ConfigError, match="public_base_url"):
        HostConfig.build(public_base_url=url)
    assert HostConfig.build(public_base_url="https://gw.example/base/").public_base_url == "https://gw.example/base"


def test_serve_passes_public_url_to_the_host_config(tmp_path: Path) -> None:
    # An invalid --public-url is refused by HostConfig's public_base_url rule before anything listens: the
    # option reaches the config (a valid one is driven end to end by the Telegram webhook test above). The
    # port is taken, so a serve that ignored the option would stop with "cannot listen" instead of running.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli.app, ["--home", str(tmp_path / "home"), "serve", "--host", "127.0.0.1",
                                              "--port", str(port), "--public-url", "ftp://tunnel.example/x"])
    assert result.exit_code == 1
    assert "public_base_url must be an http:// or https:// URL" in result.output
