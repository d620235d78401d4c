"""CLI: ``hearth token create|list|revoke`` and ``hearth pr list|show|create|diff|approve|merge|
close|revert`` (over the API, with the login of ``hearth login``)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    # imported when the command runs: keeps `hearth --help` fast
    from engine.client.commands import _client_options

    token = subparsers.add_parser("token", help="personal access tokens (git over HTTP)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="make a token and print it once")
    create.add_argument("--name", default="")
    create.add_argument("--scope", choices=("read", "write"), default="write")
    create.add_argument("--expires", default="90d", help="e.g. 30d, or 'never'")
    _client_options(create)
    create.set_defaults(handler=_token_create)
    listing = token_sub.add_parser("list", help="your tokens (hints only)")
    _client_options(listing)
    listing.set_defaults(handler=_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke one of your tokens")
    revoke.add_argument("id", type=int)
    _client_options(revoke)
    revoke.set_defaults(handler=_token_revoke)

    pr = subparsers.add_parser("pr", help="pull requests of a tenant")
    pr_sub = pr.add_subparsers(dest="pr_command", required=True)
    pr_list = pr_sub.add_parser("list", help="pull requests, newest first")
    pr_list.add_argument("tenant")
    pr_list.add_argument("--state", choices=("open", "merged", "closed"))
    _client_options(pr_list)
    pr_list.set_defaults(handler=_pr_list)
    pr_create = pr_sub.add_parser("create", help="open a pull request from a pushed branch")
    pr_create.add_argument("tenant")
    pr_create.add_argument("branch")
    pr_create.add_argument("--title", required=True)
    pr_create.add_argument("--body", default="")
    _client_options(pr_create)
    pr_create.set_defaults(handler=_pr_create)
    for name, text in (("show", "one pull request: checks, plan preview, reviews"),
                       ("diff", "the unified diff"), ("approve", "approve at the head"),
                       ("merge", "merge into main"), ("close", "close without merging"),
                       ("revert", "open a pull request undoing a merged one")):
        sub = pr_sub.add_parser(name, help=text)
        sub.add_argument("tenant")
        sub.add_argument("number", type=int)
        if name == "approve":
            sub.add_argument("--body", default="")
        _client_options(sub)
        sub.set_defaults(handler=_pr_action, action=name)


def _expires(text: str) -> int | None:
    if text == "never":
        return None
    match = re.fullmatch(r"(\d{1,4})d", text)
    if not match:
        raise InvalidInputError(f"--expires {text!r}: give days like 30d, or never")
    return int(match.group(1))


@contextmanager
def session(args: argparse.Namespace) -> Iterator[Any]:
    """The API client of ``hearth app`` (same login), closed when the command ends."""
    # imported when the command runs: keeps `hearth --help` fast
    from engine.client.commands import _client as client

    found = client(args)
    try:
        yield found
    finally:
        found.http.close()


def _token_create(args: argparse.Namespace) -> int:
    with session(args) as client:
        made = client.call("POST", "/api/v1/me/tokens", json={
            "name": args.name, "scope": args.scope, "expires_in_days": _expires(args.expires)})
    if args.json:
        print(json.dumps(made, indent=2))
        return 0
    print(made["token"])
    print(f"token {made['id']} ({made['scope']}, expires {made['expires_at'] or 'never'}); "
          "shown once: use it as the password of git over HTTP", file=sys.stderr)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    with session(args) as client:
        items = client.call("GET", "/api/v1/me/tokens")
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    for t in items:
        state = "revoked" if t["revoked_at"] else f"expires {t['expires_at'] or 'never'}"
        print(f"{t['id']:>5}  …{t['hint']}  {t['scope']:<5}  {state}  {t['name']}")
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    with session(args) as client:
        client.call("DELETE", f"/api/v1/me/tokens/{args.id}")
    print(f"token {args.id} revoked")
    return 0


def _pulls(tenant: str) -> str:
    return f"/api/v1/tenants/{tenant}/pulls"


def _pr_list(args: argparse.Namespace) -> int:
    params = {"state": args.state} if args.state else {}
    with session(args) as client:
        items = client.call("GET", _pulls(args.tenant), params=params)
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    for p in items:
        print(f"#{p['number']:<5} {p['state']:<7} {p['mergeable']:<15} {p['source']:<24} "
              f"{p['title']}")
    return 0


def _pr_create(args: argparse.Namespace) -> int:
    with session(args) as client:
        pull = client.call("POST", _pulls(args.tenant), json={
            "title": args.title, "body": args.body, "source": args.branch})
    return _print_pull(args, pull)


def _print_pull(args: argparse.Namespace, pull: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(pull, indent=2))
        return 0
    print(f"#{pull['number']} {pull['title']} [{pull['state']}, {pull['mergeable']}]")
    print(f"  {pull['source']} -> {pull['target']} by {pull['author']}; head "
          f"{pull['head'][:12]}; approvals {pull['approvals']}/{pull['required_approvals']}")
    checks = pull["checks"]
    print(f"  checks: {checks['status']}")
    for issue in checks["validation"]["issues"]:
        print(f"    {issue['file']}:{issue['line']}:{issue['column']}: {issue['message']}")
    for preview in checks["plan_preview"]["appliances"]:
        counts = preview["counts"]
        print(f"    {preview['appliance']}: +{counts['add']} ~{counts['modify']} "
              f"-{counts['remove']}, {preview['window']}")
        for change in preview["changes"]:
            print(f"      {change}")
    for review in pull["reviews"]:
        print(f"  review: {review['username']} {review['state']} at {review['head'][:12]}")
    if pull.get("merge_commit"):
        print(f"  merged as {pull['merge_commit']}")
    return 0


def _pr_action(args: argparse.Namespace) -> int:
    with session(args) as client:
        return _pr_call(args, client)


def _pr_call(args: argparse.Namespace, client: Any) -> int:
    base = f"{_pulls(args.tenant)}/{args.number}"
    if args.action == "show":
        return _print_pull(args, client.call("GET", base))
    if args.action == "diff":
        found = client.call("GET", base + "/diff")
        print(json.dumps(found, indent=2) if args.json else found["patch"], end="")
        return 0
    if args.action == "approve":
        return _print_pull(args, client.call("POST", base + "/reviews",
                                             json={"event": "approve", "body": args.body}))
    if args.action == "merge":
        merged = client.call("POST", base + "/merge")
        print(json.dumps(merged, indent=2) if args.json else
              f"#{args.number} merged as {merged['merge_commit']}; reconcile queued for "
              f"{', '.join(merged['queued']) or 'no appliance'}")
        return 0
    if args.action == "close":
        return _print_pull(args, client.call("POST", base + "/close"))
    return _print_pull(args, client.call("POST", base + "/revert"))
