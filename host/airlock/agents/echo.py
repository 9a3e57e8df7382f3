"""The built-in echo agent: answers every message with ``echo: <content>``, showing "thinking" first."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import AirlockError

if TYPE_CHECKING:
    from ..host import AirlockHost

log = logging.getLogger("airlock.agent.echo")


async def echo_agent(host: AirlockHost) -> None:
    """Serve forever: for each message, send status "thinking", then reply ``echo: <content>``.

    A reply that cannot be delivered (the channel went inactive, the guest failed) is logged and the agent
    carries on with the next message.
    """
    async for message in host.messages():
        try:
            await host.send_status(message, "thinking")
            out = await host.respond(message, f"echo: {message.content}")
        except AirlockError as exc:
            log.warning("could not answer %s on %s: %s", message.id, message.channel, exc)
            continue
        if out.ok:
            log.info("answered %s on %s", message.id, message.channel)
