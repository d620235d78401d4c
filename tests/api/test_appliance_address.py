"""The management address: recorded at registration, checked, and unique across the fleet."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from tests.api.conftest import World

ROUTE = "/api/v1/tenants/{tenant}/appliances"


async def test_registered_address_is_stored_canonical_and_shown(client: AsyncTestClient,
                                                                world: World) -> None:
    response = await client.post(ROUTE.format(tenant="acme"), headers=world.auth("operator"),
                                 json={"name": "newbox", "address": "2001:DB8::0:1"})
    assert response.status_code == 201, response.text
    listed = await client.get(ROUTE.format(tenant="acme"), headers=world.auth("operator"))
    by_name = {a["name"]: a for a in listed.json()}
    assert by_name["newbox"]["address"] == "2001:db8::1"
    assert by_name["front-office"]["address"] is None


async def test_another_tenants_address_cannot_be_registered(client: AsyncTestClient,
                                                            world: World) -> None:
    first = await client.post(ROUTE.format(tenant="globex"),
                              headers=world.auth("other-operator"),
                              json={"name": "newbox", "address": "10.20.0.7"})
    assert first.status_code == 201, first.text
    second = await client.post(ROUTE.format(tenant="acme"), headers=world.auth("operator"),
                               json={"name": "newbox", "address": "10.20.0.7"})
    assert second.status_code == 409
    assert second.headers["content-type"].startswith("application/problem+json")
    assert "already registered" in second.json()["detail"]
    listed = await client.get(ROUTE.format(tenant="acme"), headers=world.auth("operator"))
    assert "newbox" not in {a["name"] for a in listed.json()}


@pytest.mark.parametrize("address", [
    "-oProxyCommand=touch /tmp/pwned", "host name", "box.example;reboot", "", "a" * 254,
    "10.0.0.1\n", "box..example",
], ids=["ssh-option", "space", "semicolon", "empty", "too-long", "newline", "empty-label"])
async def test_hostile_addresses_are_refused(client: AsyncTestClient, world: World,
                                             address: str) -> None:
    response = await client.post(ROUTE.format(tenant="acme"), headers=world.auth("operator"),
                                 json={"name": "newbox", "address": address})
    assert response.status_code == 400, response.text
    listed = await client.get(ROUTE.format(tenant="acme"), headers=world.auth("operator"))
    assert "newbox" not in {a["name"] for a in listed.json()}
