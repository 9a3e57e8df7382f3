"""The web console in a real headless Chromium (Debian's package, driven by Playwright), against a real host:
the Python Telegram guest polling the fake Bot API, the Rust template channel and a WAT channel.

Checks: the console refuses a wrong token; its channel list matches the API's channels document and
``airlock channels list --json``; a pairing code shows up by itself (live refresh) and approving it lets the
sender's next message through to the agent; disabling a channel makes its webhook answer 404 while the others
keep answering. A screenshot of every page
goes to ``test-output/console/`` (and, with ``AIRLOCK_DOCS_SCREENSHOTS=1``, the channels page to
``docs/console.png`` for the README).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import Api, admin_host, install_wat, post_webhook
from conftest import BUILT_CHANNELS, REPO, InstallFn
from fake_telegram import FakeTelegram
from playwright.async_api import Browser, Page, async_playwright, expect

from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("AIRLOCK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "test-output" / "console"
DOCS_SHOT = REPO / "docs" / "console.png"
USER = 5151
REFRESH_WAIT_MS = 12_000
"""Longest wait for something the page shows by refreshing itself (console.REFRESH_MS is 3 s)."""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium)")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(bot_username="airlock_test_bot") as f:
        yield f


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def rows(page: Page) -> list[dict[str, Any]]:
    """The channels table as the operator sees it."""
    out = []
    for row in await page.locator("#channels tbody tr[data-channel]").all():
        out.append({"name": await row.get_attribute("data-channel"),
                    "version": (await row.locator("td.version").inner_text()).strip(),
                    "world": (await row.locator("td.world").inner_text()).strip(),
                    "publisher": (await row.locator("td.publisher").inner_text()).strip(),
                    "state": await row.get_attribute("data-status")})
    return out


def api_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": c["name"], "version": c["version"], "world": c["world"],
             "publisher": c["provenance"]["publisher"],
             "state": "disabled" if c["disabled"] else "active" if c["active"] else "inactive"}
            for c in doc["channels"]]


async def test_console_login_channels_pairing_and_disable(
    browser: Browser, fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_channel(BUILT_CHANNELS / "telegram.wasm", BUILT_CHANNELS / "telegram.capabilities.json",
                    bot_username="airlock_test_bot", polling_enabled=True, dm_policy="pairing", long_poll_timeout_s=1)
    install_channel(BUILT_CHANNELS / "template-rust.wasm", BUILT_CHANNELS / "template-rust.capabilities.json",
                    dm_policy="open")
    install_wat(install_channel, wat_dir, "alpha")
    SecretStore.open(airlock_home).set("telegram_bot_token", fake.token)
    async with admin_host(airlock_home, upstream_overrides={"api.telegram.org": fake.base_url},
                          min_poll_interval_override_ms=50) as api:
        page = await (await browser.new_context(viewport={"width": 1280, "height": 720})).new_page()
        await login_is_refused_then_accepted(page, api)
        await channel_list_matches_the_api(page, api)
        await approving_a_code_delivers_the_next_message(page, api, fake)
        await secrets_and_calls_pages(page, api, fake.token)
        await disabling_a_channel_unroutes_only_it(page, api)


async def login_is_refused_then_accepted(page: Page, api: Api) -> None:
    await page.goto(f"{api.base}/channels")
    await expect(page).to_have_url(f"{api.base}/login")
    await shot(page, "login")
    await page.fill("#token", "alk_this-is-not-the-token")
    await page.click("#login-form button")
    await expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    await page.goto(f"{api.base}/channels")
    await expect(page).to_have_url(f"{api.base}/login")  # no session was opened
    await page.fill("#token", api.token)
    await page.click("#login-form button")
    await expect(page).to_have_url(f"{api.base}/channels")
    cookies = await page.context.cookies()
    session = next(c for c in cookies if c["name"] == "airlock_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"


def cli_rows(home: Path) -> list[dict[str, Any]]:
    """``airlock channels list --json`` (a real CLI process on the same home) in the console's terms."""
    env = {**os.environ, "AIRLOCK_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "host"), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-m", "airlock.cli", "channels", "list", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [{"name": c["name"], "version": c["version"], "world": c["world"],
             "publisher": c["provenance"]["publisher"], "state": c["state"]}
            for c in json.loads(done.stdout)]


async def channel_list_matches_the_api(page: Page, api: Api) -> None:
    await expect(page.locator("#channels tbody tr[data-channel]")).to_have_count(3)
    status, doc = await api.get("/api/channels")
    assert status == 200
    shown = await rows(page)
    assert shown == api_rows(doc) == await asyncio.to_thread(cli_rows, api.host.config.home)
    assert [r["name"] for r in shown] == ["alpha", "telegram", "template-rust"]
    assert all(r["state"] == "active" for r in shown)
    await shot(page, "channels")
    if os.environ.get("AIRLOCK_DOCS_SCREENSHOTS") == "1":
        DOCS_SHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(DOCS_SHOT))


