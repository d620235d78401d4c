"""CLI: ``hearth history TENANT [--path P] [--appliance A]`` and ``hearth audit TENANT
[--jsonl]`` (over the API)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    # imported when the command runs: keeps `hearth --help` fast
    from engine.client.commands import _client_options

    hist = subparsers.add_parser("history", help="commits of a tenant's main with trailers")
    hist.add_argument("tenant")
    hist.add_argument("--path")
    hist.add_argument("--appliance")
    hist.add_argument("--limit", type=int, default=50)
    _client_options(hist)
    hist.set_defaults(handler=_history)

    audit = subparsers.add_parser("audit", help="the audit chain and events of a tenant")
    audit.add_argument("tenant")
    audit.add_argument("--jsonl", action="store_true", help="stream JSON Lines (export)")
    _client_options(audit)
    audit.set_defaults(handler=_audit)


def _history(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    from engine.pulls.commands import session

    params = {k: v for k, v in (("path", args.path), ("appliance", args.appliance),
                                ("limit", args.limit)) if v is not None}
    with session(args) as client:
        items = client.call("GET", f"/api/v1/tenants/{args.tenant}/history", params=params)
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    for c in items:
        print(f"{c['commit'][:12]} {c['committed_at'][:19]} {c['author']}: {c['subject']}")
        for key, values in c["trailers"].items():
            for value in values:
                print(f"    {key}: {value}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    from engine.pulls.commands import session

    with session(args) as client:
        return _audit_call(args, client)


def _audit_call(args: argparse.Namespace, client: Any) -> int:
    path = f"/api/v1/tenants/{args.tenant}/audit"
    if args.jsonl:
        with client.http.stream("GET", path, params={"format": "jsonl"}) as answer:
            if answer.status_code >= 400:
                answer.read()
                client.call("GET", path)  # raises with the problem's detail
            for line in answer.iter_lines():
                sys.stdout.write(line + "\n")
        return 0
    trail = client.call("GET", path)
    if args.json:
        print(json.dumps(trail, indent=2))
        return 0
    for change in trail["changes"]:
        pull = change["pull_request"]
        print(f"#{pull['number']} {pull['title']} (by {pull['author']}"
              + (f", support request #{change['support_request']}"
                 if change["support_request"] else "") + ")")
        print(f"  approved by {', '.join(change['approved_by']) or 'nobody'}; merged by "
              f"{change['merged_by']} as {change['merge_commit'][:12]} at {change['merged_at']}")
        for run in change["runs"]:
            print(f"  run {run['id']} {run['status']}: {', '.join(run['appliances'])}")
        for confirmed in change["confirmed"]:
            print(f"  confirmed on {confirmed['appliance']} at {confirmed['confirmed_at']}")
    for event in trail["events"][:50]:
        print(f"{event['at'][:19]} {event['actor_kind']}:{event['actor_id'] or '-'} "
              f"{event['action']} {event['target'] or ''} {event['outcome']}")
    return 0
