"""The config route: desired state at the head of main, ETag, 304, and who may read it."""

from __future__ import annotations

import pytest


def _url(world, key: str = "acme/front-office") -> str:
    return f"/api/v1/appliance/{world.appliance_ids[key]}/config"


async def test_appliance_reads_its_config_with_the_commit_as_etag(client, world) -> None:
    response = await client.get(_url(world), headers=world.auth("appliance"))
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{world.heads["acme"]}"'
    body = response.json()
    assert body["name"] == "front-office" and body["hostname"]
    again = await client.get(_url(world), headers={**world.auth("appliance"),
                                                   "If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    stale = await client.get(_url(world), headers={**world.auth("appliance"),
                                                   "If-None-Match": '"0000"'})
    assert stale.status_code == 200


@pytest.mark.parametrize(("who", "status"), [
    ("operator", 200), ("auditor", 200), ("admin", 200), ("customer", 403),
    ("other-operator", 404), ("anonymous", 401),
])
async def test_people_by_role(client, world, who, status) -> None:
    assert (await client.get(_url(world), headers=world.auth(who))).status_code == status


@pytest.mark.parametrize("key", ["acme/lab", "globex/front-office"],
                         ids=["same-tenant", "other-tenant"])
async def test_token_of_appliance_a_for_bs_config_is_404(client, world, key) -> None:
    response = await client.get(_url(world, key), headers=world.auth("appliance"))
    assert response.status_code == 404
