"""A test channel of world 0.2.0 (``airlock:channel/interactive-channel``) that sends replies, edits and reactions
to ``https://localhost.test/`` (a fake platform on 127.0.0.1 in tests) and reports failures as typed send errors.

Replies go to ``POST /send`` with ``{"chat", "text"}``; the answer's ``id`` is returned as the platform message id.
Edits go to ``POST /edit`` with ``{"id", "text"}``, reactions to ``POST /react`` with ``{"id", "emoji", "remove"}``.
When the platform answers anything but 2xx, the reply text decides the error the guest returns (so a test can make
the guest contradict the platform's HTTP answer):

- ``"typed:temporary ..."`` -> ``TemporaryError``; ``"typed:permanent ..."`` -> ``PermanentError``;
- ``"typed:rate:N ..."`` -> ``RateLimited(N)``;
- anything else -> an ordinary exception (unclassified: the host reads the HTTP answers).
"""

from __future__ import annotations

import json
from typing import Any

from airlock_sdk import (
    AgentReply,
    Channel,
    ChannelConfig,
    MessageEdit,
    PermanentError,
    RateLimited,
    Reaction,
    TemporaryError,
    host,
)

BASE = "https://localhost.test"


def _failure(text: str, status: int) -> Exception:
    word = text.split(" ", 1)[0]
    if word == "typed:temporary":
        return TemporaryError(f"platform answered {status}")
    if word == "typed:permanent":
        return PermanentError(f"platform answered {status}")
    if word.startswith("typed:rate:"):
        return RateLimited(int(word.rsplit(":", 1)[1]), f"platform answered {status}")
    return RuntimeError(f"platform answered {status}")


def _post(path: str, doc: dict[str, Any], text: str) -> dict[str, Any]:
    resp = host.http("POST", f"{BASE}{path}", json_body=doc)
    if not 200 <= resp.status < 300:
        raise _failure(text, resp.status)
    answer = json.loads(resp.body.decode() or "{}")
    return answer if isinstance(answer, dict) else {}


class Sender(Channel):
    def on_start(self, config: dict[str, Any]) -> ChannelConfig:
        return ChannelConfig(display_name="sender")

    def on_respond(self, reply: AgentReply) -> str | None:
        answer = _post("/send", {"chat": reply.metadata.get("chat"), "text": reply.content}, reply.content)
        ident = answer.get("id")
        return str(ident) if ident is not None else None

    def on_broadcast(self, user_id: str, reply: AgentReply) -> str | None:
        answer = _post("/send", {"chat": user_id, "text": reply.content}, reply.content)
        return str(answer.get("id")) if answer.get("id") is not None else None

    def on_edit(self, edit: MessageEdit) -> None:
        _post("/edit", {"id": edit.platform_message_id, "text": edit.content}, edit.content)

    def on_react(self, reaction: Reaction) -> None:
        _post("/react", {"id": reaction.platform_message_id, "emoji": reaction.emoji, "remove": reaction.remove},
              reaction.emoji)
