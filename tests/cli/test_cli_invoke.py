"""``airlock invoke`` for channel authors: ``--after-start``, ``--workspace``, ``--input @file`` and
``--offline``, through the real command with the real Telegram component (build/channels/telegram.wasm).

The component is compiled once per test session (the home's cache is the session's compile cache)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clirun import one_line_error, run_cli, tree
from conftest import BUILT_CHANNELS

TOKEN = "123456:SECRET-token-value"
UPDATE = {"update_id": 41, "message": {"message_id": 7, "date": 1, "text": "hello offline",
                                       "from": {"id": 4242, "is_bot": False, "first_name": "Ada"},
                                       "chat": {"id": 4242, "type": "private"}}}
CANNED = {"responses": [
    {"method": "GET", "url": "https://api.telegram.org/bot[REDACTED]/getUpdates*", "times": 1,
     "json": {"ok": True, "result": [UPDATE]}},
    {"method": "POST", "url": "https://api.telegram.org/bot*/sendMessage",
     "json": {"ok": True, "result": {"message_id": 8}}},
]}


@pytest.fixture
def tg(airlock_home: Path, tmp_path: Path) -> dict[str, Path]:
    """The Telegram component with ``dm_policy: open`` (its default is pairing), a stored token, canned
    responses for getUpdates (one update, once) and sendMessage."""
    wasm = BUILT_CHANNELS / "telegram.wasm"
    assert wasm.exists(), "make guests builds build/channels/telegram.wasm"
    caps = json.loads((BUILT_CHANNELS / "telegram.capabilities.json").read_text())
    caps["config"]["dm_policy"] = "open"
    caps_path = tmp_path / "telegram.capabilities.json"
    caps_path.write_text(json.dumps(caps))
    canned = tmp_path / "canned.json"
    canned.write_text(json.dumps(CANNED))
    assert run_cli(airlock_home, "secrets", "set", "telegram_bot_token", input=TOKEN + "\n").returncode == 0
    return {"wasm": wasm, "caps": caps_path, "canned": canned}


def invoke(home: Path, tg: dict[str, Path], callback: str, *args: str, input: str | None = None) -> dict[str, Any]:
    proc = run_cli(home, "invoke", str(tg["wasm"]), callback, "-c", str(tg["caps"]), "--json", *args, input=input)
    assert proc.returncode in (0, 2), proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["ok"] is (proc.returncode == 0)
    return doc


def http_calls(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c["detail"] for c in doc["host_calls"] if c["function"] == "http-request"]


def test_after_start_and_offline_run_on_poll_without_a_platform(airlock_home: Path, tg: dict[str, Path]) -> None:
    doc = invoke(airlock_home, tg, "on-poll", "--after-start", "--offline", str(tg["canned"]),
                 "--workspace", "state/offset=41")
    assert doc["after_start"]["callback"] == "on-start" and doc["after_start"]["ok"] is True
    assert "state/config" in doc["after_start"]["workspace"]["writes"]
    assert doc["workspace"]["seeded"] == ["state/offset"]
    # The seeded offset is used, the canned update is read and, with the started config's open DMs, emitted.
    assert [r["answered_by"] for r in doc["offline"]["requests"]] == [0]
    assert doc["offline"]["requests"][0]["url"] == \
        "https://api.telegram.org/bot[REDACTED]/getUpdates?timeout=25&offset=41"
    assert [(m["user_id"], m["content"], m["admitted"]) for m in doc["emitted"]] == [("4242", "hello offline", True)]
    assert doc["workspace"]["writes"] == {"state/offset": "42"}


def test_without_after_start_the_callback_sees_no_started_state(airlock_home: Path, tg: dict[str, Path]) -> None:
    # No on-start: the channel's default config applies (dm_policy pairing), so the sender gets a code instead.
    doc = invoke(airlock_home, tg, "on-poll", "--offline", str(tg["canned"]))
    assert "after_start" not in doc
    assert doc["emitted"] == []
    requests = doc["offline"]["requests"]
    assert [(r["method"], r["answered_by"]) for r in requests] == [("GET", 0), ("POST", 1)]
    assert "pairing code" in json.loads(requests[1]["body"])["text"]


def test_offline_refuses_what_no_canned_response_matches(airlock_home: Path, tg: dict[str, Path],
                                                         tmp_path: Path) -> None:
    only_send = tmp_path / "send-only.json"
    only_send.write_text(json.dumps(CANNED["responses"][1:]))  # a plain list works too
    doc = invoke(airlock_home, tg, "on-poll", "--offline", str(only_send))
    [call] = [c for c in doc["host_calls"] if c["function"] == "http-request"]
    assert call["ok"] is False
    assert call["error"] == ("offline: no canned response for GET "
                             "https://api.telegram.org/bot[REDACTED]/getUpdates?timeout=25")
    assert doc["offline"]["requests"][0]["answered_by"] is None


def test_input_from_a_file_and_from_stdin(airlock_home: Path, tg: dict[str, Path], tmp_path: Path) -> None:
    reply = {"content": "hi from a file", "metadata": {"chat_id": 4242}}
    path = tmp_path / "reply.json"
    path.write_text(json.dumps(reply))
    for args, stdin in (([f"@{path}"], None), (["@-"], json.dumps(reply))):
        doc = invoke(airlock_home, tg, "on-respond", "--offline", str(tg["canned"]), "--input", *args, input=stdin)
        assert doc["ok"] is True, doc["error"]
        assert doc["input"]["content"] == "hi from a file"
        sent = json.loads(doc["offline"]["requests"][0]["body"])
        assert (sent["chat_id"], sent["text"]) == (4242, "hi from a file")


def test_an_installed_channel_by_name_with_its_installed_config(airlock_home: Path, tg: dict[str, Path]) -> None:
    assert run_cli(airlock_home, "channels", "install", str(tg["wasm"]), str(tg["caps"])).returncode == 0
    proc = run_cli(airlock_home, "invoke", "telegram", "on-poll", "--after-start", "--offline", str(tg["canned"]))
    assert proc.returncode == 0, proc.stderr
    assert "after on-start: ok" in proc.stdout
    assert "emitted messages (1)" in proc.stdout and "4242: hello offline" in proc.stdout
    assert "canned response #0" in proc.stdout and TOKEN not in proc.stdout


def test_failed_on_start_stops_before_the_callback(airlock_home: Path, tg: dict[str, Path], tmp_path: Path) -> None:
    caps = json.loads(tg["caps"].read_text())
    caps["config"]["long_poll_timeout_s"] = 99  # the channel's on-start refuses it (0..50)
    tg["caps"].write_text(json.dumps(caps))
    doc = invoke(airlock_home, tg, "on-poll", "--after-start", "--offline", str(tg["canned"]))
    assert doc["callback"] == "on-start" and doc["not_run"] == "on-poll"
    assert doc["error"]["class"] == "returned-error" and "long_poll_timeout_s" in doc["error"]["message"]
    assert doc["offline"]["requests"] == []


def test_bad_options_are_one_line_and_change_nothing(airlock_home: Path, tg: dict[str, Path],
                                                     tmp_path: Path) -> None:
    base = ("invoke", str(tg["wasm"]), "-c", str(tg["caps"]))
    bad_canned = tmp_path / "bad.json"
    before = tree(airlock_home)
    for args, fragments in [
        (("on-poll", "--workspace", "noequals"), ["expected KEY=VALUE"]),
        (("on-poll", "--workspace", "../up=1"), ["'../up'", "'..'"]),
        (("on-respond", "--input", f"@{tmp_path / 'missing.json'}"), ["file not found"]),
        (("on-poll", "--offline", str(tmp_path / "nope.json")), ["--offline", "file not found"]),
        (("on-poll", "--offline", str(tg["canned"]), "--upstream", "api.telegram.org=http://127.0.0.1:9"),
         ["cannot be combined"]),
        (("on-start", "--after-start"), ["already on-start"]),
    ]:
        one_line_error(run_cli(airlock_home, *base, *args), *fragments)
    for content, fragment in [("{", "invalid JSON"), ('{"responses": 3}', "expected a list"),
                              ('[{"url": "https://x/*", "status": 42}]', "responses[0].status"),
                              ('[{"url": "https://x/*", "body": "a", "json": {}}]', "either body or json"),
                              ('[{"url": "https://x/*", "delay": 1}]', "responses[0].delay")]:
        bad_canned.write_text(content)
        one_line_error(run_cli(airlock_home, *base, "on-poll", "--offline", str(bad_canned)), fragment)
    one_line_error(run_cli(airlock_home, "invoke", "nosuchchannel", "on-poll"), "neither a file nor a channel")
    assert tree(airlock_home) == before
