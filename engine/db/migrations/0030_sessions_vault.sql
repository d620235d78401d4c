-- Issue 16: sessions that end when they should, and per-tenant vault passwords.
--
-- people.token_version: every access token carries the version it was issued
-- at; changing or resetting a password, or disabling the person, increments it,
-- so every earlier token (and refresh token) stops at the next request.
ALTER TABLE people ADD COLUMN token_version integer NOT NULL DEFAULT 0;

-- One row per login: the refresh token's HMAC (rotated on every refresh; the
-- one before is kept so a replayed, stolen refresh token revokes the session).
CREATE TABLE sessions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id      bigint NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    token_version  integer NOT NULL,
    refresh_hash   bytea NOT NULL UNIQUE,
    previous_hash  bytea UNIQUE,
    source         text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    refreshed_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz
);
CREATE INDEX sessions_person ON sessions (person_id);

-- Access tokens ended by logout before their expiry (jti), kept until they expire.
CREATE TABLE revoked_access_tokens (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

-- Per-tenant ansible-vault passwords, encrypted under the key-encryption key
-- (HEARTH_VAULT_KEK). The newest row is the tenant's password; older rows are
-- still accepted until accept_until (the transition after a rotation).
CREATE TABLE tenant_vault_passwords (
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version       integer NOT NULL CHECK (version >= 1),
    ciphertext    bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    accept_until  timestamptz,
    PRIMARY KEY (tenant_id, version)
);
