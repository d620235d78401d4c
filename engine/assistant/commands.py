"""CLI: ``hearth support ask|list|show`` (through the API) and ``hearth support worker``
(the process that asks the model and opens pull requests)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from engine.client.commands import add_client_options, client_from_args

_FINAL = {"answered", "question", "refused", "pull_request_opened", "failed"}


def register(subparsers: argparse._SubParsersAction) -> None:
    support = subparsers.add_parser("support", help="ask the support assistant")
    sub = support.add_subparsers(dest="support_command", required=True, metavar="SUBCOMMAND")
    ask = sub.add_parser("ask", help="send a request in plain language")
    ask.add_argument("message")
    ask.add_argument("--tenant", default=None, help="needed when you belong to several")
    ask.add_argument("--appliance", default=None)
    ask.add_argument("--conversation", type=int, default=None,
                     help="continue the conversation of this request id")
    ask.add_argument("--wait", type=float, default=0,
                     help="seconds to wait for the reply (0: print the queued request)")
    add_client_options(ask)
    ask.set_defaults(handler=_ask)
    listing = sub.add_parser("list", help="requests, newest first")
    listing.add_argument("--tenant", default=None)
    listing.add_argument("--status", default=None)
    add_client_options(listing)
    listing.set_defaults(handler=_list)
    show = sub.add_parser("show", help="one request: reply, pull request, applied or not")
    show.add_argument("id", type=int)
    add_client_options(show)
    show.set_defaults(handler=_show)
    worker = sub.add_parser("worker", help="answer queued requests with the model "
                                           "(OLLAMA_API_URL, OLLAMA_MODEL)")
    worker.add_argument("--timeout", type=float, default=120.0,
                        help="seconds one model call may take")
    worker.set_defaults(handler=_worker)


def _line(item: dict[str, Any]) -> str:
    pull = item.get("pull_request")
    pr = f"  PR #{pull['number']} {pull['state']}" if pull else ""
    return (f"#{item['id']:<5} {item['status']:<20} {item['tenant']:<12}"
            f" {item['message'][:50]!r}{pr}")


def _print(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(item, indent=2))
        return
    print(_line(item))
    if item.get("reply"):
        print(f"  {item['reply']}")
    if item.get("error") and item["status"] == "waiting_for_model":
        print(f"  waiting for the model ({item['attempts']} attempts): {item['error']}")


def _ask(args: argparse.Namespace) -> int:
    client = client_from_args(args)
    try:
        item = client.call("POST", "/api/v1/support", json={
            "message": args.message, "tenant": args.tenant, "appliance": args.appliance,
            "conversation_id": args.conversation})
        deadline = time.monotonic() + args.wait
        while item["status"] not in _FINAL and time.monotonic() < deadline:
            time.sleep(1)
            item = client.call("GET", f"/api/v1/support/{item['id']}")
    finally:
        client.http.close()
    _print(item, args.json)
    return 0


def _list(args: argparse.Namespace) -> int:
    client = client_from_args(args)
    try:
        params = {k: v for k, v in (("tenant", args.tenant), ("status", args.status)) if v}
        items = client.call("GET", "/api/v1/support", params=params)
    finally:
        client.http.close()
    if args.json:
        print(json.dumps(items, indent=2))
    for item in [] if args.json else items:
        print(_line(item))
    return 0


def _show(args: argparse.Namespace) -> int:
    client = client_from_args(args)
    try:
        item = client.call("GET", f"/api/v1/support/{args.id}")
    finally:
        client.http.close()
    _print(item, args.json)
    if not args.json and item.get("intents"):
        for intent in item["intents"]:
            print("  intent:", json.dumps(intent, sort_keys=True))
    return 0


def _worker(args: argparse.Namespace) -> int:
    # Local import: the worker's dependencies (asyncpg, pygit2, ollama) are not needed by
    # the other support commands.
    from engine.assistant.worker import run_worker

    return run_worker(timeout=args.timeout, out=sys.stderr)
