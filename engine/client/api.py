"""The CLI's client of the Hearth API: one authenticated HTTP client, login, run following.

Commands that speak to the API (``hearth login``, ``hearth app ...``) use a
person's JWT from ``--token``, ``HEARTH_TOKEN`` or the session ``login``
writes (``~/.config/hearth/token``, mode 0600: the short-lived access token
and the refresh token, as JSON). With a saved session, an answer of 401 makes
the client spend the refresh token for a new pair, save it, and retry once,
so a person stays logged in for the refresh token's lifetime; ``hearth
logout`` ends the session on the server and deletes the file. ``follow_run`` reads a run's
server-sent events and draws a progress line per host until the run ends.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from engine.errors import HearthError, NotFoundError

TOKEN_FILE = Path.home() / ".config" / "hearth" / "token"


@dataclass(frozen=True)
class Session:
    access_token: str
    refresh_token: str | None = None


def load_session() -> Session | None:
    """The saved session (a file from before refresh tokens holds the bare access token)."""
    if not TOKEN_FILE.exists():
        return None
    text = TOKEN_FILE.read_text().strip()
    if not text.startswith("{"):
        return Session(access_token=text) if text else None
    data = json.loads(text)
    return Session(access_token=data["access_token"], refresh_token=data.get("refresh_token"))


def save_session(session: Session) -> Path:
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"access_token": session.access_token,
                   "refresh_token": session.refresh_token}, handle)
        handle.write("\n")
    return TOKEN_FILE


class ApiClient:
    """A person's client of the REST API: JSON in, JSON out, problems as ``HearthError``.

    Given a saved ``session`` instead of a ``token``, it renews the access token on 401.
    """

    def __init__(self, base: str, token: str | None, *, session: Session | None = None) -> None:
        self.session = session if token is None else None
        token = token or (session.access_token if session else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base.rstrip("/"), headers=headers, timeout=30)

    def _renew(self) -> bool:
        """Spend the refresh token for a new pair and save it; False when it buys nothing."""
        if self.session is None or not self.session.refresh_token:
            return False
        answer = self.http.post("/api/v1/auth/refresh", headers={"Authorization": ""},
                                json={"refresh_token": self.session.refresh_token})
        if answer.status_code != 200:
            return False
        body = answer.json()
        self.session = Session(access_token=body["access_token"],
                               refresh_token=body["refresh_token"])
        save_session(self.session)
        self.http.headers["Authorization"] = f"Bearer {self.session.access_token}"
        return True

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code == 401 and self._renew():
            response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
                detail = problem.get("detail") or problem.get("title")
            except ValueError:
                detail = response.text[:200]
            raise HearthError(f"{method} {path}: {response.status_code} {detail}")
        return response.json() if response.content else None

    def appliance(self, tenant: str, name: str) -> dict[str, Any]:
        for item in self.call("GET", f"/api/v1/tenants/{tenant}/appliances"):
            if item["name"] == name:
                return item
        raise NotFoundError(f"appliance {tenant}/{name} not found")


def saved_token(explicit: str | None = None) -> str | None:
    """The token to call with: ``explicit``, else ``HEARTH_TOKEN``, else the saved one."""
    if explicit:
        return explicit
    if os.environ.get("HEARTH_TOKEN"):
        return os.environ["HEARTH_TOKEN"]
    session = load_session()
    return session.access_token if session else None


def client_for(api_url: str, explicit: str | None = None) -> ApiClient:
    """A client with ``explicit`` or ``HEARTH_TOKEN`` as given, else the saved session
    (renewed on 401)."""
    token = explicit or os.environ.get("HEARTH_TOKEN") or None
    return ApiClient(api_url, token, session=None if token else load_session())


def login(api_url: str, username: str, password: str) -> Path:
    """Exchange a username and password for a session and save it (mode 0600); returns
    where."""
    client = ApiClient(api_url, None)
    with client.http:
        answer = client.call("POST", "/api/v1/auth/token",
                             json={"username": username, "password": password})
    return save_session(Session(access_token=answer["access_token"],
                                refresh_token=answer["refresh_token"]))


def logout(api_url: str) -> None:
    """End the saved session on the server (when it is still live) and delete the file."""
    session = load_session()
    if session is not None:
        client = ApiClient(api_url, None, session=session)
        with client.http:
            answer = client.http.post("/api/v1/auth/logout")
            if answer.status_code == 401 and client._renew():
                client.http.post("/api/v1/auth/logout")
    TOKEN_FILE.unlink(missing_ok=True)


def follow_run(client: ApiClient, run_id: int) -> int:
    """Print the run's events as they come, with a progress line per host; exit 0 on success."""
    hosts: dict[str, int] = {}
    with client.http.stream("GET", f"/api/v1/runs/{run_id}/events", timeout=None) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event.get("event") == "end":
                break
            host = event.get("host") or "-"
            hosts[host] = hosts.get(host, 0) + 1
            mark = "changed" if event.get("changed") else event.get("event", "").removeprefix(
                "runner_on_")
            progress = " ".join(f"{h}:{n}" for h, n in sorted(hosts.items()))
            sys.stdout.write(f"\r[{progress}] {host} {event.get('task') or ''}: {mark}"[:160]
                             .ljust(160))
            sys.stdout.flush()
            if event.get("changes") or (event.get("msg") and event.get("event") != "runner_on_ok"):
                sys.stdout.write("\n    " + json.dumps(event.get("changes") or event.get("msg"))
                                 [:400] + "\n")
    run = client.call("GET", f"/api/v1/runs/{run_id}")
    print(f"\nrun {run_id}: {run['status']} (changed {run['changed']}, failed hosts "
          f"{run['failed']})" + (f": {run['error']}" if run.get("error") else ""))
    return 0 if run["status"] == "succeeded" else 1
