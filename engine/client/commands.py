"""CLI: ``hearth login`` and ``hearth app list|get|diff|sync``, over the API.

The API URL is ``--api`` or HEARTH_API_URL; the token comes from
``engine.client.api.saved_token``. ``sync --wait`` follows the run's events
until it ends. httpx is imported with ``engine.client.api`` only when one of
these commands runs, so ``hearth --help`` stays fast.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from engine.errors import HearthError


def register(subparsers: argparse._SubParsersAction) -> None:
    login = subparsers.add_parser("login", help="get a token for the app commands")
    login.add_argument("username")
    login.add_argument("--password-stdin", action="store_true")
    add_client_options(login)
    login.set_defaults(handler=_login)
    logout = subparsers.add_parser("logout", help="end the saved session")
    add_client_options(logout)
    logout.set_defaults(handler=_logout)

    app = subparsers.add_parser("app", help="appliances: list, get, diff, sync")
    app_sub = app.add_subparsers(dest="app_command", required=True)
    listing = app_sub.add_parser("list", help="appliances of a tenant with their status")
    listing.add_argument("tenant")
    add_client_options(listing)
    listing.set_defaults(handler=_app_list)
    for name, handler, text in (("get", _app_get, "one appliance's status and conditions"),
                                ("diff", _app_diff, "what a sync would change")):
        sub = app_sub.add_parser(name, help=text)
        sub.add_argument("tenant")
        sub.add_argument("appliance")
        add_client_options(sub)
        sub.set_defaults(handler=handler)
    sync = app_sub.add_parser("sync", help="reconcile an appliance now")
    sync.add_argument("tenant")
    sync.add_argument("appliance")
    sync.add_argument("--dry-run", action="store_true", help="Ansible check mode with diff")
    sync.add_argument("--wait", action="store_true", help="follow the run until it ends")
    add_client_options(sync)
    sync.set_defaults(handler=_app_sync)


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=os.environ.get("HEARTH_API_URL",
                                                        "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=None, help="JWT (default: HEARTH_TOKEN or login)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def client_from_args(args: argparse.Namespace) -> Any:
    from engine.client.api import client_for  # httpx: only when a command runs

    return client_for(args.api, args.token)


def _login(args: argparse.Namespace) -> int:
    password = (sys.stdin.readline().rstrip("\n") if args.password_stdin
                else getpass.getpass(f"password for {args.username}: "))
    from engine.client.api import login  # httpx: only when a command runs

    saved = login(args.api, args.username, password)
    print(f"logged in as {args.username}; token saved to {saved}")
    return 0


def _logout(args: argparse.Namespace) -> int:
    from engine.client.api import logout  # httpx: only when a command runs

    logout(args.api)
    print("logged out")
    return 0


def _short(revision: str | None) -> str:
    return (revision or "-")[:12]


def _app_list(args: argparse.Namespace) -> int:
    client = client_from_args(args)
    items = client.call("GET", f"/api/v1/tenants/{args.tenant}/appliances")
    try:
        workers = client.call("GET", "/ready").get("workers") or {}
    except HearthError:  # not ready: the listing above answered, the table still helps
        workers = {}
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if workers.get("stale"):
        print(f"STALE: {workers.get('message')}; the statuses below are not being kept "
              "current (start `hearth worker`)")
    print(f"{'NAME':<20} {'SYNC':<10} {'HEALTH':<12} {'DESIRED':<13} {'APPLIED':<13} "
          f"{'LAST HEARTBEAT':<33} REASON")
    source_errors: dict[str, None] = {}
    for item in items:
        status = item["status"]
        ready = _condition(status, "Ready")
        print(f"{item['name']:<20} {status['sync']:<10} {status['health']:<12} "
              f"{_short(status.get('desired_revision')):<13} "
              f"{_short(status.get('applied_revision')):<13} "
              f"{item.get('last_heartbeat_at') or '-':<33} "
              f"{ready['reason'] if ready else '-'}")
        source = _condition(status, "SourceValid")
        if source is not None and source["status"] == "False":
            source_errors[source.get("message", "")] = None
    for message in source_errors:  # one tenant, one head: said once, not per appliance
        print(f"! {message}")
    return 0


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


def _app_get(args: argparse.Namespace) -> int:
    client = client_from_args(args)
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
    client = client_from_args(args)
    found = client.appliance(args.tenant, args.appliance)
    plan = client.call("GET", f"/api/v1/appliances/{found['id']}/diff")
    if args.json:
        print(json.dumps(plan, indent=2))
        return 0
    # The plan is at the revision that applies; say when that is not the head of main.
    source = _condition(found["status"], "SourceValid")
    if source is not None and source["status"] == "False":
        print(f"! {source.get('message', '')}")
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
    client = client_from_args(args)
    ident = client.appliance(args.tenant, args.appliance)["id"]
    answer = client.call("POST", f"/api/v1/appliances/{ident}/sync",
                         json={"dry_run": bool(args.dry_run)})
    run_id = answer["run_id"]
    print(f"{'dry run' if args.dry_run else 'sync'} requested: run {run_id}")
    if not args.wait:
        return 0
    from engine.client.api import follow_run  # httpx: only when a command runs

    return follow_run(client, run_id)