async def approving_a_code_delivers_the_next_message(page: Page, api: Api, fake: FakeTelegram) -> None:
    await page.click("header nav a[href='/pairing']")
    await expect(page.locator(".pairing-channel[data-channel='telegram'] .pending tr[data-code]")).to_have_count(0)
    fake.push_message("hello?", chat_id=USER, user_id=USER, first_name="Grace", username="grace")
    sent = await fake.wait_for_sent(1, timeout=15)
    [pending] = api.host.pairing.pending("telegram")
    assert pending.code in sent[0]["text"]
    # The open page shows the new request without a reload.
    row = page.locator(f".pairing-channel[data-channel='telegram'] tr[data-code='{pending.code}']")
    await expect(row).to_be_visible(timeout=REFRESH_WAIT_MS)
    await shot(page, "pairing")
    await row.get_by_role("button", name="Approve").click()
    await expect(page.locator(".flash.ok")).to_contain_text(f"approved {USER} on telegram")
    paired = page.locator(f".pairing-channel[data-channel='telegram'] .paired tr[data-sender='{USER}']")
    await expect(paired).to_be_visible()
    assert api.host.bus.qsize() == 0  # the first message never reached the agent
    fake.push_message("now may I?", chat_id=USER, user_id=USER, first_name="Grace", username="grace")
    msg = await asyncio.wait_for(api.host.next_message(), 15)
    assert (msg.channel, msg.content, msg.user_id) == ("telegram", "now may I?", str(USER))
    assert (await api.host.respond(msg, "yes you may")).ok
    assert (await fake.wait_for_sent(2, timeout=10))[1]["text"] == "yes you may"


async def secrets_and_calls_pages(page: Page, api: Api, token_value: str) -> None:
    await page.click("header nav a[href='/secrets']")
    await expect(page.locator("#secrets tr[data-secret='telegram_bot_token']")).to_have_attribute("data-set", "yes")
    assert token_value not in await page.content()
    await shot(page, "secrets")
    await page.goto(f"{api.base}/calls?channel=telegram")
    # Successes are recorded while the page is open: the channel's next polls show up by themselves.
    await expect(page.locator("#calls tr.call").first).to_be_visible(timeout=REFRESH_WAIT_MS)
    assert token_value not in await page.content()
    await shot(page, "calls")


async def disabling_a_channel_unroutes_only_it(page: Page, api: Api) -> None:
    host = api.host
    secret = host.secrets.get("template_rust_webhook_secret") or ""
    template = {"X-Airlock-Webhook-Secret": secret, "Content-Type": "application/json"}
    body = b'{"user": "u1", "text": "still here"}'
    assert await post_webhook(host, "alpha") == 200
    await page.click("header nav a[href='/channels']")
    await page.locator("tr[data-channel='alpha']").get_by_role("button", name="Disable").click()
    await expect(page.locator(".flash.ok")).to_contain_text("alpha disabled")
    await expect(page.locator("tr[data-channel='alpha']")).to_have_attribute("data-status", "disabled")
    assert await post_webhook(host, "alpha") == 404
    assert await post_webhook(host, "template-rust", body, template) == 200
    assert host.manager.slots["telegram"].active
    await shot(page, "channels-disabled")
    shown = await rows(page)
    assert shown == api_rows((await api.get("/api/channels"))[1])
    await page.locator("tr[data-channel='alpha']").get_by_role("button", name="Enable").click()
    await expect(page.locator("tr[data-channel='alpha']")).to_have_attribute("data-status", "active")
    assert await post_webhook(host, "alpha") == 200
