"""The console in a real browser: Debian's headless Chromium driven by Playwright against
the app served by uvicorn, on real PostgreSQL, Redis and bare git repositories.

Flows: an operator logs in, sees the fleet, opens an appliance, presses Dry
run and watches the run's event log update without a reload while events
are written the way the worker writes them (``engine.db.runs``); the operator
opens a pull request with its plan preview, approves one and merges another.
A customer lands on their own tenant's page, sees no Sync button, and gets
the 403 page for an operator's URL and the 404 page for another tenant's. A
form posted without its CSRF token is refused. Each step leaves a screenshot
under ``HEARTH_UI_SCREENSHOTS`` (default: the test's temporary directory).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from api.app import create_app
from engine.db import runs as run_db
from engine.db.pool import create_pool
from engine.settings import Settings
from tests.api.conftest import PASSWORD, World
from tests.services import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def server(settings: Settings, world: World) -> Iterator[str]:
    port = free_port()
    app = create_app(settings, migrate=False, pool_size=4)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not served.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    # localhost: Chromium keeps Secure cookies on it without TLS (a secure context)
    yield f"http://localhost:{port}"
    served.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                    args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HEARTH_UI_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _login(browser: Browser, server: str, who: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{server}/ui/")
    await expect(page.get_by_role("heading", name="Log in to Hearth")).to_be_visible()
    await page.get_by_label("Username").fill(who)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    return page


async def _write_events(world: World, run_id: int) -> None:
    """What the worker does while a run goes on: start it, append events, finish it."""
    pool = await create_pool(world.settings.database_url, min_size=1, max_size=1)
    try:
        conn = await pool.acquire()
        await run_db.start_run(conn, run_id, worker_id="browser-test",
                               revision=world.heads["acme"], plan={},
                               appliance_ids=[uuid.UUID(world.appliance_ids["acme/front-office"])])
        for seq, task in enumerate(("hearth_users : accounts", "hearth_samba : shares")):
            await asyncio.sleep(0.7)
            await run_db.append_events(conn, run_id, [(seq, "front-office", "runner_on_ok", {
                "event": "runner_on_ok", "host": "front-office", "task": task})])
        await asyncio.sleep(0.7)
        await run_db.finish_run(conn, run_id, status="succeeded",
                                results={"front-office": {"ok": 2, "changed": 0, "failed": 0}},
                                changed=0, failed=0)
        await pool.release(conn)
    finally:
        await pool.close()


async def test_operator_dry_run_streams_and_merges(browser: Browser, server: str,
                                                   world: World, shots: Path) -> None:
    page = await _login(browser, server, "operator")
    await expect(page.get_by_role("heading", name="Fleet")).to_be_visible()
    fleet = page.get_by_role("table")
    await expect(fleet.get_by_role("link", name="front-office")).to_be_visible()
    await expect(fleet.get_by_text("NoHeartbeat").first).to_be_visible()
    await expect(page.get_by_text("globex")).to_have_count(0)
    await page.screenshot(path=shots / "fleet.png", full_page=True)

    await fleet.get_by_role("link", name="front-office").click()
    await expect(page.get_by_role("heading", name="front-office", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="Live diff")).to_be_visible()
    await page.screenshot(path=shots / "appliance.png", full_page=True)
    await page.get_by_role("button", name="Dry run").click()
    await expect(page.get_by_role("heading", name="(dry run)")).to_be_visible()
    await expect(page.locator("#run-status")).to_have_text("queued")
    run_id = int(page.url.rsplit("/", 1)[1])
    # the page is not reloaded from here on: the log and the status change in place
    await page.evaluate("window.__same_page = true")
    await _write_events(world, run_id)
    log = page.locator("#run-log li")
    await expect(log).to_have_count(2, timeout=10_000)
    await expect(log.nth(1)).to_contain_text("hearth_samba : shares")
    await expect(page.locator("#run-status")).to_have_text("succeeded", timeout=10_000)
    assert await page.evaluate("window.__same_page") is True
    await page.screenshot(path=shots / "run.png", full_page=True)

    await page.goto(f"{server}/ui/tenants/acme/pulls")
    await expect(page.get_by_role("link", name="ready change")).to_be_visible()
    await page.get_by_role("link", name="to-review change").click()
    await expect(page.get_by_role("heading", name="Plan preview")).to_be_visible()
    # the operator wrote it: the tenant's policy (the service, not the console) says no
    await page.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.get_by_role("heading", name="Not possible now")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text(
        "authors may not approve their own pull request")

    await page.goto(f"{server}/ui/tenants/acme/pulls/1")
    await expect(page.get_by_text("1 of 1 approvals")).to_be_visible()
    await page.screenshot(path=shots / "pull.png", full_page=True)
    await page.get_by_role("button", name="Merge").click()
    await expect(page.locator(".summary .badge").first).to_have_text("merged")
    await expect(page.get_by_role("button", name="Revert")).to_be_visible()

    await page.goto(f"{server}/ui/tenants/acme/audit")
    await expect(page.get_by_role("region", name="Changes")).to_contain_text(
        "pull request #1 ready change")
    await page.screenshot(path=shots / "audit.png", full_page=True)

    refused = await page.request.post(
        f"{server}/ui/appliances/{world.appliance_ids['acme/front-office']}/sync",
        form={"dry_run": "true"}, max_redirects=0)
    assert refused.status == 403


async def test_customer_sees_only_their_own(browser: Browser, server: str, world: World,
                                            shots: Path) -> None:
    page = await _login(browser, server, "customer")
    await expect(page.get_by_role("heading", name="Acme")).to_be_visible()
    await expect(page.get_by_role("heading", name="Your servers")).to_be_visible()
    await expect(page.get_by_text("Not connected yet").first).to_be_visible()
    await expect(page.get_by_role("link", name="Audit")).to_have_count(0)
    await expect(page.get_by_role("link", name="Fleet")).to_have_count(0)
    await page.screenshot(path=shots / "customer.png", full_page=True)

    await page.get_by_role("link", name="front-office").click()
    await expect(page.get_by_text("Working normally").or_(
        page.get_by_text("Not connected yet"))).to_be_visible()
    await expect(page.get_by_role("button", name="Sync")).to_have_count(0)
    await expect(page.get_by_role("button", name="Dry run")).to_have_count(0)

    await page.goto(f"{server}/ui/tenants/acme/audit")
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    response = await page.goto(f"{server}/ui/appliances/{world.appliance_ids['globex/front-office']}")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    await expect(page.get_by_text("globex")).to_have_count(0)

    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["hearth_session"]
    assert (session["secure"], session["httpOnly"], session["sameSite"], session["path"]) == (
        True, True, "Strict", "/ui")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in to Hearth")).to_be_visible()
