"""CLI: ``hearth worker`` and ``hearth app list|get|diff|sync`` (over the API).

The ``app`` commands speak to the API like any client, with a person's JWT
from ``--token``, ``HEARTH_TOKEN`` or the file ``hearth login`` writes
(``~/.config/hearth/token``, mode 0600); the URL is ``--api`` or
HEARTH_API_URL. ``sync --wait`` follows the run's server-sent events and
draws a progress line per host until the run ends.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

TOKEN_FILE = Path.home() / ".config" / "hearth" / "token"


def register(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser("worker", help="run a reconcile worker")
    worker.add_argument("--batch-size", type=int, default=25)
    worker.add_argument("--resync-interval", type=float, default=180.0,
                        help="seconds between periodic resyncs of every appliance")
    worker.add_argument("--heartbeat-interval", type=float, default=60.0,
                        help="agents' heartbeat interval (Missing after three)")
    worker.add_argument("--roots-dir", type=Path,
                        help="appliance roots on this machine (<dir>/<tenant>/<name>)")
    worker.add_argument("--no-watch", action="store_true", help="do not watch REPOS_DIR")
    worker.set_defaults(handler=_worker)

    login = subparsers.add_parser("login", help="get a token for the app commands")
    login.add_argument("username")
    login.add_argument("--password-stdin", action="store_true")
    _client_options(login)
    login.set_defaults(handler=_login)

    app = subparsers.add_parser("app", help="appliances: list, get, diff, sync")
    app_sub = app.add_subparsers(dest="app_command", required=True)
    listing = app_sub.add_parser("list", help="appliances of a tenant with their status")
    listing.add_argument("tenant")
    _client_options(listing)
    listing.set_defaults(handler=_app_list)
    for name, handler, text in (("get", _app_get, "one appliance's status and conditions"),
                                ("diff", _app_diff, "what a sync would change")):
        sub = app_sub.add_parser(name, help=text)
        sub.add_argument("tenant")
        sub.add_argument("appliance")
        _client_options(sub)
        sub.set_defaults(handler=handler)
    sync = app_sub.add_parser("sync", help="reconcile an appliance now")
    sync.add_argument("tenant")
    sync.add_argument("appliance")
    sync.add_argument("--dry-run", action="store_true", help="Ansible check mode with diff")
    sync.add_argument("--wait", action="store_true", help="follow the run until it ends")
    _client_options(sync)
    sync.set_defaults(handler=_app_sync)


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=os.environ.get("HEARTH_API_URL",
                                                        "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=None, help="JWT (default: HEARTH_TOKEN or login)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _worker(args: argparse.Namespace) -> int:
    import logging

    from engine.reconcile.worker import WorkerOptions, run_worker
    from engine.settings import load_settings

    settings = load_settings()
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run_worker(settings, WorkerOptions(
        batch_size=args.batch_size, resync_interval=args.resync_interval,
        heartbeat_interval=args.heartbeat_interval, roots_dir=args.roots_dir,
        watch=not args.no_watch))


# --------------------------------------------------------------------------- #
# The API client
# --------------------------------------------------------------------------- #


class ApiClient:
    def __init__(self, base: str, token: str | None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base.rstrip("/"), headers=headers, timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        from engine.errors import HearthError

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
        from engine.errors import NotFoundError

        for item in self.call("GET", f"/api/v1/tenants/{tenant}/appliances"):
            if item["name"] == name:
                return item
        raise NotFoundError(f"appliance {tenant}/{name} not found")


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return args.token
    if os.environ.get("HEARTH_TOKEN"):
        return os.environ["HEARTH_TOKEN"]
    if TOKEN_FILE.exists():
        return TOKEN_FILE.read_text().strip()
    return None


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(args.api, _token(args))


def _login(args: argparse.Namespace) -> int:
    password = (sys.stdin.readline().rstrip("\n") if args.password_stdin
                else getpass.getpass(f"password for {args.username}: "))
    answer = ApiClient(args.api, None).call(
        "POST", "/api/v1/auth/token", json={"username": args.username, "password": password})
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(answer["access_token"] + "\n")
    print(f"logged in as {args.username}; token saved to {TOKEN_FILE}")
    return 0


def _short(revision: str | None) -> str:
    return (revision or "-")[:12]


def _app_list(args: argparse.Namespace) -> int:
    items = _client(args).call("GET", f"/api/v1/tenants/{args.tenant}/appliances")
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    print(f"{'NAME':<20} {'SYNC':<10} {'HEALTH':<12} {'DESIRED':<13} {'APPLIED':<13} LAST HEARTBEAT")
    for item in items:
        status = item["status"]
        print(f"{item['name']:<20} {status['sync']:<10} {status['health']:<12} "
              f"{_short(status.get('desired_revision')):<13} "
              f"{_short(status.get('applied_revision')):<13} {item.get('last_heartbeat_at') or '-'}")
    return 0


def _app_get(args: argparse.Namespace) -> int:
    client = _client(args)
    item = client.call("GET", f"/api/v1/appliances/{client.appliance(args.tenant, args.appliance)['id']}")
    if args.json:
        print(json.dumps(item, indent=2))
        return 0
    status = item["status"]
    print(f"{args.tenant}/{item['name']}: {status['sync']}, {status['health']}")
    print(f"  desired {_short(status.get('desired_revision'))}  applied "
          f"{_short(status.get('applied_revision'))}  last heartbeat {item.get('last_heartbeat_at')}")
    if status.get("message"):
        print(f"  {status['message']}")
    for condition in status.get("conditions", []):
        print(f"  {condition['type']}={condition['status']} ({condition['reason']}): "
              f"{condition.get('message', '')}")
    return 0


def _app_diff(args: argparse.Namespace) -> int:
    client = _client(args)
    ident = client.appliance(args.tenant, args.appliance)["id"]
    plan = client.call("GET", f"/api/v1/appliances/{ident}/diff")
    if args.json:
        print(json.dumps(plan, indent=2))
        return 0
    items = plan.get("items", [])
    if not items and not plan.get("extras"):
        print(f"{args.tenant}/{args.appliance} is in sync at {_short(plan.get('revision'))}")
        return 0
    for item in items:
        print(f"{_sign(item['operation'])} {item['domain']}: {'/'.join(map(str, item['path']))}"
              f" ({item['reason']})")
    for extra in plan.get("extras", []):
        print(f"? {extra['domain']}: {'/'.join(map(str, extra['path']))} ({extra['reason']})")
    return 1 if items else 0


def _sign(operation: str) -> str:
    return {"add": "+", "remove": "-", "modify": "~"}.get(operation, "?")


def _app_sync(args: argparse.Namespace) -> int:
    client = _client(args)
    ident = client.appliance(args.tenant, args.appliance)["id"]
    answer = client.call("POST", f"/api/v1/appliances/{ident}/sync",
                         json={"dry_run": bool(args.dry_run)})
    run_id = answer["run_id"]
    print(f"{'dry run' if args.dry_run else 'sync'} requested: run {run_id}")
    if not args.wait:
        return 0
    return follow_run(client, run_id)


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
