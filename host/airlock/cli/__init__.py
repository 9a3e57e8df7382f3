"""The ``airlock`` command line, one module per command group.

    airlock [--home PATH] [--config PATH] [--version] ...   (app.py; host settings: airlock.host_settings)
    airlock serve [--port N] [--host H] [--agent M:C] [--upstream HOST=URL ...] [--lenient]
                                                             (serve.py; keeps HOME/run/gateway.json: runfile.py)
    airlock channels install|list|check ...                  (channels.py, channels_install.py)
    airlock channels enable|disable|upgrade|rollback|remove|versions NAME   (channels_lifecycle.py)
    airlock channels config show|set|unset NAME ...          (channels_config.py)
    airlock package build|sign|verify, keys generate, trust add|list|rm
                                                             (packages.py, package_source.py; airlock.packages)
    airlock secrets set|list|rm ...                          (secrets.py)
    airlock pairing list|approve ...                         (pairing.py)
    airlock agents add|list|rm ...                           (agents.py)
    airlock messages list|show|retry ...                     (messages.py)
    airlock inspect WASM                                     (inspect.py)
    airlock invoke WASM|CHANNEL CALLBACK [--after-start] [--workspace K=V] [--input JSON|@FILE] [--offline F]
                                                             (invoke.py, invoke_input.py, offline.py)
    airlock status [--url URL]                               (status.py)
    airlock admin token                                      (admin.py; the console itself: airlock.admin)
    airlock doctor [--port N] [--clock-url URL]              (doctor.py, doctor_checks.py)
    airlock new python|rust NAME [--dir PATH]                (new.py, templates/)
    airlock version                                          (about.py)
    airlock config show                                      (hostconfig.py; sources: airlock.host_settings)

Every command takes ``-h``; every list or show command takes ``--json``. The data directory is ``--home``,
else ``$AIRLOCK_HOME``, else ``~/.airlock``. The root app, one-line errors and logging are in ``app.py``;
tables and ``--json`` in ``output.py``; the inspect/invoke documents in ``report.py``. An expected failure
prints one line, ``error: ...``, on stderr and exits with status 1; a check that finds a problem (status,
doctor, a failed invoke) exits with status 2.
"""

from __future__ import annotations

import sys

import typer

from ..errors import AirlockError

# Importing a command module registers its commands on ``app``; ``--help`` lists them in this order.
# isort: off
from . import serve  # noqa: F401
from . import inspect, invoke  # noqa: F401
from . import channels, channels_install, channels_lifecycle, channels_config, secrets, pairing  # noqa: F401
from . import packages  # noqa: F401
from . import agents, messages  # noqa: F401
from . import status, doctor  # noqa: F401
from . import admin  # noqa: F401
from . import new  # noqa: F401
from . import about  # noqa: F401
from . import route  # noqa: F401
from . import hostconfig  # noqa: F401
# isort: on
from .app import QUIETABLE as _QUIETABLE  # noqa: F401  (tests restore these loggers after each run)
from .app import app, one_line

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point (``airlock``)."""
    try:
        app(prog_name="airlock")
    except AirlockError as exc:  # pragma: no cover - the commands already catch these
        typer.echo(f"error: {one_line(str(exc))}", err=True)
        sys.exit(1)
