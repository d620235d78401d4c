"""Issue 16, class 7: per-tenant vault passwords, and no vault ciphertext in the views
auditors and customers get.

On real PostgreSQL (the API tests' database) and real ansible-vault encryption.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import asyncpg
import pytest
from ansible.parsing.vault import VaultLib, VaultSecret
from cryptography.exceptions import InvalidTag

from api.routes.pulls import redact_vault_lines
from engine import tenant_vault
from engine.errors import InvalidInputError
from engine.tenants import create_tenant
from tests.api.conftest import APPLIANCE, ROOT

HASH = "$6$saltsalt$" + "x" * 86


def _encrypt(password: str, plain: str = HASH) -> str:
    return VaultLib([("default", VaultSecret(password.encode()))]).encrypt(plain).decode()


async def _passwords(settings, tenant: str) -> list[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await tenant_vault.passwords_for(conn, settings, tenant=tenant)
    finally:
        await conn.close()


async def test_a_new_tenant_gets_its_own_password_stored_encrypted(settings, world) -> None:
    name = f"vt-{secrets.token_hex(4)}"
    created = await create_tenant(settings, name=name, source=ROOT / "example-config-repo",
                                  display_name=None, requested_by="test")
    assert len(created.vault_password) >= 40
    assert created.vault_password != settings.ansible_vault_password
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            """SELECT v.version, v.ciphertext, v.accept_until FROM tenant_vault_passwords v
                 JOIN tenants t ON t.id = v.tenant_id WHERE t.name = $1""", name)
    finally:
        await conn.close()
    assert [(r["version"], r["accept_until"]) for r in rows] == [(1, None)]
    assert created.vault_password.encode() not in rows[0]["ciphertext"]
    assert await _passwords(settings, name) == [created.vault_password]
    # the tenant's values open with its password; the global one no longer opens them
    passwords = await _passwords(settings, name)
    assert tenant_vault.decrypt_with(_encrypt(created.vault_password), passwords) == HASH
    with pytest.raises(InvalidInputError):
        tenant_vault.decrypt_with(_encrypt(settings.ansible_vault_password), passwords)
    # another key-encryption key cannot open the stored password
    other = settings.model_copy(update={"vault_kek": "another-kek-0123456789abcdefghijklmnop"})
    with pytest.raises(InvalidTag):
        await _passwords(other, name)


async def test_rotation_accepts_both_passwords_for_the_transition_only(settings, world) -> None:
    name = f"vt-{secrets.token_hex(4)}"
    created = await create_tenant(settings, name=name, source=ROOT / "example-config-repo",
                                  display_name=None, requested_by="test",
                                  vault_password="the-password-the-repo-uses-0001")
    assert created.vault_password == "the-password-the-repo-uses-0001"
    old_value = _encrypt("the-password-the-repo-uses-0001")
    conn = await asyncpg.connect(settings.database_url)
    try:
        new = await tenant_vault.rotate(conn, settings, tenant=name,
                                        transition=timedelta(days=7))
        assert await tenant_vault.passwords_for(conn, settings, tenant=name) == [
            new, "the-password-the-repo-uses-0001"]
        both = await tenant_vault.passwords_for(conn, settings, tenant=name)
        assert tenant_vault.decrypt_with(old_value, both) == HASH
        assert tenant_vault.decrypt_with(_encrypt(new), both) == HASH
        # a second rotation with no transition: only the newest password is accepted
        newest = await tenant_vault.rotate(conn, settings, tenant=name,
                                           transition=timedelta(0))
        only = await tenant_vault.passwords_for(conn, settings, tenant=name)
    finally:
        await conn.close()
    assert only == [newest]
    with pytest.raises(InvalidInputError):
        tenant_vault.decrypt_with(old_value, only)


async def test_a_tenant_from_before_falls_back_to_the_global_password(settings, world) -> None:
    # the API fixtures insert tenants directly, as the tenants of an older install were
    assert await _passwords(settings, "acme") == [settings.ansible_vault_password]


@pytest.mark.parametrize("who,redacted", [("operator", False), ("admin", False),
                                          ("appliance", False), ("auditor", True)])
async def test_config_views_of_auditors_carry_no_vault_ciphertext(client, world, who,
                                                                 redacted) -> None:
    response = await client.get(
        f"/api/v1/appliance/{world.appliance_ids['acme/' + APPLIANCE]}/config",
        headers=world.auth(who))
    assert response.status_code == 200, response.text
    assert ("$ANSIBLE_VAULT;1.1;AES256" in response.text) is not redacted
    assert ("$ANSIBLE_VAULT;redacted" in response.text) is redacted


def test_pull_diffs_for_auditors_and_customers_lose_the_ciphertext_lines() -> None:
    patch = ("@@ -1,4 +1,4 @@\n     password: !vault |\n       $ANSIBLE_VAULT;1.1;AES256\n"
             "-      6134353235\n-      3132333435363738396162636465\n"
             "+      3132333435363738396162636466\n+      6162636465666768696a6b6c6d6e\n"
             "   shell: /bin/bash")
    assert redact_vault_lines(patch) == (
        "@@ -1,4 +1,4 @@\n     password: !vault |\n       $ANSIBLE_VAULT;1.1;AES256\n"
        "-      <vault ciphertext redacted>\n"
        "+      <vault ciphertext redacted>\n   shell: /bin/bash")
