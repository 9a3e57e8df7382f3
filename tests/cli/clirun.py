"""Run the real ``airlock`` command in a subprocess (``python -m airlock.cli``) with this checkout's code.

``run_cli(home, *args)`` returns the CompletedProcess; ``one_line_error(proc, ...)`` checks the CLI's error
convention: exit status 1, exactly one ``error: ...`` line on stderr, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / "host"
MASTER_KEY = "5f" * 32


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "_AIRLOCK"))}
    env.update(AIRLOCK_HOME=str(home), AIRLOCK_MASTER_KEY=MASTER_KEY, COLUMNS="200", NO_COLOR="1",
               PYTHONPATH=os.pathsep.join([str(HOST), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, input: str | None = None, timeout: float = 120,
            cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airlock.cli", *args], env=cli_env(home, **env), input=input,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or home.parent)


def one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in proc.stdout + proc.stderr
    for fragment in fragments:
        assert fragment in err, err
    return err


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its content, the compile cache aside (to show that a refused command
    changed nothing)."""
    if not path.exists():
        return {}
    files = (p for p in sorted(path.rglob("*")) if p.is_file() and p.relative_to(path).parts[0] != "cache")
    return {str(p.relative_to(path)): p.read_bytes() for p in files}
