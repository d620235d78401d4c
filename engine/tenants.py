"""Creating a tenant: its row in PostgreSQL and its bare repository, together.

The source directory is validated first, so a tenant is never created from a
repo that would not apply. The row is inserted inside a transaction that
commits only after the repository exists; if creating the repository fails,
the row is rolled back, and if the commit of the row fails, the repository is
removed. Either both exist or neither does.

It sits at the top of ``engine`` because it is the one place that writes to
git and PostgreSQL together: ``engine.repos`` and ``engine.db`` never import
each other (``docs/architecture.md``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from engine import tenant_vault
from engine.db import tenants
from engine.db.pool import create_pool
from engine.errors import ConflictError
from engine.repos.reader import SnapshotReader, validate_worktree
from engine.repos.store import RepoStore, check_tenant_name, signature
from engine.settings import Settings


@dataclass(frozen=True, slots=True)
class CreatedTenant:
    name: str
    repo_path: Path
    commit: str
    vault_password: str
    """The tenant's own ansible-vault password (``engine.tenant_vault``), shown once."""


async def create_tenant(settings: Settings, *, name: str, source: Path,
                        display_name: str | None, requested_by: str,
                        vault_password: str | None = None) -> CreatedTenant:
    """Row, vault password and repository together; ``vault_password`` is the password the
    source's vault values are encrypted with (None: a new one is generated)."""
    check_tenant_name(name)
    snapshot = validate_worktree(source, reader=SnapshotReader())
    title = display_name or snapshot.config.tenant.spec.display_name
    store = RepoStore(settings.repos_dir)
    if store.exists(name):
        raise ConflictError(f"tenant {name!r} already has a repository at {store.path(name)}")
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if await tenants.get_tenant_by_name(conn, name) is not None:
                raise ConflictError(f"tenant {name!r} already exists")
            row = await tenants.insert_tenant(conn, name=name, display_name=title)
            password = await tenant_vault.store_initial(conn, settings, tenant_id=row["id"],
                                                        password=vault_password)
            author = signature(requested_by, f"{requested_by}@hearth.invalid")
            try:
                commit = store.create(name, source, author=author)
            except BaseException:
                shutil.rmtree(store.path(name), ignore_errors=True)
                raise
    except BaseException:
        # The row rolled back; make sure no orphan repository is left either.
        if store.exists(name) and not await _row_exists(pool, name):
            shutil.rmtree(store.path(name), ignore_errors=True)
        raise
    finally:
        await pool.close()
    return CreatedTenant(name=name, repo_path=store.path(name), commit=commit,
                         vault_password=password)


async def _row_exists(pool, name: str) -> bool:
    async with pool.acquire() as conn:
        return await tenants.get_tenant_by_name(conn, name) is not None
