"""Admin authentication through the real listener: the hashed token file, issuing a new token while the host
runs, console sessions (cookie flags, CSRF, origin), the login limit, and the admin port rule."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import aiohttp
import pytest
from admin_helpers import admin_host, install_wat
from conftest import InstallFn

from airlock.admin import issue_token
from airlock.admin.auth import COOKIE, LOGIN_FAILURES_PER_MINUTE, TOKEN_FILENAME, TokenFile
from airlock.errors import ConfigError
from airlock.host import AirlockHost
from airlock.host_config import HostConfig

pytestmark = pytest.mark.e2e

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def browser_session() -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1 (aiohttp's default jar refuses cookies of IP hosts)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(session: aiohttp.ClientSession, base: str, token: str) -> aiohttp.ClientResponse:
    """Load the login page (its form token and cookie), then post the admin token."""
    async with session.get(f"{base}/login") as page:
        form_csrf = _CSRF.search(await page.text())
    assert form_csrf is not None
    return await session.post(f"{base}/login", data={"csrf": form_csrf.group(1), "token": token},
                              allow_redirects=False)


async def console_csrf(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/channels") as r:
        assert r.status == 200
        found = _CSRF.search(await r.text())
    assert found is not None
    return found.group(1)


async def test_token_made_once_stored_hashed_and_replaced_by_issue_token(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    async with admin_host(airlock_home) as api:
        path = airlock_home / TOKEN_FILENAME
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        stored = path.read_text()
        assert api.token not in stored and json.loads(stored)["sha256"] and api.token.startswith("alk_")
        assert (await api.get("/api/channels"))[0] == 200
        async with browser_session() as browser:
            assert (await login(browser, api.base, api.token)).status == 303
            assert (await browser.get(f"{api.base}/channels", allow_redirects=False)).status == 200
            new = issue_token(airlock_home)  # `airlock admin token`, while the host runs
            assert new != api.token
            assert (await api.get("/api/channels"))[0] == 401
            assert (await api.get("/api/channels", token=new))[0] == 200
            # The browser's session was opened with the old token: it is over.
            assert (await browser.get(f"{api.base}/channels", allow_redirects=False)).status == 303
    # A second start keeps the stored token and shows none.
    config = HostConfig.build(home=airlock_home, listen_port=0, admin=True, admin_port=0)
    async with AirlockHost(config) as host:
        assert host.admin_token is None and host.admin_url is not None
        assert TokenFile(airlock_home).check(new)


async def test_login_cookie_flags_csrf_and_origin(airlock_home: Path, install_channel: InstallFn,
                                                  wat_dir: Path) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    async with admin_host(airlock_home) as api, browser_session() as browser:
        assert (await login(browser, api.base, "alk_not-the-token")).status == 401
        response = await login(browser, api.base, api.token)
        assert response.status == 303 and response.headers["Location"] == "/channels"
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        csrf = await console_csrf(browser, api.base)
        disable = f"{api.base}/channels/alpha/disable"
        # A form without the CSRF token, with a wrong one, or from another origin changes nothing.
        for data, headers in (({}, {}), ({"csrf": "forged"}, {}), ({"csrf": csrf}, {"Origin": "http://evil.test"})):
            async with browser.post(disable, data=data, headers=headers, allow_redirects=False) as r:
                assert r.status == 403
        assert api.host.manager.slots["alpha"].active
        # The JSON API with the session cookie takes the token in a header instead.
        async with browser.post(f"{api.base}/api/channels/alpha/disable") as r:
            assert r.status == 403
        async with browser.post(disable, data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/channels"
        assert api.host.manager.slots["alpha"].disabled
        async with browser.post(f"{api.base}/api/channels/alpha/enable", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200 and (await r.json())["active"] is True
        async with browser.post(f"{api.base}/logout", data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303
        async with browser.get(f"{api.base}/api/channels") as r:
            assert r.status == 401


async def test_login_form_needs_its_own_token(airlock_home: Path, install_channel: InstallFn, wat_dir: Path) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    async with admin_host(airlock_home) as api, browser_session() as browser:
        # Posting the right admin token without the login form's one-time token (a forged login) is refused.
        async with browser.post(f"{api.base}/login", data={"token": api.token}, allow_redirects=False) as r:
            assert r.status == 403
        async with browser.get(f"{api.base}/api/channels") as r:
            assert r.status == 401


async def test_failed_logins_are_limited(airlock_home: Path, install_channel: InstallFn, wat_dir: Path) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    async with admin_host(airlock_home) as api, browser_session() as browser:
        for _ in range(LOGIN_FAILURES_PER_MINUTE - 1):
            assert (await login(browser, api.base, "alk_guess")).status == 401
        assert (await api.get("/api/channels", token="alk_guess"))[0] == 401  # API guesses count too
        assert (await login(browser, api.base, api.token)).status == 429
        assert (await api.get("/api/channels"))[0] == 429


def test_admin_port_may_not_be_the_webhook_port(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="admin_port"):
        HostConfig.build(home=tmp_path, listen_port=8080, admin=True, admin_port=8080)
    assert HostConfig.build(home=tmp_path, listen_port=0, admin=True, admin_port=0).admin_port == 0
    assert HostConfig.build(home=tmp_path).admin_port == 8788 and HostConfig.build(home=tmp_path).admin is False


async def test_console_forms_change_state_and_report_errors(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    async with admin_host(airlock_home) as api, browser_session() as browser:
        assert (await login(browser, api.base, api.token)).status == 303
        csrf = await console_csrf(browser, api.base)
        store = api.host.pairing
        code_a, _ = store.upsert_request("alpha", "user-a", "{}")
        code_b, _ = store.upsert_request("alpha", "user-b", "{}")

        async def form(path: str, **data: str) -> str:
            async with browser.post(f"{api.base}{path}", data={"csrf": csrf, **data}) as r:
                assert r.status == 200  # followed the 303 back to the page
                return await r.text()

        page = await form("/pairing/approve", channel="alpha", code=code_a)  # the typed-code form
        assert 'class="flash ok"' in page and "approved user-a on alpha" in page
        page = await form("/pairing/alpha/deny", code=code_b)
        assert "denied user-b on alpha" in page and store.pending("alpha") == []
        page = await form("/pairing/approve", channel="alpha", code="NOPE2345")
        assert 'class="flash error"' in page and "unknown or expired pairing code" in page
        page = await form("/pairing/alpha/revoke", external_id="user-a")
        assert "revoked user-a on alpha" in page and store.resolve_identity("alpha", "user-a") is None
        page = await form("/secrets", name="form_secret", value="a-value-from-the-form")
        assert "stored secret form_secret" in page and "a-value-from-the-form" not in page
        assert api.host.secrets.get("form_secret") == "a-value-from-the-form"
        page = await form("/secrets", name="Bad Name", value="x")
        assert 'class="flash error"' in page and "secret names must match" in page
        page = await form("/secrets/form_secret/remove")
        assert "removed secret form_secret" in page and not api.host.secrets.exists("form_secret")
        # Guest-controlled text is escaped: a sender id with markup shows as text.
        store.upsert_request("alpha", "<script>alert(1)</script>", '{"name": "<b>x</b>"}')
        async with browser.get(f"{api.base}/pairing") as r:
            html = await r.text()
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<b>x</b>" not in html
