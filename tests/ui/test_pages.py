"""The console's pages and forms x every role, against outcomes written out by hand.

The console has no rules of its own (``api.ui.web``): each page names an API
permission and the API's guard decides. These expectations are literal, not
read from ``api.auth.PERMISSIONS``, so a wrong entry or a page under the wrong
permission fails here. Outcomes: 200 (or 303 for a form that worked), 303 to
the login page for anonymous visitors, 403 for a role the rule does not list,
404 for a tenant the person has no role in (the same page as a path that does
not exist). Then what pages show (a customer's fleet and appliance page), the
session cookie and CSRF rules, and the HTML security headers.
"""

from __future__ import annotations

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.api.conftest import World
from tests.ui.conftest import csrf_of, login

WHO = ["admin", "operator", "customer", "auditor", "other-operator", "anonymous"]

PAGES: dict[str, dict[str, int]] = {
    # page: who -> status (anonymous: 303 to the login page)
    "/ui/fleet": dict(admin=200, operator=200, customer=200, auditor=200,
                      **{"other-operator": 200}, anonymous=303),
    "/ui/appliances/{acme}": dict(admin=200, operator=200, customer=200, auditor=200,
                                  **{"other-operator": 404}, anonymous=303),
    "/ui/runs/{run}": dict(admin=200, operator=200, customer=403, auditor=200,
                           **{"other-operator": 404}, anonymous=303),
    "/ui/runs/{run}/events": dict(admin=200, operator=200, customer=403, auditor=200,
                                  **{"other-operator": 404}, anonymous=303),
    "/ui/tenants/acme": dict(admin=200, operator=200, customer=200, auditor=200,
                             **{"other-operator": 404}, anonymous=303),
    "/ui/tenants/acme/pulls": dict(admin=200, operator=200, customer=200, auditor=200,
                                   **{"other-operator": 404}, anonymous=303),
    "/ui/tenants/acme/pulls/1": dict(admin=200, operator=200, customer=200, auditor=200,
                                     **{"other-operator": 404}, anonymous=303),
    "/ui/tenants/acme/history": dict(admin=200, operator=200, customer=200, auditor=200,
                                     **{"other-operator": 404}, anonymous=303),
    "/ui/tenants/acme/audit": dict(admin=200, operator=200, customer=403, auditor=200,
                                   **{"other-operator": 404}, anonymous=303),
    "/ui/tenants/acme/audit.jsonl": dict(admin=200, operator=200, customer=403, auditor=200,
                                         **{"other-operator": 404}, anonymous=303),
    "/ui/tenants/acme/support": dict(admin=200, operator=200, customer=200, auditor=200,
                                     **{"other-operator": 404}, anonymous=303),
    "/ui/tokens": dict(admin=200, operator=200, customer=200, auditor=200,
                       **{"other-operator": 200}, anonymous=303),
    "/ui/tenants/nosuch": dict(admin=404, operator=404, customer=404, auditor=404,
                               **{"other-operator": 404}, anonymous=303),
    "/ui/no/such/page": dict(admin=404, operator=404, customer=404, auditor=404,
                             **{"other-operator": 404}, anonymous=404),
}

FORMS: dict[str, dict[str, int]] = {
    # form post: who -> status (303: done, then a redirect to the result)
    "/ui/appliances/{acme}/sync": dict(admin=303, operator=303, customer=403, auditor=403,
                                       **{"other-operator": 404}),
    "/ui/tenants/acme/pulls/3/reviews": dict(admin=303, operator=303, customer=403,
                                             auditor=403, **{"other-operator": 404}),
    "/ui/tenants/acme/pulls/2/close": dict(admin=303, operator=303, customer=403, auditor=403,
                                           **{"other-operator": 404}),
}
FORM_DATA = {"/ui/appliances/{acme}/sync": {"dry_run": "true"},
             "/ui/tenants/acme/pulls/3/reviews": {"event": "comment", "body": "looks fine"},
             "/ui/tenants/acme/pulls/2/close": {}}


def _url(world: World, template: str) -> str:
    return template.format(acme=world.appliance_ids["acme/front-office"],
                           run=world.run_ids["acme"])


