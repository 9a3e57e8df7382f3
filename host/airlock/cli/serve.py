"""``airlock serve``: run the gateway until SIGINT or SIGTERM.

The admin listener (console, API, ``/metrics``: ``airlock.admin``) is on unless ``--no-admin``; its URL, and at
its first start the login token (shown once), go to stderr, not into the log. When the default admin port
(``DEFAULT_ADMIN_PORT``) is taken, serve warns and runs without it; an ``--admin-port`` given explicitly must
be free.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import AirlockError, ConfigError
from ..host_config import HostConfig
from ..host_settings import Settings
from ..observability.logs import parse_level
from ..stores.homelock import HomeLock
from ..workers.role import WorkerRole
from ..workers.role import current as current_role
from .about import version_doc
from .app import app, fail, friendly_errors, parse_upstreams, settings_from, setup_logging
from .runfile import FLUSH_INTERVAL_S, ErrorRecorder, RunFile, started_info

if TYPE_CHECKING:
    from ..agents.loader import Agent
    from ..host import AirlockHost

__all__ = ["serve"]

log = logging.getLogger("airlock.cli")

DEFAULT_ADMIN_PORT = HostConfig.model_fields["admin_port"].default


@app.command()
@friendly_errors
def serve(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(
        metavar="N", help="Webhook HTTP port (0 picks a free one). (default: 8080)")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on. (default: 127.0.0.1)")] = None,
    agent: Annotated[str | None, typer.Option(
        metavar="MODULE:CALLABLE",
        help="The agent to run, an async function taking the host; 'none' runs no in-process agent (agents "
             "consume the message log through the agent API). (default: the built-in echo agent)",
    )] = None,
    upstream: Annotated[list[str] | None, typer.Option(
        metavar="HOST=URL",
        help="Send a channel's traffic for HOST to URL instead (e.g. a local fake). Repeatable.",
    )] = None,
    channels_dir: Annotated[Path | None, typer.Option(
        help="Where installed channels live. (default: HOME/channels)")] = None,
    public_url: Annotated[str | None, typer.Option(
        metavar="URL", help="This gateway's public base URL (e.g. a tunnel), given to channels as tunnel_url.",
    )] = None,
    agent_api_port: Annotated[int | None, typer.Option(
        metavar="N", help="Agent HTTP API port, on 127.0.0.1 (0 picks a free one). (default: 8789; 0 with --port 0)",
    )] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging (--log-level debug).")] = False,
    log_format: Annotated[str | None, typer.Option(
        metavar="text|json", help="Log lines as text, or one JSON object a line (channel, callback, trace_id). "
                                  "(default: text)",
    )] = None,
    log_level: Annotated[str | None, typer.Option(
        metavar="LEVEL", help="debug, info, warning, error or critical. (default: info)")] = None,
    admin: Annotated[bool | None, typer.Option(
        "--admin/--no-admin", help="Serve the admin console, API and /metrics on a listener of their own. "
                                   "(default: on)",
    )] = None,
    admin_host: Annotated[str | None, typer.Option(
        help="Admin listener address. (default: 127.0.0.1)")] = None,
    admin_port: Annotated[int | None, typer.Option(
        metavar="N", help=f"Admin listener port, never the webhook port. (default: {DEFAULT_ADMIN_PORT})")] = None,
    lenient: Annotated[bool, typer.Option(
        "--lenient", help="Load capabilities files with unknown keys (warned about and ignored) instead of "
                          "refusing those channels.")] = False,
    workers: Annotated[int, typer.Option(
        metavar="N", min=0,
        help="Worker processes sharing the listeners (0: one per core). With N > 1 a supervisor restarts workers "
             "that die; webhooks go to any worker, each poller and websocket runs in one worker at a time (a "
             "lease); worker 0 runs the agent API, admin console, in-process agent and outbox. (default: 1: one "
             "process, the embedded default: it has no supervisor to fail, and one core is enough for most "
             "gateways on SQLite; give more when callbacks use up a core)")] = 1,
) -> None:
    """Run the gateway: load the installed channels, serve their webhooks and run the agent until Ctrl-C.

    SIGINT or SIGTERM stops it cleanly: every active channel's on-shutdown runs before exit. One serve per home:
    a second one exits at once, naming the PID of the first (HOME/serve.lock). With ``--workers N`` (N > 1) the
    supervisor holds that lock and its workers run under it (``airlock.workers``). The gateway serves
    HOME/control.sock, through which the CLI changes channels live (channels
    enable/disable/upgrade/rollback/remove/config, secrets set/rm), and reloads airlock.toml on SIGHUP (the
    settings that can change live; the others are logged as needing a restart). With workers, the supervisor
    serves it and passes each change (and SIGHUP) to every worker (``workers.fanout``).
    """
    options = {"listen_port": port, "listen_host": host, "channels_dir": channels_dir, "public_base_url": public_url,
               "agent_api_port": agent_api_port, "log_format": log_format, "admin": admin,
               "admin_host": admin_host, "admin_port": admin_port,
               "log_level": "debug" if verbose and log_level is None else log_level,
               "lenient_capabilities": True if lenient else None}
    values: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if upstream:
        values["upstream_overrides"] = parse_upstreams(upstream)
    settings = settings_from(ctx, defaults={"admin": True}, **values)
    agent_fn, agent_name = _agent(agent)
    role = current_role()

    def reread() -> HostConfig:
        return settings_from(ctx, defaults={"admin": True}, **values).config

    if role is not None:  # a worker: its supervisor holds the home's lock
        _serve_locked(settings, agent_fn, agent_name, workers, role, reread)
        return
    with HomeLock(settings.config.home):  # before anything binds a port: a second serve names the first's PID
        _serve_locked(settings, agent_fn, agent_name, workers, None, reread)


def _agent(spec: str | None) -> tuple[Agent, str]:
    """``--agent``: the agent callable and how the log names it."""
    if spec == "none":
        return _no_agent, "none (messages wait in the log for the agent API)"
    if spec is not None:
        from ..agents.loader import load_agent

        return load_agent(spec), spec
    from ..agents.echo import echo_agent

    return echo_agent, "echo (built in)"


def _serve_locked(settings: Settings, agent_fn: Agent, agent_name: str, workers: int,
                  role: WorkerRole | None, reread: Callable[[], HostConfig] | None = None) -> None:
    config = settings.config
    setup_logging(parse_level(config.log_level), serve=True, fmt=config.log_format)
    if config.admin and settings.origins["admin_port"][0] == "default" \
            and not _port_free(config.admin_host, config.admin_port):
        log.warning("admin console not started: %s:%d is in use (choose one with --admin-port N, or --no-admin)",
                    config.admin_host, config.admin_port)
        config.admin = False
    log.info("home %s, channels from %s", config.home, config.channels_dir)
    for logical, base in config.upstream_overrides.items():
        log.warning("upstream override: %s -> %s", logical, base)
    count = workers or os.cpu_count() or 1
    if role is None and count > 1:
        from ..workers.launch import run_supervisor

        raise typer.Exit(run_supervisor(config, count))
    try:
        # A reread keeps the admin switch as decided above (a taken default port is no change to report).
        again = None if reread is None else (lambda: reread().model_copy(update={"admin": config.admin}))
        code = asyncio.run(_serve(config, agent_fn, agent_name, role, again))
    except KeyboardInterrupt:
        fail("interrupted while stopping")
    raise typer.Exit(code)


async def _serve(config: HostConfig, agent: Agent, agent_name: str, role: WorkerRole | None = None,
                 reread: Callable[[], HostConfig] | None = None) -> int:
    from ..host import AirlockHost
    from ..workers.launch import watch_parent

    # The control socket: HOME/control.sock in one process; a worker's private one, which its supervisor serves
    # HOME/control.sock for and forwards to (``workers.fanout``), as it passes SIGHUP on.
    host = AirlockHost(config, role=role, control=True, reload_config=reread)
    reloads: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        task = asyncio.create_task(_reload(host), name="sighup")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(name: str) -> None:
        received.append(name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    # Callback failures from the start on (on-start too) go into the runtime file for `airlock status`.
    recorder = ErrorRecorder()
    logging.getLogger("airlock.channel").addHandler(recorder)
    runfile: RunFile | None = None
    code = 0
    try:
        try:
            await host.start()
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
                raise
            why = str(exc).rsplit(": ", 1)[-1] or os.strerror(exc.errno or 0)
            raise ConfigError(f"cannot listen on {config.listen_host}:{config.listen_port}: {why}") from None
        if role is not None:
            role.ready()
            if not role.agent_side:  # the others only answer webhooks and poll (``AirlockHost.agent_side``)
                agent, agent_name = _no_agent, f"none (worker {role.index}; the agent runs in worker 0)"
        _show_admin(host)
        runfile = _runfile(host, config, recorder) if host.agent_side else None
        if runfile is not None:
            runfile.write()
        flusher = asyncio.create_task(
            _flush_runfile(runfile) if runfile is not None else stop.wait(), name="runfile")
        orphan = asyncio.create_task(watch_parent(stop) if role is not None else stop.wait(), name="orphan")
        log.info("serving on %s with agent %s; Ctrl-C to stop", host.base_url, agent_name)
        agent_task: asyncio.Task[None] = asyncio.create_task(_run_agent(agent, host), name="agent")
        stop_task = asyncio.create_task(stop.wait(), name="stop")
        await asyncio.wait({agent_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("%s received; stopping", received[0] if received else "signal")
        elif (failure := agent_task.exception()) is not None:
            # A bug in the agent is the user's to fix: show where it happened (Airlock's own errors: one line).
            log.error("agent %s failed: %s: %s", agent_name, type(failure).__name__, failure,
                      exc_info=None if isinstance(failure, AirlockError) else failure)
            code = 1
        else:
            log.info("agent %s returned; stopping", agent_name)
        for task in (agent_task, stop_task, flusher, orphan):
            task.cancel()
        await asyncio.gather(agent_task, stop_task, flusher, orphan, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        loop.remove_signal_handler(signal.SIGHUP)
        await host.stop()
        logging.getLogger("airlock.channel").removeHandler(recorder)
        if runfile is not None:
            runfile.remove()
        log.info("airlock stopped")
    return code


async def _reload(host: AirlockHost) -> None:
    """SIGHUP: read the host settings again and apply what can change live (``AirlockHost.reload_host_config``);
    a config that does not validate is logged and changes nothing."""
    try:
        await host.reload_host_config()
    except AirlockError as exc:
        log.error("SIGHUP: host config not reloaded: %s", exc)


def _runfile(host: AirlockHost, config: HostConfig, recorder: ErrorRecorder) -> RunFile:
    return RunFile(config.home, started_info(host.base_url, config.listen_host, host.port or 0, config.home,
                                             dict(version_doc()), admin_url=host.admin_url,
                                             agent_api_url=host.agent_api_url), recorder)


def _port_free(host: str, port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError:
        return False
    return True


def _show_admin(host: AirlockHost) -> None:
    """The console's URL and, on its first start, the login token: on stderr, once, never in the log."""
    if host.admin_url is None:
        return
    if host.admin_token is not None:
        typer.echo(f"admin console on {host.admin_url}; login token (shown once, only its hash is kept): "
                   f"{host.admin_token}", err=True)
    else:
        typer.echo(f"admin console on {host.admin_url} (log in with the admin token; a new one: "
                   "airlock admin token)", err=True)


async def _flush_runfile(runfile: RunFile) -> None:
    """Rewrite the runtime file when callback errors arrived, at most once per FLUSH_INTERVAL_S."""
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        await asyncio.to_thread(runfile.flush_if_changed)


async def _no_agent(host: Any) -> None:
    """``--agent none``: nothing consumes in process; wait until the gateway stops."""
    await asyncio.Event().wait()


async def _run_agent(agent: Agent, host: Any) -> None:
    await agent(host)
