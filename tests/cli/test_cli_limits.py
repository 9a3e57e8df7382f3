"""The CLI's numbered limits: --input size, canned-response files, the runtime file's error list, the status
window for recent errors and the size of a /health answer."""

from __future__ import annotations

import http.server
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from clirun import one_line_error, run_cli, tree

from airlock.capabilities.http_policy import HttpRefused
from airlock.cli import invoke as invoke_cmd
from airlock.cli import offline, runfile, status
from airlock.errors import ConfigError, GuestTrap


def test_input_file_over_the_limit_is_refused(airlock_home: Path, tmp_path: Path) -> None:
    caps = tmp_path / "x.capabilities.json"
    caps.write_text(json.dumps({"name": "x", "version": "0.1.0", "wit_version": "0.1.0",
                                "capabilities": {"channel": {"allowed_paths": ["/webhook/x"]}}}))
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (invoke_cmd.MAX_INPUT_BYTES + 1))
    before = tree(airlock_home)
    one_line_error(run_cli(airlock_home, "invoke", str(tmp_path / "x.wasm"), "on-respond", "-c", str(caps),
                           "--input", f"@{big}"), f"larger than {invoke_cmd.MAX_INPUT_BYTES} bytes")
    assert tree(airlock_home) == before


def test_canned_file_limits(tmp_path: Path) -> None:
    path = tmp_path / "canned.json"
    path.write_text(json.dumps([{"url": "https://x/*"}] * offline.MAX_CANNED_RESPONSES))
    assert len(offline.load_canned(path)) == offline.MAX_CANNED_RESPONSES
    path.write_text(json.dumps([{"url": "https://x/*"}] * (offline.MAX_CANNED_RESPONSES + 1)))
    with pytest.raises(ConfigError, match=f"more than {offline.MAX_CANNED_RESPONSES} responses"):
        offline.load_canned(path)
    path.write_bytes(b"[" + b" " * offline.MAX_CANNED_FILE_BYTES + b"]")
    with pytest.raises(ConfigError, match=f"larger than {offline.MAX_CANNED_FILE_BYTES} bytes"):
        offline.load_canned(path)


def test_canned_matching_times_globs_and_size(tmp_path: Path) -> None:
    path = tmp_path / "canned.json"
    path.write_text(json.dumps([
        {"method": "GET", "url": "https://a.test/[REDACTED]/x?*", "times": 1, "body": "first"},
        {"url": "https://a.test/*", "status": 503, "headers": {"retry-after": "1"}},
    ]))
    egress = offline.OfflineEgress(offline.load_canned(path))
    fetch: Any = egress.fetch

    def get(url: str, method: str = "GET", limit: int = 100) -> Any:
        return fetch(method, url, [], None, max_response_bytes=limit, timeout_s=1.0)

    assert get("https://a.test/[REDACTED]/x?q=1").body == b"first"
    second = get("https://a.test/[REDACTED]/x?q=1")  # times: 1 used up; the next entry answers
    assert (second.status, dict(second.headers)) == (503, {"retry-after": "1"})
    assert get("https://a.test/[REDACTEX]/x?q=1").status == 503  # '[' is literal, not a character class
    with pytest.raises(HttpRefused, match=re.escape("no canned response for GET https://b.test/")):
        get("https://b.test/")
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"url": "*", "body": "x" * 101}]))
    sized = offline.OfflineEgress(offline.load_canned(big))
    assert sized.fetch("GET", "https://c.test/", [], None, max_response_bytes=101, timeout_s=1.0).body == b"x" * 101
    with pytest.raises(HttpRefused, match=r"max_response_bytes \(100 bytes\)"):
        sized.fetch("GET", "https://c.test/", [], None, max_response_bytes=100, timeout_s=1.0)
    assert [r.answered_by for r in egress.requests] == [0, 1, 1, None]


def test_error_recorder_keeps_the_newest_errors_cut_to_size() -> None:
    recorder = runfile.ErrorRecorder()
    logger = logging.getLogger("airlock.channel.test-recorder")
    logger.addHandler(recorder)
    logger.propagate = False
    try:
        for i in range(runfile.MAX_LAST_ERRORS + 2):
            logger.warning("[%s] %s failed: %s", "chan", "on-poll", GuestTrap("timeout", f"trap {i} " + "x" * 600))
        logger.warning("[%s] %s ready", "chan", "on-poll")  # not a failure record: ignored
    finally:
        logger.removeHandler(recorder)
    [(name, errors)] = recorder.snapshot().items()
    assert name == "chan" and len(errors) == runfile.MAX_LAST_ERRORS
    assert [re.search(r"trap (\d+)", e["message"]).group(1) for e in errors] == [  # type: ignore[union-attr]
        str(i) for i in range(2, runfile.MAX_LAST_ERRORS + 2)]
    assert all(len(e["message"]) == runfile.MAX_ERROR_CHARS and e["class"] == "timeout" for e in errors)


def test_recent_errors_fail_status_for_recent_error_s() -> None:
    gateway = {"up": True, "url": "http://x", "error": None, "stale_pid": None}

    def row(age: int) -> dict[str, Any]:
        return {"name": "c", "active": True, "status": "active", "websocket": None, "last_error_age_s": age,
                "last_error": {"callback": "on-poll", "class": "timeout", "message": "m"}}

    assert status._problems(gateway, [row(status.RECENT_ERROR_S)]) != []
    assert status._problems(gateway, [row(status.RECENT_ERROR_S + 1)]) == []


def test_health_answer_over_the_limit(airlock_home: Path) -> None:
    class Big(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"channels": {}, "pad": "' + b"x" * status.MAX_HEALTH_BYTES + b'"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Big)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = run_cli(airlock_home, "status", "--json", "--url", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 2
    assert f"more than {status.MAX_HEALTH_BYTES} bytes" in json.loads(proc.stdout)["gateway"]["error"]
