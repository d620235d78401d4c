"""Issue 16, classes 2, 3 and 6: authenticate before parsing, streams re-check access,
denials cost the same whether or not the object exists.

All on the real app with PostgreSQL and Redis (tests/api/conftest.py).
"""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from api.context import Limits
from tests.api.conftest import APPLIANCE
from tests.api.test_heartbeat import beat


def _made_up_token() -> str:
    return "hth_app_" + secrets.token_urlsafe(32)


# --- class 2: authenticate before parsing ------------------------------------------------


@pytest.mark.parametrize("body", [{"sequence": "not a number"}, {"unexpected": True}, []],
                         ids=["wrong-type", "unknown-field", "not-an-object"])
async def test_a_made_up_heartbeat_token_gets_401_before_the_body_is_read(client, world,
                                                                          body) -> None:
    response = await client.post("/api/v1/heartbeat", json=body,
                                 headers={"Authorization": f"Bearer {_made_up_token()}"})
    assert response.status_code == 401, response.text
    assert "errors" not in response.json()  # no validation details for a stranger
    assert "sequence" not in response.text


async def test_a_live_token_still_gets_its_validation_details(client, world) -> None:
    response = await client.post("/api/v1/heartbeat", json={"sequence": "not a number"},
                                 headers=world.auth("appliance"))
    assert response.status_code == 400
    assert response.json()["errors"]


@pytest.mark.parametrize("limits", [Limits(unknown_tokens_per_minute_per_address=5)])
async def test_unknown_tokens_are_limited_per_address_not_per_token(client, world) -> None:
    statuses = []
    for _ in range(8):
        response = await client.post("/api/v1/heartbeat", json=beat(1),
                                     headers={"Authorization": f"Bearer {_made_up_token()}"})
        statuses.append(response.status_code)
    # the window is a calendar minute; 8 requests take well under a second, but if the
    # minute turned in between, the count restarted: at most 5 more 401s then
    assert statuses[:5] == [401] * 5
    assert 429 in statuses[5:], statuses
    assert statuses[-1] == 429 and 1 <= int(response.headers["retry-after"]) <= 60
    # a live appliance from the same address is not held up by the strangers
    ok = await client.post("/api/v1/heartbeat", json=beat(1), headers=world.auth("appliance"))
    assert ok.status_code == 200, ok.text
