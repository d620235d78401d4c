"""``hearth db migrate``, ``hearth user create`` and ``hearth appliance register|rotate|revoke``.

These talk to PostgreSQL directly, so they work before the API runs (the
first admin is made here). A new or rotated appliance token is printed once
on stdout and is not recoverable afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from engine.errors import InvalidInputError
from schemas.address import check_management_address


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    migrate = db_sub.add_parser("migrate", help="apply pending SQL migrations")
    migrate.set_defaults(handler=_migrate)

    user = subparsers.add_parser("user", help="people who use Hearth")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = user_sub.add_parser("create", help="create a user (the first admin, say)")
    create.add_argument("username")
    create.add_argument("--admin", action="store_true", help="platform-wide administrator")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from stdin instead of prompting")
    create.set_defaults(handler=_user_create)

    app = subparsers.add_parser("appliance", help="appliance registration and tokens")
    app_sub = app.add_subparsers(dest="appliance_command", required=True, metavar="ACTION")
    reg = app_sub.add_parser("register", help="create an appliance and print its token once")
    reg.add_argument("tenant")
    reg.add_argument("name")
    reg.add_argument("--hostname", help="the box's own name (informational)")
    reg.add_argument("--address", type=_address,
                     help="management address Ansible connects to (IP address or DNS name)")
    reg.set_defaults(handler=_appliance_register)
    addr = app_sub.add_parser("address", help="set or clear the management address Ansible "
                                              "connects to")
    addr.add_argument("tenant")
    addr.add_argument("name")
    addr_value = addr.add_mutually_exclusive_group(required=True)
    addr_value.add_argument("address", nargs="?", type=_address)
    addr_value.add_argument("--clear", action="store_true")
    addr.set_defaults(handler=_appliance_address)
    for action, text in (("rotate", "revoke live tokens and print a new one"),
                         ("revoke", "revoke every live token")):
        p = app_sub.add_parser(action, help=text)
        p.add_argument("tenant")
        p.add_argument("name")
        p.set_defaults(handler=_appliance_rotate if action == "rotate" else _appliance_revoke)


def _run(body: Callable[[Any, Any], Awaitable[int]]) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    from engine.settings import load_settings

    settings = load_settings()

    async def main() -> int:
        # imported when the command runs: keeps `hearth --help` fast
        from engine.db.pool import connect

        conn = await connect(settings.database_url)
        try:
            return await body(conn, settings)
        finally:
            await conn.close()

    return asyncio.run(main())


def _migrate(args: argparse.Namespace) -> int:
    async def body(conn: Any, settings: Any) -> int:
        # imported when the command runs: keeps `hearth --help` fast
        from engine.db.migrate import apply_migrations

        applied = await apply_migrations(settings.database_url)
        print("\n".join(f"applied {n}" for n in applied) or "database is up to date")
        return 0

    return _run(body)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise InvalidInputError("passwords differ")
    if len(password) < 12:
        raise InvalidInputError("password must be at least 12 characters")
    return password


async def _audit_cli(conn: Any, action: str, target: str, details: dict[str, Any], *,
                     tenant_id: int | None = None) -> None:
    """An audit event for a change made from this machine's shell (actor: the Unix user)."""
    # imported when the command runs: keeps `hearth --help` fast
    from engine.db import audit

    await audit.record(conn, actor_kind="system", actor_id=f"cli:{os.getuid()}",
                       tenant_id=tenant_id, action=action, outcome="success",
                       target=target, details=details)


def _user_create(args: argparse.Namespace) -> int:
    password = _read_password(args)

    async def body(conn: Any, settings: Any) -> int:
        # imported when the command runs: keeps `hearth --help` fast
        from engine.db import people

        person = await people.insert_person(
            conn, username=args.username, password=password, is_admin=args.admin)
        await _audit_cli(conn, "user.create", f"user:{person['id']}", {"is_admin": args.admin})
        print(f"created user {person['username']} (id {person['id']})")
        return 0

    return _run(body)


async def _appliance(conn: Any, tenant: str, name: str) -> dict[str, Any]:
    # imported when the command runs: keeps `hearth --help` fast
    from engine.db import appliances, tenants

    row = await tenants.require_tenant(conn, tenant)
    return await appliances.get_appliance_by_name(conn, tenant_id=row["id"], name=name)


def _appliance_register(args: argparse.Namespace) -> int:
    async def body(conn: Any, settings: Any) -> int:
        # imported when the command runs: keeps `hearth --help` fast
        from engine.db import appliances, tenants

        tenant = await tenants.require_tenant(conn, args.tenant)
        appliance, token = await appliances.register_appliance(
            conn, tenant_id=tenant["id"], name=args.name, hostname=args.hostname,
            address=args.address, secret_key=settings.secret_key)
        await _audit_cli(conn, "appliance.token.issue", f"appliance:{appliance['id']}",
                         {"hint": token[-4:]}, tenant_id=tenant["id"])
        print(f"appliance {args.tenant}/{args.name} id {appliance['id']}", file=sys.stderr)
        print(token)
        return 0

    return _run(body)


def _appliance_rotate(args: argparse.Namespace) -> int:
    async def body(conn: Any, settings: Any) -> int:
        # imported when the command runs: keeps `hearth --help` fast
        from engine.db import appliances

        appliance = await _appliance(conn, args.tenant, args.name)
        token = await appliances.rotate_token(
            conn, appliance_id=appliance["id"], secret_key=settings.secret_key)
        await _audit_cli(conn, "appliance.token.rotate", f"appliance:{appliance['id']}",
                         {"hint": token[-4:]}, tenant_id=appliance["tenant_id"])
        print(token)
        return 0

    return _run(body)


def _address(value: str) -> str:
    try:
        return check_management_address(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _appliance_address(args: argparse.Namespace) -> int:
    async def body(conn: Any, settings: Any) -> int:
        # imported when the command runs: keeps `hearth --help` fast
        from engine.db import appliances

        appliance = await _appliance(conn, args.tenant, args.name)
        address = None if args.clear else args.address
        await appliances.set_address(conn, appliance_id=appliance["id"], address=address)
        await _audit_cli(conn, "appliance.address.set", f"appliance:{appliance['id']}",
                         {"old": appliance["address"], "new": address},
                         tenant_id=appliance["tenant_id"])
        print(f"{args.tenant}/{args.name}: address {address or '(none)'}")
        return 0

    return _run(body)


def _appliance_revoke(args: argparse.Namespace) -> int:
    async def body(conn: Any, settings: Any) -> int:
        # imported when the command runs: keeps `hearth --help` fast
        from engine.db import appliances

        appliance = await _appliance(conn, args.tenant, args.name)
        count = await appliances.revoke_tokens(conn, appliance_id=appliance["id"])
        await _audit_cli(conn, "appliance.token.revoke", f"appliance:{appliance['id']}",
                         {"revoked": count}, tenant_id=appliance["tenant_id"])
        print(f"revoked {count} token(s) of {args.tenant}/{args.name}")
        return 0

    return _run(body)
