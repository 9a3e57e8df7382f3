"""Tests for airlock.manifest (the capabilities file loader) and airlock.host_config (HostConfig)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airlock.errors import CapabilitiesError, ConfigError
from airlock.host_config import HostConfig
from airlock.manifest import (
    MIN_POLL_INTERVAL_MS,
    BearerLocation,
    CapabilitiesFile,
    HeaderLocation,
    SecretsCapability,
    UrlPathLocation,
    load_capabilities,
    parse_capabilities,
)

REPO = Path(__file__).resolve().parents[1]
IRONCLAW = REPO.parent / "shared" / "testdata" / "ironclaw-capabilities"
REAL_NAMES = ["discord", "feishu", "slack", "telegram", "wechat", "wecom", "whatsapp"]


def _real(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((IRONCLAW / f"{name}.capabilities.json").read_text())
    return data


def _minimal(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": "0.1.0", "wit_version": "0.3.0", "name": "demo"}
    doc.update(extra)
    return doc


def _error(doc: Any, source: str = "demo.capabilities.json") -> str:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(CapabilitiesError) as exc:
        parse_capabilities(text, source)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------- real files


def test_testdata_present() -> None:
    assert sorted(p.name.split(".")[0] for p in IRONCLAW.glob("*.capabilities.json")) == REAL_NAMES


@pytest.mark.parametrize("name", REAL_NAMES)
def test_real_files_load_without_warnings(name: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="airlock.manifest"):
        doc = load_capabilities(IRONCLAW / f"{name}.capabilities.json")
    assert doc.name == name
    assert doc.type == "channel"
    assert doc.capabilities.http is not None
    assert doc.capabilities.secrets.allowed_names
    assert [r for r in caplog.records if r.name == "airlock.manifest"] == []


def test_discord_details() -> None:
    doc = load_capabilities(IRONCLAW / "discord.capabilities.json")
    http = doc.capabilities.http
    assert http is not None
    assert http.allowlist[0].host == "discord.com"
    assert http.allowlist[0].path_prefix == "/api/v10"
    assert http.allowlist[0].methods is None
    assert http.allowlist[1].methods == ["GET"]
    cred = http.credentials["discord_bot_token"]
    assert isinstance(cred.location, HeaderLocation)
    assert cred.location.name == "Authorization"
    assert cred.location.prefix == "Bot "
    assert cred.path_patterns == []
    assert cred.optional is False
    assert http.rate_limit.requests_per_hour == 3600
    assert http.max_request_bytes == 1_048_576
    assert http.max_response_bytes == 10_485_760
    assert http.timeout_secs == 30
    ws = doc.capabilities.websocket
    assert ws is not None
    assert ws.connect_on_start is True
    assert ws.identify is not None and ws.identify["intents"] == 4609
    ch = doc.capabilities.channel
    assert ch.callback_timeout_secs == 45
    assert ch.allow_polling is True
    assert ch.webhook is not None
    assert ch.webhook.signature_key_secret_name == "discord_public_key"
    assert ch.webhook.managed_by_host is True
    assert ch.max_message_size == 65536
    assert doc.config["dm_policy"] == "pairing"


def test_other_real_details() -> None:
    tg = load_capabilities(IRONCLAW / "telegram.capabilities.json")
    assert tg.auth is not None and tg.auth.env_var == "TELEGRAM_BOT_TOKEN"
    assert tg.setup is not None
    webhook_secret = tg.setup.required_secrets[1]
    assert webhook_secret.optional is True
    assert webhook_secret.auto_generate is not None and webhook_secret.auto_generate.length == 64
    assert tg.setup.validation_endpoint == "https://api.telegram.org/bot{telegram_bot_token}/getMe"
    assert tg.capabilities.http is not None
    loc = tg.capabilities.http.credentials["telegram_bot"].location
    assert isinstance(loc, UrlPathLocation) and loc.placeholder == "{TELEGRAM_BOT_TOKEN}"
    assert tg.capabilities.http.max_response_bytes == 52_428_800

    feishu = load_capabilities(IRONCLAW / "feishu.capabilities.json")
    assert feishu.setup is not None and feishu.setup.model_extra is not None
    assert [(m.config_key, m.secret_name) for m in feishu.setup.secret_config_mappings] == [
        ("app_id", "feishu_app_id"), ("app_secret", "feishu_app_secret"),
        ("verification_token", "feishu_verification_token")]
    assert feishu.capabilities.http is not None
    assert isinstance(feishu.capabilities.http.credentials["feishu_bearer"].location, BearerLocation)
    assert feishu.capabilities.channel.webhook is not None
    assert feishu.capabilities.channel.webhook.managed_by_host is False

    wecom = load_capabilities(IRONCLAW / "wecom.capabilities.json")
    ws = wecom.capabilities.websocket
    assert ws is not None and ws.protocol == "wecom_aibot" and ws.max_missed_heartbeat_acks == 2
    assert (ws.bot_id_secret_name, ws.bot_secret_name) == ("wecom_bot_id", "wecom_bot_secret")
    assert wecom.capabilities.http is not None
    assert wecom.capabilities.http.allowlist[1].host == "*.myqcloud.com"

    slack = load_capabilities(IRONCLAW / "slack.capabilities.json")
    assert slack.capabilities.channel.durable_workspace_paths == ["state/active_threads"]
    assert slack.capabilities.channel.webhook is not None
    assert slack.capabilities.channel.webhook.hmac_secret_name == "slack_signing_secret"

    wa = load_capabilities(IRONCLAW / "whatsapp.capabilities.json")
    assert wa.capabilities.channel.webhook is not None
    assert wa.capabilities.channel.webhook.verify_token_param == "hub.verify_token"
    assert wa.setup is not None and wa.setup.required_secrets[0].validation == "^[A-Za-z0-9_-]+$"


# ---------------------------------------------------------------------------------------- defaults


def test_minimal_defaults() -> None:
    doc = parse_capabilities(json.dumps(_minimal()), "demo")
    assert isinstance(doc, CapabilitiesFile)
    assert doc.type == "channel"
    assert doc.auth is None and doc.setup is None
    assert doc.capabilities.http is None
    assert doc.capabilities.websocket is None
    assert doc.capabilities.secrets.allowed_names == []
    ch = doc.capabilities.channel
    assert ch.allowed_paths == [] and ch.allow_polling is False
    assert ch.min_poll_interval_ms == MIN_POLL_INTERVAL_MS
    assert ch.emit_rate_limit.messages_per_minute == 100
    assert ch.emit_rate_limit.messages_per_hour == 5000
    assert ch.callback_timeout_secs == 30
    assert doc.config == {}


def test_http_defaults_and_method_uppercase() -> None:
    doc = parse_capabilities(
        json.dumps(
            _minimal(
                capabilities={
                    "http": {"allowlist": [{"host": "api.example.com", "methods": ["get", "Post"]}]}
                }
            )
        ),
        "demo",
    )
    http = doc.capabilities.http
    assert http is not None
    assert http.allowlist[0].path_prefix == "/"
    assert http.allowlist[0].methods == ["GET", "POST"]
    assert http.rate_limit.requests_per_minute == 60
    assert http.rate_limit.requests_per_hour == 1000
    assert http.credentials == {}


def test_bytes_input_and_bom() -> None:
    doc = parse_capabilities(b"\xef\xbb\xbf" + json.dumps(_minimal()).encode(), "demo")
    assert doc.name == "demo"


# ---------------------------------------------------------------------------------------- unknown keys


def test_unknown_keys_lenient_warn_with_path_and_load(caplog: pytest.LogCaptureFixture) -> None:
    doc = _real("telegram")
    doc["surprise"] = 1
    doc["capabilities"]["http"]["allowlist"][1]["colour"] = "red"
    doc["capabilities"]["http"]["credentials"]["telegram_bot"]["location"]["extra"] = True
    doc["capabilities"]["channel"]["future_flag"] = {"a": 1}
    with caplog.at_level(logging.WARNING, logger="airlock.manifest"):
        parsed = parse_capabilities(json.dumps(doc), "telegram.capabilities.json", lenient=True)
    assert parsed.name == "telegram"
    messages = [r.getMessage() for r in caplog.records if r.name == "airlock.manifest"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "airlock.manifest")
    assert "telegram.capabilities.json: $.surprise: unknown key ignored" in messages
    assert (
        "telegram.capabilities.json: $.capabilities.http.allowlist[1].colour: unknown key ignored" in messages
    )
    assert (
        "telegram.capabilities.json: $.capabilities.http.credentials.telegram_bot.location.extra: "
        "unknown key ignored" in messages
    )
    assert "telegram.capabilities.json: $.capabilities.channel.future_flag: unknown key ignored" in messages
    assert len(messages) == 4
    # dropped from the model
    assert parsed.model_extra is None or parsed.model_extra == {}
    assert "surprise" not in parsed.model_dump()


def test_extension_sections_keep_x_keys_silently(caplog: pytest.LogCaptureFixture) -> None:
    doc = _minimal(
        setup={"required_secrets": [], "x-wizard": "v2"},
        capabilities={
            "websocket": {"url": "wss://ws.example.com", "x-resume": True},
            "channel": {"webhook": {"secret_name": "s", "x-replay-window-secs": 300}},
        },
    )
    with caplog.at_level(logging.WARNING, logger="airlock.manifest"):
        parsed = parse_capabilities(json.dumps(doc), "demo")
    assert [r for r in caplog.records if r.name == "airlock.manifest"] == []
    assert parsed.setup is not None and parsed.setup.model_extra == {"x-wizard": "v2"}
    assert parsed.capabilities.websocket is not None
    assert parsed.capabilities.websocket.model_extra == {"x-resume": True}
    assert parsed.capabilities.channel.webhook is not None
    assert parsed.capabilities.channel.webhook.model_extra == {"x-replay-window-secs": 300}


def test_file_name_mismatch_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "other.capabilities.json"
    path.write_text(json.dumps(_minimal()))
    with caplog.at_level(logging.WARNING, logger="airlock.manifest"):
        assert load_capabilities(path).name == "demo"
    assert any("demo.capabilities.json" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------- errors


def test_wrong_type_one_line_with_file_and_path(tmp_path: Path) -> None:
    doc = _real("discord")
    doc["capabilities"]["http"]["allowlist"][0]["host"] = 443
    path = tmp_path / "discord.capabilities.json"
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(CapabilitiesError) as exc:
        load_capabilities(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: $.capabilities.http.allowlist[0].host: ")
    assert "string" in msg


@pytest.mark.parametrize(
    ("patch", "path", "needle"),
    [
        (
            {"channel": {"callback_timeout_secs": "30"}},
            "$.capabilities.channel.callback_timeout_secs",
            "integer",
        ),
        ({"channel": {"callback_timeout_secs": 601}}, "$.capabilities.channel.callback_timeout_secs", "600"),
        ({"channel": {"callback_timeout_secs": 0}}, "$.capabilities.channel.callback_timeout_secs", "1"),
        ({"channel": {"allow_polling": "yes"}}, "$.capabilities.channel.allow_polling", "boolean"),
        ({"channel": {"max_message_size": -1}}, "$.capabilities.channel.max_message_size", "greater than 0"),
        ({"channel": {"allowed_paths": "/webhook"}}, "$.capabilities.channel.allowed_paths", "list"),
        ({"channel": {"allowed_paths": ["webhook"]}}, "$.capabilities.channel.allowed_paths", "'/'"),
        ({"http": {"allowlist": [{"host": ""}]}}, "$.capabilities.http.allowlist[0].host", "empty"),
        (
            {"http": {"allowlist": [{"host": "API.example.com"}]}},
            "$.capabilities.http.allowlist[0].host",
            "lowercase",
        ),
        ({"http": {"allowlist": [{"host": "api.*.com"}]}}, "$.capabilities.http.allowlist[0].host", "'*.'"),
        (
            {"http": {"allowlist": [{"host": "https://x.com"}]}},
            "$.capabilities.http.allowlist[0].host",
            "scheme",
        ),
        ({"http": {"allowlist": [{"host": "x.com:443"}]}}, "$.capabilities.http.allowlist[0].host", "port"),
        (
            {"http": {"allowlist": [{"host": "x.com", "path_prefix": "api"}]}},
            "$.capabilities.http.allowlist[0].path_prefix",
            "'/'",
        ),
        (
            {"http": {"rate_limit": {"requests_per_minute": 0}}},
            "$.capabilities.http.rate_limit.requests_per_minute",
            "greater than 0",
        ),
        ({"http": {"timeout_secs": True}}, "$.capabilities.http.timeout_secs", "integer"),
        (
            {
                "http": {
                    "credentials": {
                        "c": {
                            "secret_name": "s",
                            "location": {"type": "header", "name": 5},
                            "host_patterns": ["x.com"],
                        }
                    }
                }
            },
            "$.capabilities.http.credentials.c.location.name",
            "string",
        ),
        (
            {
                "http": {
                    "credentials": {
                        "c": {"secret_name": "s", "location": {"type": "cookie"}, "host_patterns": ["x.com"]}
                    }
                }
            },
            "$.capabilities.http.credentials.c.location",
            "cookie",
        ),
        (
            {
                "http": {
                    "credentials": {
                        "c": {"secret_name": "s", "location": {"type": "basic"}, "host_patterns": ["x.com"]}
                    }
                }
            },
            "$.capabilities.http.credentials.c.location.username",
            "missing",
        ),
        ({"secrets": {"allowed_names": ["*"]}}, "$.capabilities.secrets.allowed_names", "glob"),
        ({"secrets": {"allowed_names": "foo_*"}}, "$.capabilities.secrets.allowed_names", "list"),
        ({"websocket": {"url": "ws://x.com"}}, "$.capabilities.websocket.url", "wss://"),
        ({"websocket": {"connect_on_start": True}}, "$.capabilities.websocket.url", "missing"),
        (
            {"channel": {"webhook": {"managed_by_host": "no"}}},
            "$.capabilities.channel.webhook.managed_by_host",
            "boolean",
        ),
    ],
)
def test_invalid_capabilities(patch: dict[str, Any], path: str, needle: str) -> None:
    msg = _error(_minimal(capabilities=patch))
    assert msg.startswith(f"demo.capabilities.json: {path}: "), msg
    assert needle in msg, msg


@pytest.mark.parametrize("name", ["Demo", "-demo", "", "a" * 64, "de mo", "démo"])
def test_invalid_name(name: str) -> None:
    msg = _error(_minimal(name=name))
    assert msg.startswith("demo.capabilities.json: $.name: ")


def test_valid_names() -> None:
    for name in ["a", "0chan", "my_channel-2", "a" * 63]:
        assert parse_capabilities(json.dumps(_minimal(name=name)), "x").name == name


def test_missing_required_and_count_of_other_problems() -> None:
    msg = _error({"name": "demo"})
    assert msg.startswith("demo.capabilities.json: $.version: required key is missing")
    assert "(and 1 more problem)" in msg


def test_bad_type_value_and_setup_regex() -> None:
    assert _error(_minimal(type="tool")).startswith("demo.capabilities.json: $.type: ")
    msg = _error(_minimal(setup={"required_secrets": [{"name": "x", "validation": "([a-z"}]}))
    assert msg.startswith("demo.capabilities.json: $.setup.required_secrets[0].validation: invalid regular")
    msg = _error(_minimal(setup={"required_secrets": [{"name": "x", "auto_generate": {"length": 0}}]}))
    assert msg.startswith("demo.capabilities.json: $.setup.required_secrets[0].auto_generate.length: ")


def test_key_with_dots_is_quoted_in_path() -> None:
    msg = _error(
        _minimal(
            capabilities={
                "http": {
                    "credentials": {
                        "a.b": {"secret_name": 1, "location": {"type": "bearer"}, "host_patterns": ["x.com"]}
                    }
                }
            }
        )
    )
    assert msg.startswith('demo.capabilities.json: $.capabilities.http.credentials["a.b"].secret_name: ')


def test_invalid_json_one_line_with_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.capabilities.json"
    path.write_text('{\n  "name": "broken",\n  "version": "1" "x"\n}\n')
    with pytest.raises(CapabilitiesError) as exc:
        load_capabilities(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: line 3 column 18: invalid JSON")


@pytest.mark.parametrize("text", ["[]", '"x"', "null"])
def test_top_level_must_be_object(text: str) -> None:
    assert _error(text).startswith("demo.capabilities.json: $: expected a JSON object")


def test_invalid_utf8_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CapabilitiesError, match=r"^demo: \$: not valid UTF-8"):
        parse_capabilities(b'{"name": "\xff"}', "demo")
    missing = tmp_path / "nope.capabilities.json"
    with pytest.raises(CapabilitiesError, match="cannot read file"):
        load_capabilities(missing)


# ---------------------------------------------------------------------------------------- secrets globs


def test_secrets_allows_exact_and_prefix_glob() -> None:
    caps = SecretsCapability(allowed_names=["discord_bot_token", "slack_*"])
    assert caps.allows("discord_bot_token")
    assert not caps.allows("discord_bot_token2")
    assert not caps.allows("discord_public_key")
    assert caps.allows("slack_signing_secret")
    assert caps.allows("slack_")
    assert not caps.allows("slac")
    assert not caps.allows("other")
    assert not SecretsCapability().allows("anything")


def test_real_file_globs() -> None:
    doc = load_capabilities(IRONCLAW / "discord.capabilities.json")
    assert doc.capabilities.secrets.allows("discord_public_key")
    assert not doc.capabilities.secrets.allows("slack_bot_token")
    wecom = load_capabilities(IRONCLAW / "wecom.capabilities.json")
    assert wecom.capabilities.secrets.allows("wecom_bot_id")
    assert not wecom.capabilities.secrets.allows("wecom_other")


# ---------------------------------------------------------------------------------------- HostConfig


def test_host_config_defaults_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path / "data"))
    cfg = HostConfig()
    assert cfg.home == tmp_path / "data"
    assert cfg.channels_dir == tmp_path / "data" / "channels"
    assert cfg.listen_host == "127.0.0.1" and cfg.listen_port == 8080
    assert cfg.memory_limit_bytes == 50 * 1024 * 1024
    assert cfg.fuel_per_callback == 5_000_000_000
    assert cfg.bus_capacity == 1000
    assert cfg.poll_floor_ms == 30_000
    assert cfg.cache_dir == cfg.home / "cache"
    assert cfg.secrets_path == cfg.home / "secrets.json"
    assert cfg.key_path == cfg.home / "master.key"
    assert cfg.pairing_db == cfg.home / "pairing.db"
    assert cfg.workspace_db == cfg.home / "workspace.db"


def test_host_config_default_home_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRLOCK_HOME", raising=False)
    assert HostConfig().home == Path.home() / ".airlock"


def test_host_config_explicit(tmp_path: Path) -> None:
    cfg = HostConfig(
        home=tmp_path,
        channels_dir=tmp_path / "ch",
        upstream_overrides={"api.telegram.org": "http://127.0.0.1:8081/"},
        min_poll_interval_override_ms=100,
    )
    assert cfg.channels_dir == tmp_path / "ch"
    assert cfg.upstream_overrides == {"api.telegram.org": "http://127.0.0.1:8081"}
    assert cfg.poll_floor_ms == 100
    assert HostConfig(home=tmp_path).channels_dir == tmp_path / "channels"


def test_host_config_build_errors() -> None:
    with pytest.raises(ConfigError, match="listen_port"):
        HostConfig.build(listen_port=70000)
    with pytest.raises(ConfigError, match="upstream_overrides"):
        HostConfig.build(upstream_overrides={"api.example.com": "ftp://x"})
    with pytest.raises(ConfigError, match="bus_capacity"):
        HostConfig.build(bus_capacity=0)


# ---------------------------------------------------------------------------------------- admission keys


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"dm_policy": "Pairing"}, "dm_policy"),
        ({"dm_policy": 1}, "dm_policy"),
        ({"allow_from": "12345"}, "allow_from must be a list"),
        ({"allow_from": [["1"]]}, "allow_from must be a list"),
        ({"allow_from": [True]}, "allow_from must be a list"),
        ({"owner_id": {"id": 1}}, "owner_id"),
        ({"owner_id": False}, "owner_id"),
    ],
)
def test_admission_keys_are_typed(config: dict[str, Any], needle: str) -> None:
    msg = _error(_minimal(config=config))
    assert msg.startswith("demo.capabilities.json: $.config: "), msg
    assert needle in msg, msg


@pytest.mark.parametrize("policy", ["open", "allowlist", "pairing", "disabled"])
def test_admission_keys_accept_documented_values(policy: str) -> None:
    doc = parse_capabilities(
        json.dumps(_minimal(config={"dm_policy": policy, "allow_from": ["u1", 2], "owner_id": 7})), "demo"
    )
    assert doc.config["dm_policy"] == policy
