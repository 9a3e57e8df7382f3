"""Unknown keys in a capabilities file are errors with a JSON path and a "did you mean" (``manifest.strict``), the
``"$schema"`` escape for files from IronClaw, and the published JSON Schema (``manifest.schema``): issue 9, item 1."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airlock.errors import CapabilitiesError
from airlock.manifest import load_capabilities, parse_capabilities
from airlock.manifest.schema import SCHEMA_FILE, build_schema, check_against_schema, published_schema, render
from airlock.manifest.strict import AIRLOCK_SCHEMA_ID, IRONCLAW_SCHEMA_IDS

REPO = Path(__file__).resolve().parents[1]
IRONCLAW = REPO.parent / "shared" / "testdata" / "ironclaw-capabilities"
REAL = sorted(IRONCLAW.glob("*.capabilities.json"))
BUNDLED = sorted([*REPO.glob("guest-plugins/*/*.capabilities.json"), *REPO.glob("tests/**/*.capabilities.json"),
                  *REPO.glob("bench/**/*.capabilities.json")])


def _telegram() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((IRONCLAW / "telegram.capabilities.json").read_text())
    return doc


def _strict_error(doc: dict[str, Any], source: str = "t.json") -> str:
    with pytest.raises(CapabilitiesError) as exc:
        parse_capabilities(json.dumps(doc), source)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_the_seven_ironclaw_files_and_every_bundled_file_load_strictly() -> None:
    assert len(REAL) == 7
    for path in [*REAL, *BUNDLED]:
        load_capabilities(path)  # no unknown key anywhere: would raise
    assert len(BUNDLED) >= 7


def test_a_misspelled_top_level_key_is_an_error_with_a_suggestion() -> None:
    doc = _telegram()
    doc["capabilites"] = doc.pop("capabilities")
    assert _strict_error(doc) == "t.json: $.capabilites: unknown key (did you mean 'capabilities'?)"


@pytest.mark.parametrize(("where", "key", "path", "meant"), [
    # a typo in a webhook's secret key would otherwise leave the webhook unverified
    (("capabilities", "channel", "webhook"), "secret_nme", "$.capabilities.channel.webhook.secret_nme", "secret_name"),
    (("capabilities", "http", "credentials", "telegram_bot"), "host_pattern",
     "$.capabilities.http.credentials.telegram_bot.host_pattern", "host_patterns"),
    (("capabilities", "http", "credentials", "telegram_bot", "location"), "placeholdr",
     "$.capabilities.http.credentials.telegram_bot.location.placeholdr", "placeholder"),
    (("setup",), "required_secret", "$.setup.required_secret", "required_secrets"),
    (("capabilities", "channel", "emit_rate_limit"), "messages_per_min",
     "$.capabilities.channel.emit_rate_limit.messages_per_min", "messages_per_minute"),
])
def test_nested_typos_name_their_path_and_the_key_meant(where: tuple[str, ...], key: str, path: str,
                                                        meant: str) -> None:
    doc = _telegram()
    node = doc
    for part in where:
        node = node[part]
    node[key] = "x"
    assert _strict_error(doc) == f"t.json: {path}: unknown key (did you mean {meant!r}?)"


def test_list_items_and_unrelated_keys_and_the_count_of_others() -> None:
    doc = _telegram()
    doc["capabilities"]["http"]["allowlist"][1]["zzz"] = 1
    doc["capabilities"]["channel"]["qqq"] = 2
    doc["surprise"] = 3
    msg = _strict_error(doc)
    assert msg == "t.json: $.capabilities.http.allowlist[1].zzz: unknown key (and 2 more unknown keys)"


def test_an_unknown_key_is_reported_before_the_required_key_it_replaces() -> None:
    doc = _telegram()
    doc["verison"] = doc.pop("version")
    assert _strict_error(doc) == "t.json: $.verison: unknown key (did you mean 'version'?)"


def test_extension_sections_allow_x_keys_only() -> None:
    doc = _telegram()
    doc["setup"]["x-wizard"] = {"step": 2}
    assert parse_capabilities(json.dumps(doc), "t.json").setup.model_extra == {"x-wizard": {"step": 2}}  # type: ignore[union-attr]
    doc["setup"]["wizard"] = 1
    assert _strict_error(doc) == "t.json: $.setup.wizard: unknown key"
    plain = _telegram()
    plain["capabilities"]["http"]["x-note"] = "not an extension section"
    assert _strict_error(plain) == 't.json: $.capabilities.http["x-note"]: unknown key'


def test_lenient_reads_warn_with_the_suggestion_and_drop_the_key(caplog: pytest.LogCaptureFixture) -> None:
    doc = _telegram()
    doc["capabilities"]["channel"]["webhook"]["secret_nme"] = "x"
    with caplog.at_level(logging.WARNING, logger="airlock.manifest"):
        parsed = parse_capabilities(json.dumps(doc), "t.json", lenient=True)
    assert [r.getMessage() for r in caplog.records if r.name == "airlock.manifest"] == [
        "t.json: $.capabilities.channel.webhook.secret_nme: unknown key ignored (did you mean 'secret_name'?)"]
    assert parsed.capabilities.channel.webhook is not None
    assert parsed.capabilities.channel.webhook.model_extra == {}


def test_an_ironclaw_schema_reads_leniently_and_other_schemas_are_checked(caplog: pytest.LogCaptureFixture) -> None:
    for path in REAL:  # the real files also load unchanged when they say where they come from
        doc = json.loads(path.read_text())
        doc["$schema"] = IRONCLAW_SCHEMA_IDS[0]
        assert parse_capabilities(json.dumps(doc), path.name).name == doc["name"]
    doc = _telegram()
    doc["$schema"] = IRONCLAW_SCHEMA_IDS[0]
    doc["capabilities"]["tool_aliases"] = ["tg"]  # a key Airlock does not model
    with caplog.at_level(logging.WARNING, logger="airlock.manifest"):
        parse_capabilities(json.dumps(doc), "t.json")
    assert "t.json: $.capabilities.tool_aliases: unknown key ignored" in caplog.messages
    for airlock in (AIRLOCK_SCHEMA_ID, "../schema/capabilities.schema.json",
                    "https://example.org/airlock/capabilities.schema.json"):
        doc["$schema"] = airlock
        assert _strict_error(doc) == "t.json: $.capabilities.tool_aliases: unknown key"
    doc["$schema"] = "urn:ironclaw:channel-capabilities:9"
    assert 'unknown format' in _strict_error(doc)
    doc["$schema"] = 1
    assert _strict_error(doc) == 't.json: $["$schema"]: must be a string'


# ---------------------------------------------------------------------------------------- the JSON Schema


def test_the_checked_in_schema_is_up_to_date() -> None:
    path = REPO / "host" / "airlock" / "manifest" / SCHEMA_FILE
    assert path.read_text() == render(), "stale: run `make schema`"
    jsonschema.Draft202012Validator.check_schema(published_schema())
    assert published_schema() == build_schema()


def test_every_file_the_loader_accepts_matches_the_schema() -> None:
    for path in [*REAL, *BUNDLED]:
        check_against_schema(json.loads(path.read_text()), str(path))


@pytest.mark.parametrize(("mutate", "path", "reason"), [
    (lambda d: d["capabilities"]["http"]["rate_limit"].update(requests_per_minute="30"),
     "$.capabilities.http.rate_limit.requests_per_minute", "is not of type 'integer'"),
    (lambda d: d["capabilities"]["channel"].update(callback_timeout_secs=601),
     "$.capabilities.channel.callback_timeout_secs", "601"),
    (lambda d: d["capabilities"]["http"]["credentials"]["telegram_bot"].update(location={"type": "cookie"}),
     "$.capabilities.http.credentials.telegram_bot.location", "cookie"),
    (lambda d: d.update(colour="red"), "$", "colour"),
])
def test_the_schema_refuses_what_the_loader_refuses(mutate: Any, path: str, reason: str) -> None:
    doc = _telegram()
    mutate(doc)
    with pytest.raises(CapabilitiesError) as exc:
        check_against_schema(copy.deepcopy(doc), "t.json")
    assert str(exc.value).startswith(f"t.json: {path}: does not match the schema: ")
    assert reason in str(exc.value)
    with pytest.raises(CapabilitiesError):
        parse_capabilities(json.dumps(doc), "t.json")


def test_the_schema_check_is_lenient_where_the_loader_is() -> None:
    doc = _telegram()
    doc["capabilities"]["future"] = True
    with pytest.raises(CapabilitiesError):
        check_against_schema(doc, "t.json")
    check_against_schema(doc, "t.json", lenient=True)
    doc["$schema"] = IRONCLAW_SCHEMA_IDS[0]
    check_against_schema(doc, "t.json")
    assert doc["capabilities"]["future"] is True  # the caller's object is left alone
