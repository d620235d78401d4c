"""SQL for people's sessions: refresh tokens, revoked access tokens, token versions.

A login opens a session whose refresh token (``hth_rt_`` + 32 random bytes;
only its HMAC is stored, as for every other token) buys a new short-lived
access token and a new refresh token; the old refresh token is kept as
``previous_hash`` so that presenting it again, which only a thief or a
replaying client would do, revokes the session. A session is bound to the
person's ``token_version`` at login: a password change or a disable bumps the
version and every session and access token issued before stops.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from engine.db.appliances import hash_token

REFRESH_PREFIX = "hth_rt_"


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


async def open_session(conn: asyncpg.Connection, *, person_id: int, token_version: int,
                       lifetime_seconds: int, source: str, secret_key: str
                       ) -> tuple[uuid.UUID, str]:
    """A new session; returns (session id, refresh token)."""
    token = new_refresh_token()
    session_id = await conn.fetchval(
        """INSERT INTO sessions (person_id, token_version, refresh_hash, source, expires_at)
           VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING id""",
        person_id, token_version, hash_token(secret_key, token), source[:200],
        float(lifetime_seconds))
    return session_id, token


async def refresh_session(conn: asyncpg.Connection, *, token: str, secret_key: str
                          ) -> tuple[dict[str, Any] | None, str | None]:
    """Rotate the refresh token of a live session: (session with person's id and version,
    new refresh token), or (None, None) when the token buys nothing. A token that was
    already rotated away revokes its session."""
    token_hash = hash_token(secret_key, token)
    new = new_refresh_token()
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE sessions s
                  SET previous_hash = s.refresh_hash, refresh_hash = $2, refreshed_at = now()
                 FROM people p
                WHERE s.refresh_hash = $1 AND p.id = s.person_id
                  AND s.revoked_at IS NULL AND s.expires_at > now()
                  AND NOT p.disabled AND p.token_version = s.token_version
            RETURNING s.id, s.person_id, s.token_version""",
            token_hash, hash_token(secret_key, new))
        if row is None:
            await conn.execute(
                "UPDATE sessions SET revoked_at = now() "
                "WHERE previous_hash = $1 AND revoked_at IS NULL", token_hash)
            return None, None
    return dict(row), new


async def end_session(conn: asyncpg.Connection, *, session_id: uuid.UUID | None, jti: str | None,
                      person_id: int, expires_at: datetime) -> None:
    """Logout: the session (if the token names one) and the access token itself."""
    if session_id is not None:
        await conn.execute(
            "UPDATE sessions SET revoked_at = now() "
            "WHERE id = $1 AND person_id = $2 AND revoked_at IS NULL", session_id, person_id)
    if jti:
        await conn.execute(
            """INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)
               ON CONFLICT (jti) DO NOTHING""", jti, expires_at)
        await conn.execute("DELETE FROM revoked_access_tokens WHERE expires_at < now() - "
                           "interval '1 hour'")
