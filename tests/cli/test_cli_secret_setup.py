"""``airlock secrets set`` reads the installed channels' ``setup.required_secrets`` and ``auth``: prompt and hint,
validation pattern, auto-generation; a name no installed channel uses is stored with a warning (issue 9, item 1).
Through the real command (a subprocess); the terminal prompt in process (stdin is not a terminal in a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clirun import MASTER_KEY, one_line_error, run_cli, tree
from conftest import minimal_caps
from typer.testing import CliRunner
from watguest import build_component

from airlock import cli
from airlock.stores import SecretStore
from airlock.stores.masterkey import parse_master_key
from airlock.stores.secrets import GENERATE_ALPHABET


def _caps() -> dict[str, Any]:
    doc = minimal_caps("tg")
    doc["auth"] = {"secret_name": "tg_bot_token", "token_hint": "Looks like 123456789:AABBcc...",
                   "instructions": "Ask @BotFather for a token."}
    doc["setup"] = {"required_secrets": [
        {"name": "tg_bot_token", "prompt": "Enter the bot token", "validation": "^[0-9]+:[A-Za-z0-9_-]+$"},
        {"name": "tg_webhook_secret", "prompt": "Webhook secret (empty: generate)", "optional": True,
         "auto_generate": {"length": 48}}]}
    return doc


@pytest.fixture
def home(airlock_home: Path, tmp_path: Path) -> Path:
    caps = tmp_path / "src" / "tg.capabilities.json"
    caps.parent.mkdir()
    caps.write_text(json.dumps(_caps()))
    done = run_cli(airlock_home, "channels", "install", str(build_component(tmp_path / "wat", "tg")), str(caps))
    assert done.returncode == 0, done.stderr
    return airlock_home


def _stored(home: Path, name: str) -> str | None:
    return SecretStore(home / "secrets.json", parse_master_key(MASTER_KEY)).get(name)  # the key the CLI runs with


def test_generate_validate_and_warn(home: Path) -> None:
    done = run_cli(home, "secrets", "set", "tg_webhook_secret", input="\n")  # empty: the channel allows generating
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stored secret tg_webhook_secret (generated, 48 characters)"
    value = _stored(home, "tg_webhook_secret")
    assert value is not None and len(value) == 48 and set(value) <= set(GENERATE_ALPHABET)
    assert value not in done.stdout + done.stderr

    before = tree(home)
    err = one_line_error(run_cli(home, "secrets", "set", "tg_bot_token", input="not-a-token\n"),
                         "does not match the pattern channel 'tg' requires")
    assert "not-a-token" not in err
    one_line_error(run_cli(home, "secrets", "set", "tg_bot_token", input="\n"), "empty value for tg_bot_token")
    assert tree(home) == before

    typo = run_cli(home, "secrets", "set", "tg_bot_tokn", input="123:abc\n")
    assert typo.returncode == 0, typo.stderr
    assert typo.stderr.strip() == ("warning: no installed channel uses a secret named 'tg_bot_tokn' (did you mean "
                                   "'tg_bot_token'?); stored anyway")
    other = run_cli(home, "secrets", "set", "--generate", "my_own")
    assert other.returncode == 0 and "no installed channel uses a secret named 'my_own'" in other.stderr
    assert "(generated, 32 characters)" in other.stdout
    quiet = run_cli(home, "secrets", "set", "tg_bot_token", input="123:abc\n")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_the_terminal_prompt_shows_the_channels_prompt_and_hint(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_HOME", str(home))
    monkeypatch.setenv("AIRLOCK_MASTER_KEY", MASTER_KEY)
    monkeypatch.setattr(cli.secrets, "_stdin_is_tty", lambda: True)
    result = CliRunner().invoke(cli.app, ["secrets", "set", "tg_bot_token"], input="42:xyz\n")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[:3] == ["Ask @BotFather for a token.", "Enter the bot token", "Looks like 123456789:AABBcc..."]
    assert "42:xyz" not in result.output
    assert _stored(home, "tg_bot_token") == "42:xyz"
    generated = CliRunner().invoke(cli.app, ["secrets", "set", "tg_webhook_secret"], input="\n")
    assert generated.exit_code == 0, generated.output
    assert "(empty: generate one)" in generated.output and "generated, 48 characters" in generated.stdout
