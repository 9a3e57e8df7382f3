"""The main job without any account: the gateway with every bundled channel, an embedded fake Telegram
Bot API on 127.0.0.1, and the built-in echo agent.

Every ``<name>.wasm`` + ``<name>.capabilities.json`` pair in ``--channels-dir`` is installed. Only Telegram gets
a (fake) token, so it is the one active channel; the others stay inactive until their secrets are stored,
and the status table printed at start says which secrets each one needs.

A scripted user writes to the Telegram bot; as the channel's ``dm_policy`` is ``pairing``, the first message
gets a pairing code, the operator approves it, and the next message goes platform -> channel -> agent ->
channel -> platform. The transcript is printed one line per side: ``user> ...``, ``bot> ...``. Then the
gateway keeps serving (``/health``, the webhooks, and the admin console on a free 127.0.0.1 port, whose URL and
one-time login token are printed at start) until Ctrl-C, unless ``--once`` is given.

Run: ``PYTHONPATH=host python -m airlock_demo [--channels-dir build/channels] [--once]`` (``make run``). The demo
and its fake Telegram live in ``airlock_demo``, next to the ``airlock`` package: not in the production wheel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore

from .telegram import FakeTelegram

USER_ID = 4242
WAIT_S = 30.0


def _install(channels_src: Path, home: Path) -> list[str]:
    """Copy every bundled channel into the demo home; returns the installed names, sorted."""
    dst = home / "channels"
    dst.mkdir(parents=True, exist_ok=True)
    names = []
    for wasm in sorted(channels_src.glob("*.wasm")):
        caps_path = channels_src / f"{wasm.stem}.capabilities.json"
        if not caps_path.exists():
            continue
        caps = json.loads(caps_path.read_text())
        if wasm.stem == "telegram":
            caps["config"]["polling_enabled"] = True
            caps["config"]["bot_username"] = "airlock_demo_bot"
        shutil.copy(wasm, dst / wasm.name)
        (dst / caps_path.name).write_text(json.dumps(caps, indent=2))
        names.append(wasm.stem)
    return names


def _print_status(host: AirlockHost) -> None:
    print(f"airlock> gateway on {host.base_url}", flush=True)
    if host.admin_url is not None:
        print(f"airlock> admin console on {host.admin_url} (login token, shown once: {host.admin_token})",
              flush=True)
    for name, slot in sorted(host.manager.slots.items()):
        print(f"airlock> channel {name}: {slot.reason}", flush=True)


async def _say(fake: FakeTelegram, text: str, seen: int) -> str:
    print(f"user> {text}", flush=True)
    fake.push_message(text, chat_id=USER_ID, user_id=USER_ID, username="demo_user", first_name="Demo")
    sent = await fake.wait_for_sent(seen + 1, timeout=WAIT_S)
    reply = str(sent[seen].get("text", ""))
    print(f"bot> {reply}", flush=True)
    return reply


async def run_demo(channels_src: Path, cache_dir: Path, *, serve: bool = False) -> int:
    """Run the scripted conversation; returns a process exit code (0 when the echo came back).

    With ``serve``, the gateway keeps running after the conversation until the task is cancelled (Ctrl-C).
    The home is temporary; the compile cache is ``cache_dir`` so only the first run compiles the guests.
    """
    home = Path(tempfile.mkdtemp(prefix="airlock-demo-"))
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        (home / "cache").symlink_to(cache_dir.resolve(), target_is_directory=True)
        os.environ.setdefault("AIRLOCK_MASTER_KEY", secrets.token_hex(32))
        _install(channels_src, home)
        async with FakeTelegram(bot_username="airlock_demo_bot") as fake:
            store = SecretStore.open(home)
            store.set("telegram_bot_token", fake.token)
            config = HostConfig.build(home=home, listen_port=0, admin=True, admin_port=0,
                                      upstream_overrides={"api.telegram.org": fake.base_url})
            async with AirlockHost(config, secrets=store) as host:
                from airlock.agents.echo import echo_agent

                agent = asyncio.create_task(echo_agent(host))
                try:
                    _print_status(host)
                    code = await _conversation(fake, host)
                    if serve and code == 0:
                        print(f"airlock> serving on {host.base_url} (Ctrl-C to stop)", flush=True)
                        await asyncio.Event().wait()
                    return code
                finally:
                    agent.cancel()
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _conversation(fake: FakeTelegram, host: AirlockHost) -> int:
    await _say(fake, "hello", 0)
    pending = host.pairing.pending("telegram")
    if not pending:
        print("demo: no pairing request was created", file=sys.stderr)
        return 1
    code = pending[0].code
    print(f"operator> airlock pairing approve telegram {code}", flush=True)
    host.pairing.approve("telegram", code)
    reply = await _say(fake, "hello from Telegram, through the sandbox", 1)
    return 0 if reply.startswith("echo: ") else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--channels-dir", type=Path, default=Path("build/channels"))
    parser.add_argument("--cache-dir", type=Path, default=Path("build/compile-cache"))
    parser.add_argument("--once", action="store_true", help="exit after the scripted conversation")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not (args.channels_dir / "telegram.wasm").exists():
        print(f"error: {args.channels_dir}/telegram.wasm not built (run make guests)", file=sys.stderr)
        raise SystemExit(1)
    try:
        code = asyncio.run(run_demo(args.channels_dir, args.cache_dir, serve=not args.once))
    except KeyboardInterrupt:
        code = 0
    raise SystemExit(code)


if __name__ == "__main__":
    main()