@pytest.mark.parametrize("who", WHO)
async def test_pages_by_role(ui: AsyncTestClient, world: World, who: str) -> None:
    if who != "anonymous":
        await login(ui, who)
    got = {}
    for template in PAGES:
        response = await ui.get(_url(world, template), follow_redirects=False)
        got[template] = response.status_code
        if response.status_code == 303:
            assert response.headers["location"].startswith("/ui/login?next=%2Fui%2F"), template
    assert got == {template: outcomes[who] for template, outcomes in PAGES.items()}


@pytest.mark.parametrize("who", ["admin", "operator", "customer", "auditor", "other-operator"])
async def test_forms_by_role(ui: AsyncTestClient, world: World, who: str) -> None:
    token = await login(ui, who)
    got = {}
    for template, data in FORM_DATA.items():
        response = await ui.post(_url(world, template), data={**data, "_csrf_token": token},
                                 follow_redirects=False)
        got[template] = response.status_code
    assert got == {template: outcomes[who] for template, outcomes in FORMS.items()}


async def test_anonymous_form_post_goes_nowhere(ui: AsyncTestClient, world: World) -> None:
    page = await ui.get("/ui/login")
    response = await ui.post(_url(world, "/ui/appliances/{acme}/sync"),
                             data={"dry_run": "true", "_csrf_token": csrf_of(page.text)},
                             follow_redirects=False)
    assert response.status_code == 401
    assert "Please log in" in response.text


async def _runs(world: World) -> int:
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM reconcile_runs")
    finally:
        await conn.close()


async def test_form_without_csrf_token_is_refused_and_changes_nothing(
        ui: AsyncTestClient, world: World) -> None:
    token = await login(ui, "operator")
    before = await _runs(world)
    url = _url(world, "/ui/appliances/{acme}/sync")
    missing = await ui.post(url, data={"dry_run": "true"}, follow_redirects=False)
    wrong = await ui.post(url, data={"dry_run": "true", "_csrf_token": token[:-4] + "0000"},
                          follow_redirects=False)
    assert (missing.status_code, wrong.status_code) == (403, 403)
    assert "<h1>Not allowed</h1>" in missing.text
    assert await _runs(world) == before
    done = await ui.post(url, data={"dry_run": "true", "_csrf_token": token},
                         follow_redirects=False)
    assert done.status_code == 303
    assert await _runs(world) == before + 1


async def test_login_needs_its_csrf_token(ui: AsyncTestClient) -> None:
    await ui.get("/ui/login")
    response = await ui.post("/ui/login", data={"username": "operator", "password": "x"},
                             follow_redirects=False)
    assert response.status_code == 403


