"""Shared pieces of the benchmark suite: paths, statistics, the machine description, RSS, channel set-up."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
BUILT_CHANNELS = REPO / "build" / "channels"
BENCH_GUEST = REPO / "build" / "bench" / "telegram-min.wasm"
BENCH_GUEST_CAPS = BENCH / "guests" / "telegram-min" / "telegram-min.capabilities.json"

MIB = 1024 * 1024
UNLIMITED_EMITS = {"messages_per_minute": 10**8, "messages_per_hour": 10**9}
"""A benchmark measures throughput, not the emit rate limiter (which would drop messages past its window)."""


@dataclass(frozen=True)
class Summary:
    """Latency summary of one variant: p50/p99 in microseconds, calls/s = calls / summed call time."""

    n: int
    p50_us: float
    p99_us: float
    per_s: float

    def as_dict(self) -> dict[str, float]:
        return {"n": self.n, "p50_us": round(self.p50_us, 1), "p99_us": round(self.p99_us, 1),
                "per_s": round(self.per_s, 1)}


def percentile(sorted_samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of already sorted samples."""
    if not sorted_samples:
        raise ValueError("no samples")
    idx = min(len(sorted_samples) - 1, max(0, round(q * len(sorted_samples)) - 1))
    return sorted_samples[idx]


def summarize(samples: list[float]) -> Summary:
    """Summary of per-call durations in seconds."""
    s = sorted(samples)
    return Summary(n=len(s), p50_us=percentile(s, 0.5) * 1e6, p99_us=percentile(s, 0.99) * 1e6,
                   per_s=len(s) / sum(s))


def rss_mb() -> float:
    """Resident set size of this process in MiB (from /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was when the run started."""
    load1, load5, _ = os.getloadavg()
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count() or 0, "memory_gib": round(_mem_total_gib(), 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "wasmtime_py": _version("wasmtime"), "aiohttp": _version("aiohttp"),
        "load_average_at_start": [round(load1, 2), round(load5, 2)],
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def install(channels_dir: Path, name: str, wasm: Path, caps: dict[str, Any]) -> None:
    """Copy ``wasm`` and write ``caps`` (its ``name`` set to ``name``) into ``channels_dir``."""
    channels_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(wasm, channels_dir / f"{name}.wasm")
    data = json.loads(json.dumps(caps))
    data["name"] = name
    (channels_dir / f"{name}.capabilities.json").write_text(json.dumps(data, indent=2))


def bench_guest_caps(path: str = "/webhook/telegram-min") -> dict[str, Any]:
    caps: dict[str, Any] = json.loads(BENCH_GUEST_CAPS.read_text())
    caps["capabilities"]["channel"]["allowed_paths"] = [path]
    return caps


def telegram_caps() -> dict[str, Any]:
    """The bundled Telegram channel's capabilities with webhooks on, polling off, open DMs, no emit cap."""
    caps: dict[str, Any] = json.loads((BUILT_CHANNELS / "telegram.capabilities.json").read_text())
    caps["config"].update({"webhook_enabled": True, "polling_enabled": False, "dm_policy": "open"})
    caps["capabilities"]["channel"]["emit_rate_limit"] = dict(UNLIMITED_EMITS)
    return caps


def wat_guest(out_dir: Path, name: str = "minimal") -> Path:
    """Build the hand-written WAT guest of the tests (tests/guests/watguest.py) into ``out_dir``."""
    sys.path.insert(0, str(REPO / "tests" / "guests"))
    import watguest

    return watguest.build_component(out_dir, name)


def minimal_caps(name: str = "minimal") -> dict[str, Any]:
    """Capabilities for the hand-written WAT guest (tests/guests/watguest.py)."""
    return {"name": name, "version": "0.1.0", "wit_version": "0.1.0", "config": {"dm_policy": "open"},
            "capabilities": {"channel": {"allowed_paths": [f"/webhook/{name}"],
                                         "emit_rate_limit": dict(UNLIMITED_EMITS)}}}
