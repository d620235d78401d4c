"""Fixtures for the console's tests: the API tests' world (tenants acme and globex, people
in every role, appliances, pull requests; real PostgreSQL, Redis and bare repos), and a
test client that talks HTTPS so the console's Secure cookies are kept.

``login(client, who)`` logs in through the login form, as a browser does (CSRF cookie and
field first), and returns the CSRF token the person's forms carry.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.context import Limits
from engine.settings import Settings
from tests.api.conftest import (  # noqa: F401 (fixtures)
    PASSWORD,
    World,
    api_database_url,
    limits,
    repos,
    settings,
    world,
)

BASE = "https://console.test"
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


async def login(client: AsyncTestClient, who: str) -> str:
    page = await client.get("/ui/login")
    token = csrf_of(page.text)
    response = await client.post("/ui/login", data={
        "username": who, "password": PASSWORD, "_csrf_token": token, "next": "/ui/"},
                                 follow_redirects=False)
    assert response.status_code == 303, response.text
    return token


@pytest.fixture
async def ui(settings: Settings, world: World,  # noqa: F811 (the imported fixtures)
             limits: Limits) -> AsyncIterator[AsyncTestClient]:  # noqa: F811
    app = create_app(settings, limits=limits, migrate=False, pool_size=4)
    async with AsyncTestClient(app=app, base_url=BASE) as client:
        yield client
