"""The CLI's client of the Hearth API: one authenticated HTTP client, login, run following.

Commands that speak to the API (``hearth login``, ``hearth app ...``) use a
person's JWT from ``--token``, ``HEARTH_TOKEN`` or the file ``login`` writes
(``~/.config/hearth/token``, mode 0600). ``follow_run`` reads a run's
server-sent events and draws a progress line per host until the run ends.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from engine.errors import HearthError, NotFoundError

TOKEN_FILE = Path.home() / ".config" / "hearth" / "token"


class ApiClient:
    """A person's client of the REST API: JSON in, JSON out, problems as ``HearthError``."""

    def __init__(self, base: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base.rstrip("/"), headers=headers, timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
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
    if TOKEN_FILE.exists():
        return TOKEN_FILE.read_text().strip()
    return None


def login(api_url: str, username: str, password: str) -> Path:
    """Exchange a username and password for a JWT and save it (mode 0600); returns where."""
    answer = ApiClient(api_url, None).call(
        "POST", "/api/v1/auth/token", json={"username": username, "password": password})
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(answer["access_token"] + "\n")
    return TOKEN_FILE


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