async def test_cookie_flags_and_html_headers(ui: AsyncTestClient) -> None:
    page = await ui.get("/ui/login")
    csrf_cookie = page.headers["set-cookie"]
    assert "hearth_csrf=" in csrf_cookie
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/ui"):
        assert flag.lower() in csrf_cookie.lower(), flag
    assert page.headers["content-security-policy"] == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    response = await ui.post("/ui/login", data={
        "username": "operator", "password": "correct-horse-battery-staple",
        "_csrf_token": csrf_of(page.text), "next": "/ui/fleet"}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/ui/fleet")
    session = response.headers["set-cookie"]
    assert session.startswith("hearth_session=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"):
        assert flag.lower() in session.lower(), flag


async def test_wrong_password_shows_the_form_again(ui: AsyncTestClient) -> None:
    page = await ui.get("/ui/login")
    response = await ui.post("/ui/login", data={
        "username": "operator", "password": "wrong", "_csrf_token": csrf_of(page.text)},
        follow_redirects=False)
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert "hearth_session" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("target", ["https://evil.example/x", "//evil.example/x", "/api/v1/x",
                                    "/ui\\..\\evil"])
async def test_login_goes_only_to_console_pages(ui: AsyncTestClient, target: str) -> None:
    page = await ui.get("/ui/login")
    response = await ui.post("/ui/login", data={
        "username": "operator", "password": "correct-horse-battery-staple",
        "_csrf_token": csrf_of(page.text), "next": target}, follow_redirects=False)
    assert response.headers["location"] == "/ui/"


async def test_session_cookie_is_not_an_api_credential_nor_an_api_token_a_session(
        ui: AsyncTestClient, world: World) -> None:
    await login(ui, "operator")
    api = await ui.get("/api/v1/tenants")
    assert api.status_code == 401
    ui.cookies.clear()
    ui.cookies.set("hearth_session", world.jwts["operator"], domain="console.test",
                   path="/ui")
    page = await ui.get("/ui/fleet", follow_redirects=False)
    assert page.status_code == 303


async def test_logout_ends_the_session_even_for_a_copied_cookie(
        ui: AsyncTestClient, world: World) -> None:
    token = await login(ui, "operator")
    copied = ui.cookies.get("hearth_session")
    assert (await ui.get("/ui/fleet", follow_redirects=False)).status_code == 200
    out = await ui.post("/ui/logout", data={"_csrf_token": token}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/ui/login")
    ui.cookies.set("hearth_session", copied, domain="console.test", path="/ui")
    assert (await ui.get("/ui/fleet", follow_redirects=False)).status_code == 303


async def test_disabled_person_loses_the_session_at_once(ui: AsyncTestClient,
                                                         world: World) -> None:
    await login(ui, "operator")
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        await conn.execute("UPDATE people SET disabled = true WHERE username = 'operator'")
    finally:
        await conn.close()
    assert (await ui.get("/ui/fleet", follow_redirects=False)).status_code == 303


async def test_customer_sees_only_their_tenant_and_no_sync_button(
        ui: AsyncTestClient, world: World) -> None:
    await login(ui, "customer")
    landing = await ui.get("/ui/", follow_redirects=False)
    assert landing.headers["location"] == "/ui/tenants/acme"
    fleet = await ui.get("/ui/fleet")
    assert fleet.text.count('<td>acme</td>') == 2
    assert "globex" not in fleet.text
    page = await ui.get(_url(world, "/ui/appliances/{acme}"))
    assert "front-office" in page.text
    assert "Not connected yet" in page.text
    assert ">Sync</button>" not in page.text
    assert "Dry run" not in page.text
    assert "Runs</h2>" not in page.text  # appliances.runs is not a customer's
    tenant = await ui.get("/ui/tenants/acme")
    assert "Your servers" in tenant.text
    assert "/ui/tenants/acme/audit" not in tenant.text


async def test_operator_sees_sync_and_dry_run(ui: AsyncTestClient, world: World) -> None:
    await login(ui, "operator")
    page = await ui.get(_url(world, "/ui/appliances/{acme}"))
    assert ">Sync</button>" in page.text
    assert ">Dry run</button>" in page.text
    assert "Runs</h2>" in page.text
    assert "Live diff</h2>" in page.text


async def test_other_tenant_page_is_the_same_404_as_a_missing_one(
        ui: AsyncTestClient, world: World) -> None:
    await login(ui, "other-operator")
    foreign = await ui.get(_url(world, "/ui/appliances/{acme}"))
    missing = await ui.get("/ui/appliances/00000000-0000-4000-8000-000000000000")
    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert foreign.text == missing.text
    assert "acme" not in foreign.text and "front-office" not in foreign.text


async def test_audit_export_is_json_lines(ui: AsyncTestClient, world: World) -> None:
    token = await login(ui, "operator")
    await ui.post(_url(world, "/ui/appliances/{acme}/sync"),
                  data={"dry_run": "true", "_csrf_token": token}, follow_redirects=False)
    response = await ui.get("/ui/tenants/acme/audit.jsonl")
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"] == (
        'attachment; filename="hearth-audit-acme.jsonl"')
    lines = response.text.splitlines()
    assert len(lines) == 1
    assert '"type": "event"' in lines[0] and '"action": "appliance.sync"' in lines[0]


async def test_a_customer_asks_for_help_and_sees_the_request_stored(
        ui: AsyncTestClient) -> None:
    token = await login(ui, "customer")
    page = await ui.get("/ui/tenants/acme/support")
    assert "<textarea" in page.text and "not available" not in page.text
    sent = await ui.post("/ui/tenants/acme/support", follow_redirects=False,
                         data={"message": "Please add Maria Lopez to reception",
                               "_csrf_token": token})
    assert sent.status_code == 303
    assert sent.headers["location"].startswith("/ui/tenants/acme/support/")
    shown = await ui.get(sent.headers["location"])
    assert shown.status_code == 200
    assert "Please add Maria Lopez to reception" in shown.text
    assert "Being read by the assistant" in shown.text  # stored before any model call
    listed = await ui.get("/ui/tenants/acme/support")
    assert "Please add Maria Lopez to reception" in listed.text
