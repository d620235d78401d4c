"""The ``hearth`` command line.

Each area of Hearth contributes its sub-commands from a ``commands`` module
with a ``register(subparsers)`` function, so this file stays a table of
contents. Handlers take the parsed arguments and return the exit status:
0 success, 1 a check failed or an operation was refused, 2 usage or
settings errors. Heavy imports happen inside handlers, so ``hearth --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine.errors import HearthError, SettingsError

COMMAND_MODULES: tuple[str, ...] = (
    "engine.repos.commands",        # validate, schema export, tenant create
    "engine.db.commands",           # db migrate, user create, appliance register/rotate/revoke
    "api.commands",                 # serve
    "engine.appliances.commands",   # appliance-image build, appliance-sim up
    "engine.reconcile.commands",    # worker
    "engine.client.commands",       # login, app list|get|diff|sync
    "engine.pulls.commands",        # token create|list|revoke, pr list|show|create|diff|...
    "engine.audit.commands",        # history, audit [--jsonl]
    "engine.assistant.commands",    # support ask|list|show|worker
    "engine.llm.commands",          # llm serve
    "engine.demo",                  # demo (the README's run command)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearth",
        description="GitOps control plane for small-office and home server appliances.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # a missing dependency inside the module, not a missing area
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SettingsError as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return 2
    except HearthError as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
