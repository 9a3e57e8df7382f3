"""Host settings from defaults, the config file, ``AIRLOCK_*`` variables and the command line
(``airlock.host_settings``; issue 9, item 1: host config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.errors import ConfigError
from airlock.host_config import HostConfig
from airlock.host_settings import CONFIG_FILE, ENV_VARS, resolve

# The settings issue 9 names, each of which must be settable from a file and from the environment.
NAMED = ["listen_host", "listen_port", "admin_host", "admin_port", "agent_api_host", "agent_api_port",
         "memory_limit_bytes", "fuel_per_callback", "webhook_header_timeout_s", "webhook_body_timeout_s",
         "agent_visibility_timeout_s", "pool_slots", "pooling", "inline_callbacks", "allow_private_hosts",
         "upstream_overrides", "log_format", "log_level"]


def test_every_setting_but_home_and_routing_has_a_variable() -> None:
    assert sorted(ENV_VARS.values()) == sorted(set(HostConfig.model_fields) - {"home", "routing"})
    assert all(f"AIRLOCK_{name.upper()}" in ENV_VARS for name in NAMED)


def test_precedence_default_file_env_command_line(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text('listen_port = 9001\nlisten_host = "0.0.0.0"\npool_slots = 5\n'
                                        '[routing]\ndm_scope = "per-peer"\n')
    env = {"AIRLOCK_LISTEN_PORT": "9002", "AIRLOCK_POOL_SLOTS": "6", "AIRLOCK_INLINE_CALLBACKS": "off",
           "AIRLOCK_ALLOW_PRIVATE_HOSTS": "a.test, b.test", "AIRLOCK_WEBHOOK_BODY_TIMEOUT_S": "2.5",
           "AIRLOCK_UPSTREAM_OVERRIDES": "api.telegram.org=http://127.0.0.1:81,slack.com=http://127.0.0.1:82",
           "AIRLOCK_LOG_LEVEL": "DEBUG", "AIRLOCK_MASTER_KEY": "not a setting", "OTHER": "x"}
    s = resolve(home=tmp_path, environ=env, cli={"pool_slots": 7}, defaults={"admin": True})
    c = s.config
    assert (c.listen_host, c.listen_port, c.pool_slots, c.inline_callbacks) == ("0.0.0.0", 9002, 7, False)
    assert c.allow_private_hosts == ["a.test", "b.test"] and c.webhook_body_timeout_s == 2.5
    assert c.upstream_overrides == {"api.telegram.org": "http://127.0.0.1:81", "slack.com": "http://127.0.0.1:82"}
    assert c.log_level == "debug" and c.admin is True and c.routing.dm_scope == "per-peer"
    file = str(tmp_path / CONFIG_FILE)
    assert s.origins["listen_host"] == ("file", file) and s.origins["routing"] == ("file", file)
    assert s.origins["listen_port"] == ("env", "AIRLOCK_LISTEN_PORT")
    assert s.origins["pool_slots"] == ("command line", "")
    assert s.origins["admin"] == ("default", "") and s.origins["memory_limit_bytes"] == ("default", "")
    assert resolve(home=tmp_path, environ={"AIRLOCK_ADMIN": "0"}, defaults={"admin": True}).config.admin is False


def test_an_empty_variable_unsets_an_optional_setting(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text("pool_slots = 5\n")
    assert resolve(home=tmp_path, environ={"AIRLOCK_POOL_SLOTS": ""}).config.pool_slots is None


def test_config_option_replaces_the_home_file(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text("listen_port = 9001\n")
    other = tmp_path / "other.toml"
    other.write_text("listen_port = 9003\n")
    s = resolve(home=tmp_path, environ={}, config_file=other)
    assert s.config.listen_port == 9003 and s.file == other
    with pytest.raises(ConfigError, match=r"missing.toml: config file not found$"):
        resolve(home=tmp_path, environ={}, config_file=tmp_path / "missing.toml")


@pytest.mark.parametrize(("env", "message"), [
    ({"AIRLOCK_LISTEN_PORT": "eighty"}, "AIRLOCK_LISTEN_PORT='eighty': expected an integer"),
    ({"AIRLOCK_LISTEN_PORT": "70000"}, "AIRLOCK_LISTEN_PORT='70000': listen_port: Input should be less than or "
                                       "equal to 65535"),
    ({"AIRLOCK_POOLING": "maybe"}, "AIRLOCK_POOLING='maybe': expected true or false"),
    ({"AIRLOCK_WEBHOOK_BODY_TIMEOUT_S": "soon"}, "AIRLOCK_WEBHOOK_BODY_TIMEOUT_S='soon': expected a number"),
    ({"AIRLOCK_UPSTREAM_OVERRIDES": "api.x.org"}, "AIRLOCK_UPSTREAM_OVERRIDES: 'api.x.org' is not HOST=URL"),
    ({"AIRLOCK_LOG_FORMAT": "xml"}, "AIRLOCK_LOG_FORMAT='xml': log_format: log format 'xml': expected one of text, "
                                    "json"),
])
def test_a_bad_variable_is_one_line_naming_it(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        resolve(home=tmp_path, environ=env)
    assert str(exc.value) == message


@pytest.mark.parametrize(("text", "message"), [
    ("listen_prot = 1\n", "listen_prot: unknown setting (did you mean 'listen_port'?)"),
    ('home = "/elsewhere"\n', "home: cannot be set in a config file (use --home or AIRLOCK_HOME)"),
    ("listen_port = \n", "Invalid value (at line 1, column 15)"),
    ("listen_port = -1\n", "listen_port: Input should be greater than or equal to 0"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(ConfigError) as exc:
        resolve(home=tmp_path, environ={})
    assert str(exc.value).startswith(f"{tmp_path / CONFIG_FILE}: ") and message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_misspelled_variable_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"AIRLOCK_LISTEN_PROT": "9000", "AIRLOCK_CARGO": "cargo", "AIRLOCK_MASTER_KEY": "x", "AIRLOCK_HOME": "/h"}
    with caplog.at_level("WARNING", logger="airlock.settings"):
        assert resolve(home=tmp_path, environ=env).config.listen_port == 8080
    assert caplog.messages == ["AIRLOCK_LISTEN_PROT is not a setting (did you mean AIRLOCK_LISTEN_PORT?); ignored"]
