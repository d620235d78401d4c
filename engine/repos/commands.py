"""CLI: ``hearth validate``, ``hearth schema export`` and ``hearth tenant create``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "example-config-repo"


def register(subparsers: argparse._SubParsersAction) -> None:
    validate = subparsers.add_parser(
        "validate", help="validate a tenant repo (work tree, or a bare/normal repo at --rev)")
    validate.add_argument("path", metavar="PATH_OR_REPO", type=Path)
    validate.add_argument("--rev", help="commit id, branch name or refs/heads/<name> "
                                        "(a bare repository defaults to main)")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.set_defaults(handler=_validate)

    schema = subparsers.add_parser("schema", help="JSON Schemas of the config documents")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    export = schema_sub.add_parser("export", help="write one JSON Schema per document kind")
    export.add_argument("directory", metavar="DIR", type=Path)
    export.set_defaults(handler=_schema_export)

    tenant = subparsers.add_parser("tenant", help="manage tenants")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    create = tenant_sub.add_parser(
        "create", help="create a tenant and its repo whose first commit is DIR")
    create.add_argument("name")
    create.add_argument("--from", dest="source", type=Path, default=EXAMPLE_REPO,
                        help="directory for the first commit (default: the example repo)")
    create.add_argument("--display-name", help="defaults to tenant.yaml's display_name")
    create.add_argument("--vault-password-stdin", action="store_true",
                        help="read the password the repo's vault values are encrypted with "
                             "(default: generate the tenant's own and print it once)")
    create.set_defaults(handler=_tenant_create)
    rotate = tenant_sub.add_parser(
        "rotate-vault", help="give a tenant a new vault password; the old one is accepted "
                             "for a transition period while its repo is re-encrypted")
    rotate.add_argument("name")
    rotate.add_argument("--transition-days", type=float, default=7.0)
    rotate.set_defaults(handler=_tenant_rotate_vault)
    show = tenant_sub.add_parser("vault-password", help="print a tenant's current vault "
                                                        "password (to encrypt values with)")
    show.add_argument("name")
    show.set_defaults(handler=_tenant_vault_password)


def _validate(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    import pygit2

    from engine.errors import ConfigError
    from engine.repos.reader import SnapshotReader, resolve_revision, validate_worktree

    path: Path = args.path
    reader = SnapshotReader()
    rev = cli_revision(args.rev, bare=_is_bare(path))
    try:
        if rev is not None:
            repo = pygit2.Repository(str(path))
            commit = resolve_revision(repo, rev)
            snapshot = reader.load(repo, commit, tenant=path.resolve().name)
        else:
            snapshot = validate_worktree(path, reader=reader)
    except ConfigError as exc:
        if args.format == "json":
            json.dump({"valid": False, "issues": [i.as_dict() for i in exc.issues]},
                      sys.stdout, indent=2)
            print()
        else:
            for issue in exc.issues:
                print(issue)
            print(f"{len(exc.issues)} problem(s) found", file=sys.stderr)
        return 1
    except pygit2.GitError as exc:
        print(f"hearth: {path}: not a git repository ({exc})", file=sys.stderr)
        return 2
    if args.format == "json":
        json.dump({"valid": True, "commit": snapshot.commit if rev else None,
                   "appliances": snapshot.appliance_names(), "issues": []}, sys.stdout, indent=2)
        print()
    else:
        print(f"ok: {len(snapshot.appliance_names())} appliance(s) valid")
    return 0


def _is_bare(path: Path) -> bool:
    # imported when the command runs: keeps `hearth --help` fast
    import pygit2

    try:
        return pygit2.Repository(str(path)).is_bare
    except pygit2.GitError:
        return False


def cli_revision(rev: str | None, *, bare: bool) -> str | None:
    """What a person types to what ``resolve_revision`` accepts: a bare repository (no work
    tree to read) defaults to ``main``, and a branch name ``main`` means ``refs/heads/main``."""
    if rev is None:
        return "refs/heads/main" if bare else None
    if rev.startswith("refs/") or (len(rev) == 40 and all(c in "0123456789abcdef" for c in rev)):
        return rev
    return f"refs/heads/{rev}"


def _schema_export(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    from schemas.config import json_schemas

    directory: Path = args.directory
    directory.mkdir(parents=True, exist_ok=True)
    for kind, schema in json_schemas().items():
        target = directory / f"{kind.lower()}.json"
        target.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        print(target)
    return 0


def _tenant_create(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    import asyncio

    from engine.settings import load_settings
    from engine.tenants import create_tenant

    settings = load_settings()
    password = sys.stdin.readline().rstrip("\n") if args.vault_password_stdin else None
    result = asyncio.run(create_tenant(
        settings, name=args.name, source=args.source, display_name=args.display_name,
        requested_by="hearth-cli", vault_password=password))
    print(f"tenant {result.name} created: repo {result.repo_path}, main at {result.commit}")
    if password is None:
        print(f"vault password (encrypt the tenant's values with it; "
              f"'hearth tenant vault-password {result.name}' prints it again):\n"
              f"{result.vault_password}")
    return 0


def _tenant_rotate_vault(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    import asyncio
    from datetime import timedelta

    from engine import tenant_vault
    from engine.settings import load_settings

    password = asyncio.run(tenant_vault.rotate_tenant(
        load_settings(), tenant=args.name, transition=timedelta(days=args.transition_days)))
    print(f"tenant {args.name}: new vault password (the previous one is accepted for "
          f"{args.transition_days:g} more days; re-encrypt the repo's values with this):\n"
          f"{password}")
    return 0


def _tenant_vault_password(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    import asyncio

    from engine import tenant_vault
    from engine.settings import load_settings

    print(asyncio.run(tenant_vault.current_password(load_settings(), tenant=args.name)))
    return 0
