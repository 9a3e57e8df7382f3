"""The Python SDK's world 0.2.0: on_respond's platform id, typed send errors, on_edit / on_react, on CPython
(``FakeHost``) and through the real componentize-py bindings (``Delivery``, ``Edits``, ``Reactions``)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk" / "python"))

from wit_fixtures import bindings_dir_fixture, wit_fixture  # noqa: F401 (fixtures)

import airlock_sdk
from airlock_sdk import (
    AgentReply,
    Channel,
    MessageEdit,
    PermanentError,
    RateLimited,
    Reaction,
    TemporaryError,
)
from airlock_sdk.channel import CallbackFailed, call_on_edit, call_on_react
from airlock_sdk.testing import FakeHost


class Editor(Channel):
    def on_respond(self, reply: AgentReply) -> str | None:
        word = reply.content.split(" ", 1)[0]
        if word == "slow":
            raise RateLimited(7, "429 from the platform")
        if word == "gone":
            raise PermanentError("chat not found")
        if word == "flaky":
            raise TemporaryError("502")
        if word == "odd":
            raise ValueError("something else")
        return "m-1" if reply.metadata.get("chat") else None

    def on_edit(self, edit: MessageEdit) -> None:
        if edit.platform_message_id != "m-1":
            raise PermanentError("message to edit not found")
        host_seen.append((edit.platform_message_id, edit.content, edit.metadata))


host_seen: list[Any] = []


def test_fakehost_returns_ids_and_classes() -> None:
    with FakeHost() as fake:
        assert fake.respond(Editor, "hi", metadata={"chat": "1"}) == "m-1"
        assert fake.respond(Editor, "hi") is None
        with pytest.raises(CallbackFailed) as err:
            fake.respond(Editor, "slow down")
        assert (err.value.send_class, err.value.retry_after, err.value.message) == (
            "rate-limited", 7, "429 from the platform")
        with pytest.raises(CallbackFailed) as err:
            fake.respond(Editor, "odd one")
        assert (err.value.send_class, err.value.message) == ("unclassified", "ValueError: something else")
        host_seen.clear()
        fake.edit(Editor, "m-1", "new text", metadata={"chat": "1"})
        assert host_seen == [("m-1", "new text", {"chat": "1"})]
        with pytest.raises(CallbackFailed) as err:
            fake.edit(Editor, "m-2", "x")
        assert err.value.send_class == "permanent"
        with pytest.raises(CallbackFailed) as err:
            fake.react(Editor, "m-1", "👍")
        assert err.value.send_class == "permanent" and "does not react" in err.value.message


def test_edit_and_reaction_metadata_that_is_not_an_object_is_a_permanent_error() -> None:
    """No retry can fix the metadata the host passes: both callbacks refuse it as "permanent", before the channel's
    code runs (Editor.on_edit would otherwise record the call)."""
    host_seen.clear()
    with FakeHost() as fake:
        with pytest.raises(CallbackFailed) as err:
            call_on_edit(Editor, "m-1", "x", None, "[1]")
        assert (err.value.send_class, err.value.message) == ("permanent", "metadata-json is not a JSON object")
        with pytest.raises(CallbackFailed) as err:
            call_on_react(Editor, "m-1", "👍", False, "not json")
        assert err.value.send_class == "permanent"
        assert host_seen == [] and len(fake.logs) == 2


def test_a_0_1_0_style_channel_is_unchanged() -> None:
    class Old(Channel):
        def on_respond(self, reply: AgentReply) -> None:
            return None

    class Odd(Channel):
        def on_respond(self, reply: AgentReply) -> Any:
            return 42  # a 0.1.0 channel's return value was ignored: still no id, not a failure

    with FakeHost() as fake:
        assert fake.respond(Old, "hi") is None
        assert fake.respond(Odd, "hi") is None
        with pytest.raises(CallbackFailed) as err:
            fake.edit(Old, "1", "x")
        assert err.value.send_class == "permanent"


def test_optional_exports_on_cpython_return_the_class() -> None:
    assert airlock_sdk.export_delivery(Editor) is Editor
    assert airlock_sdk.export_edits(Editor) is Editor
    assert airlock_sdk.export_reactions(Editor) is Editor
    with pytest.raises(TypeError):
        airlock_sdk.export_edits(object)  # type: ignore[arg-type]


def test_the_wit_exports_carry_ids_and_send_errors(wit: ModuleType) -> None:
    from componentize_py_types import Err  # type: ignore[import-not-found]
    from wit_world import exports  # type: ignore[import-not-found]
    from wit_world.exports import channel as wc  # type: ignore[import-not-found]
    from wit_world.exports import delivery as wd  # type: ignore[import-not-found]
    from wit_world.exports import edits as we  # type: ignore[import-not-found]
    from wit_world.exports import reactions as wr  # type: ignore[import-not-found]

    delivery = wit.make_optional_export(Editor, "delivery")
    assert delivery.__name__ == "Delivery" and exports.Delivery in delivery.__mro__
    reply = wc.AgentResponse("r", "hi", None, '{"chat": "1"}', [])
    assert delivery().on_respond(reply) == "m-1"
    cases = {"slow": wd.SendError_RateLimited(wd.RateLimit(7, "429 from the platform")),
             "gone": wd.SendError_Permanent("chat not found"), "flaky": wd.SendError_Temporary("502"),
             "odd": wd.SendError_Unclassified("ValueError: something else")}
    for word, expected in cases.items():
        with pytest.raises(Err) as err:
            delivery().on_respond(wc.AgentResponse("r", f"{word} x", None, "{}", []))
        assert err.value.value == expected
    edits = wit.make_optional_export(Editor, "edits")
    assert edits.__name__ == "Edits" and exports.Edits in edits.__mro__
    assert edits().on_edit(we.MessageEdit("m-1", "t", None, "{}")) is None
    with pytest.raises(Err) as err:
        edits().on_edit(we.MessageEdit("m-1", "t", None, "not json"))
    assert isinstance(err.value.value, wd.SendError_Permanent)
    reactions = wit.make_optional_export(Editor, "reactions")
    with pytest.raises(Err) as err:
        reactions().on_react(wr.Reaction("m-1", "👍", False, "{}"))
    assert isinstance(err.value.value, wd.SendError_Permanent)


def test_reaction_record_defaults() -> None:
    assert Reaction("1", "👍") == Reaction("1", "👍", False, {})
