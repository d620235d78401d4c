"""Issue 16, classes 4 and 5: sessions end when they should; login throttling without
lock-out, with X-Forwarded-For believed only from configured proxies.

The throttling tests that need distinct client addresses run the app under uvicorn
on loopback with ``HEARTH_TRUSTED_PROXIES=127.0.0.1/32`` and name the client in
``X-Forwarded-For``, as a reverse proxy would.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from api.app import create_app
from api.context import Limits
from engine.client import api as client_api
from tests.api.conftest import PASSWORD

LOGIN = "/api/v1/auth/token"


async def _login(client, who: str = "operator", password: str = PASSWORD, **headers):
    return await client.post(LOGIN, json={"username": who, "password": password},
                             headers=headers)


def _bearer(answer) -> dict[str, str]:
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


# --- class 4: sessions end when they should ------------------------------------------------


async def test_a_password_change_ends_every_earlier_token(client, world) -> None:
    session = await _login(client)
    assert (await client.get("/api/v1/tenants", headers=_bearer(session))).status_code == 200
    changed = await client.patch(f"/api/v1/people/{world.person_ids['operator']}",
                                 json={"password": "a-brand-new-password-1"},
                                 headers=world.auth("admin"))
    assert changed.status_code == 200, changed.text
    assert (await client.get("/api/v1/tenants", headers=_bearer(session))).status_code == 401
    assert (await client.get("/api/v1/tenants",
                             headers=world.auth("operator"))).status_code == 401
    refreshed = await client.post("/api/v1/auth/refresh",
                                  json={"refresh_token": session.json()["refresh_token"]})
    assert refreshed.status_code == 401
    again = await _login(client, password="a-brand-new-password-1")
    assert (await client.get("/api/v1/tenants", headers=_bearer(again))).status_code == 200


async def test_logout_ends_the_token_and_its_session(client, world) -> None:
    session = await _login(client)
    other = await _login(client)  # a second login (another device) is not affected
    out = await client.post("/api/v1/auth/logout", headers=_bearer(session))
    assert out.status_code == 204, out.text
    assert (await client.get("/api/v1/tenants", headers=_bearer(session))).status_code == 401
    refreshed = await client.post("/api/v1/auth/refresh",
                                  json={"refresh_token": session.json()["refresh_token"]})
    assert refreshed.status_code == 401
    assert (await client.get("/api/v1/tenants", headers=_bearer(other))).status_code == 200


async def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_session(client,
                                                                           world) -> None:
    session = await _login(client)
    body = session.json()
    assert body["expires_in"] == 900 and body["refresh_expires_in"] == 14 * 24 * 3600
    assert body["refresh_token"].startswith("hth_rt_")
    first = await client.post("/api/v1/auth/refresh",
                              json={"refresh_token": body["refresh_token"]})
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    assert first.json()["refresh_token"] != body["refresh_token"]
    assert (await client.get("/api/v1/tenants", headers=_bearer(first))).status_code == 200
    replay = await client.post("/api/v1/auth/refresh",
                               json={"refresh_token": body["refresh_token"]})
    assert replay.status_code == 401
    # the replay revoked the session: the pair the first refresh gave is dead too
    assert (await client.get("/api/v1/tenants", headers=_bearer(first))).status_code == 401
    assert (await client.post("/api/v1/auth/refresh",
                              json={"refresh_token": first.json()["refresh_token"]})
            ).status_code == 401


# --- class 5: throttling without lock-out -------------------------------------------------


@pytest.fixture
def live(settings, world) -> Iterator[str]:
    """The app under uvicorn on loopback, believing X-Forwarded-For from 127.0.0.1."""
    trusting = settings.model_copy(update={"trusted_proxies": "127.0.0.1/32"})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    import uvicorn

    app = create_app(trusting, limits=Limits(login_per_minute_per_address=1000),
                     migrate=False, pool_size=4)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on",
                                           proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(10)


def _try(base: str, *, address: str, password: str, who: str = "admin") -> httpx.Response:
    return httpx.post(base + LOGIN, json={"username": who, "password": password},
                      headers={"X-Forwarded-For": address})


def test_guessing_from_one_address_never_locks_the_right_password_out_elsewhere(live) -> None:
    statuses = [_try(live, address="203.0.113.9", password="wrong-guess-123").status_code
                for _ in range(8)]
    assert statuses[:3] == [401, 401, 401]  # free failures
    assert 429 in statuses[3:]  # then the guesser waits
    assert _try(live, address="198.51.100.20", password=PASSWORD).status_code == 200


def test_delays_grow_per_username_and_address(live) -> None:
    for _ in range(3):
        assert _try(live, address="203.0.113.10", password="wrong-guess-123").status_code == 401
    assert _try(live, address="203.0.113.10", password="wrong-guess-123").status_code == 401
    held = _try(live, address="203.0.113.10", password=PASSWORD)  # the 4th failure: 1 s
    assert held.status_code == 429 and held.headers["retry-after"] == "1"
    time.sleep(1.1)
    assert _try(live, address="203.0.113.10", password="wrong-guess-123").status_code == 401
    held = _try(live, address="203.0.113.10", password=PASSWORD)  # the 5th: 2 s
    assert held.status_code == 429 and held.headers["retry-after"] == "2"
    time.sleep(2.1)
    assert _try(live, address="203.0.113.10", password=PASSWORD).status_code == 200
    # a success forgets the pair's failures
    assert _try(live, address="203.0.113.10", password="wrong-guess-123").status_code == 401
    assert _try(live, address="203.0.113.10", password=PASSWORD).status_code == 200


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(client,
                                                                              world) -> None:
    """The test client's peer is no trusted proxy (none are configured): whatever
    X-Forwarded-For it sends, its failures count against one (username, address)."""
    for n in range(4):
        answer = await _login(client, "auditor", "wrong-guess-123",
                              **{"X-Forwarded-For": f"192.0.2.{n}"})
        assert answer.status_code == 401
    # spoofed X-Forwarded-For from an untrusted peer: still the same bucket, so waiting
    held = await _login(client, "auditor", PASSWORD, **{"X-Forwarded-For": "192.0.2.99"})
    assert held.status_code == 429


def test_the_ceiling_refuses_failing_clients_and_hears_fresh_ones(settings, world) -> None:
    """Across addresses: failures from many addresses pass the ceiling; an address that
    failed is then refused even with the right password, a fresh one is heard."""
    trusting = settings.model_copy(update={"trusted_proxies": "127.0.0.1/32"})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    import uvicorn

    app = create_app(trusting, limits=Limits(login_failures_per_user_ceiling=4,
                                             login_per_minute_per_address=1000),
                     migrate=False, pool_size=4)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on",
                                           proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        for n in range(4):
            assert _try(base, address=f"203.0.113.{50 + n}", password="nope-nope-12",
                        who="customer").status_code == 401
        refused = _try(base, address="203.0.113.50", password=PASSWORD, who="customer")
        assert refused.status_code == 429
        assert _try(base, address="198.51.100.77", password=PASSWORD,
                    who="customer").status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)


# --- the CLI renews its access token -----------------------------------------------------


def test_the_cli_refreshes_an_expired_access_token(live, world, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(client_api, "TOKEN_FILE", tmp_path / "token")
    client_api.login(live, "operator", PASSWORD)
    saved = client_api.load_session()
    assert saved is not None and saved.refresh_token.startswith("hth_rt_")
    # the access token the CLI holds no longer works (as after its 15 minutes)
    client_api.save_session(client_api.Session(access_token="expired.jwt.value",
                                               refresh_token=saved.refresh_token))
    api = client_api.ApiClient(live, None, session=client_api.load_session())
    with api.http:
        assert [t["name"] for t in api.call("GET", "/api/v1/tenants")] == ["acme"]
    renewed = client_api.load_session()
    assert renewed is not None and renewed.refresh_token != saved.refresh_token
    client_api.logout(live)
    assert client_api.load_session() is None
