"""Per-tenant ansible-vault passwords: generated, stored encrypted, rotated, used.

One global ``ANSIBLE_VAULT_PASSWORD`` used to decrypt every tenant's vault
values, so one leaked tenant repo plus that password exposed all tenants.
Now each tenant has its own password:

- generated at ``hearth tenant create`` (or given on stdin for a repo whose
  values are already encrypted, as the demo does with its demo password);
- stored in ``tenant_vault_passwords`` encrypted with AES-256-GCM under the
  key-encryption key (``HEARTH_VAULT_KEK``; when unset, a key derived from
  ``SECRET_KEY``), the tenant id and version bound in as associated data so
  a row cannot be moved to another tenant;
- rotated with ``hearth tenant rotate-vault``: a new password becomes the
  tenant's, the old ones stay accepted for a transition period while the
  repo's values are re-encrypted (nothing in git is touched by Hearth);
- used by the reconciler only (``passwords_for``, newest first): a value that
  no accepted password opens is a permanent failure, as before. A tenant with
  no stored password (created before this) falls back to the global password.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.db import tenants
from engine.db import vault as vault_db
from engine.db.pool import create_pool
from engine.errors import InvalidInputError, NotFoundError
from engine.execution.extravars import decrypt_vault_value
from engine.settings import Settings

DEFAULT_TRANSITION = timedelta(days=7)


def _kek(settings: Settings) -> bytes:
    material = settings.vault_kek or settings.secret_key
    return hashlib.sha256(b"hearth-vault-kek\x00" + material.encode()).digest()


def _aad(tenant_id: int, version: int) -> bytes:
    return f"hearth-tenant-vault:{tenant_id}:{version}".encode()


def seal(settings: Settings, *, tenant_id: int, version: int, password: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_kek(settings)).encrypt(nonce, password.encode(),
                                                  _aad(tenant_id, version))


def unseal(settings: Settings, *, tenant_id: int, version: int, ciphertext: bytes) -> str:
    return AESGCM(_kek(settings)).decrypt(ciphertext[:12], ciphertext[12:],
                                          _aad(tenant_id, version)).decode()


def new_password() -> str:
    return secrets.token_urlsafe(32)


async def _tenant_id(conn: asyncpg.Connection, tenant: str) -> int:
    row = await tenants.get_tenant_by_name(conn, tenant)
    if row is None:
        raise NotFoundError(f"tenant {tenant!r} not found")
    return row["id"]


async def store_initial(conn: asyncpg.Connection, settings: Settings, *, tenant_id: int,
                        password: str | None = None) -> str:
    """Give a new tenant its password (``password`` or a generated one); returns it."""
    password = password or new_password()
    version = await vault_db.next_version(conn, tenant_id)
    await vault_db.add_password(conn, tenant_id=tenant_id, version=version,
                                ciphertext=seal(settings, tenant_id=tenant_id, version=version,
                                                password=password))
    return password


async def rotate(conn: asyncpg.Connection, settings: Settings, *, tenant: str,
                 transition: timedelta = DEFAULT_TRANSITION) -> str:
    """A new password for ``tenant``; the ones before stay accepted for ``transition``."""
    async with conn.transaction():
        tenant_id = await _tenant_id(conn, tenant)
        await vault_db.retire_current(conn, tenant_id=tenant_id, transition=transition)
        return await store_initial(conn, settings, tenant_id=tenant_id)


async def passwords_for(conn: asyncpg.Connection, settings: Settings, *,
                        tenant: str) -> list[str]:
    """The passwords ``tenant``'s vault values may be encrypted with now, newest first."""
    rows = await vault_db.accepted(conn, tenant=tenant)
    if not rows:
        return [settings.ansible_vault_password]  # a tenant from before per-tenant passwords
    return [unseal(settings, tenant_id=r["tenant_id"], version=r["version"],
                   ciphertext=r["ciphertext"]) for r in rows]


def decrypt_with(value: str, passwords: Sequence[str]) -> str:
    """Decrypt one vault value with the first of ``passwords`` that opens it."""
    for password in passwords[:-1]:
        try:
            return decrypt_vault_value(value, password)
        except InvalidInputError:
            continue
    return decrypt_vault_value(value, passwords[-1])


async def rotate_tenant(settings: Settings, *, tenant: str,
                        transition: timedelta = DEFAULT_TRANSITION) -> str:
    """``rotate`` on a pool of its own (``hearth tenant rotate-vault``)."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            return await rotate(conn, settings, tenant=tenant, transition=transition)
    finally:
        await pool.close()


async def current_password(settings: Settings, *, tenant: str) -> str:
    """The password to encrypt ``tenant``'s new values with (``hearth tenant vault-password``)."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await _tenant_id(conn, tenant)  # NotFoundError for a tenant that does not exist
            return (await passwords_for(conn, settings, tenant=tenant))[0]
    finally:
        await pool.close()
