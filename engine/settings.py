"""Hearth's settings: one typed object read from the environment.

The names are the seed's (DATABASE_URL, REDIS_URL, OLLAMA_API_URL, OLLAMA_MODEL,
SECRET_KEY, JWT_SECRET, ANSIBLE_VAULT_PASSWORD) plus Hearth's own. Every field
has a one-line docstring; ``load_settings`` checks them all at once and raises
``SettingsError`` listing every missing or malformed variable, so an operator
fixes a deployment in one pass instead of one restart per mistake.

``ENV_VARS`` is the list of variables the code reads; the deployment tests
check that docker-compose and the Kubernetes ConfigMap/Secret set each one.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import SettingsError

DEFAULT_HEARTBEAT_INTERVAL = timedelta(seconds=30)
"""What ``HEARTH_HEARTBEAT_INTERVAL`` is when unset."""

_SECRET_MIN_LENGTH = 16
_KEY_MIN_LENGTH = 32
"""HMAC keys (JWT_SECRET, SECRET_KEY) need at least the hash's 32 bytes (RFC 7518 3.2)."""


class Settings(BaseModel):
    """Everything Hearth reads from its environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str = Field(alias="DATABASE_URL")
    """PostgreSQL DSN, postgresql://user:pass@host:port/db."""
    redis_url: str = Field(alias="REDIS_URL")
    """Redis URL, redis://host:port/db."""
    ollama_api_url: str = Field(alias="OLLAMA_API_URL")
    """Base URL of the Ollama HTTP API."""
    ollama_model: str = Field(default="llama3.2:3b", alias="OLLAMA_MODEL")
    """Model name the assistant asks Ollama for."""
    secret_key: str = Field(alias="SECRET_KEY", repr=False)
    """Key for hashing appliance tokens and signing internal values."""
    jwt_secret: str = Field(alias="JWT_SECRET", repr=False)
    """HMAC key for people's JWTs."""
    ansible_vault_password: str = Field(alias="ANSIBLE_VAULT_PASSWORD", repr=False)
    """Password that decrypts ansible-vault values in tenant repos."""
    repos_dir: Path = Field(alias="REPOS_DIR")
    """Directory holding one bare git repository per tenant."""
    data_dir: Path = Field(default=Path("/var/lib/hearth"), alias="HEARTH_DATA_DIR")
    """Working directory for Ansible runs, appliance images and roots."""
    api_url: str = Field(default="http://127.0.0.1:8000", alias="HEARTH_API_URL")
    """URL at which appliances and the CLI reach the API."""
    log_level: str = Field(default="INFO", alias="HEARTH_LOG_LEVEL")
    """Python logging level name."""
    heartbeat_interval_seconds: float = Field(
        default=DEFAULT_HEARTBEAT_INTERVAL.total_seconds(), gt=0, le=3600,
        alias="HEARTH_HEARTBEAT_INTERVAL")
    """Seconds between an agent's heartbeats: the agent is told it, the API acknowledges with
    it, and an appliance silent for three intervals is Missing."""

    trusted_proxies: str = Field(default="none", alias="HEARTH_TRUSTED_PROXIES")
    """Comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For
    the API believes ("none": it believes no one and uses the connection's address)."""
    vault_kek: str | None = Field(default=None, alias="HEARTH_VAULT_KEK", repr=False)
    """Key-encryption key for the per-tenant vault passwords stored in PostgreSQL (at least
    32 characters); when unset, a key derived from SECRET_KEY is used."""

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``trusted_proxies`` parsed (empty for "none")."""
        if self.trusted_proxies.strip().lower() in {"", "none"}:
            return ()
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in self.trusted_proxies.split(",") if part.strip())

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        if value.strip().lower() in {"", "none"}:
            return "none"
        for part in value.split(","):
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not an address or network; "
                                 "use e.g. 10.0.0.0/8,192.0.2.7 or none") from None
        return value

    @field_validator("vault_kek")
    @classmethod
    def _check_kek(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) < _KEY_MIN_LENGTH:
            raise ValueError(f"must be at least {_KEY_MIN_LENGTH} characters")
        return value

    @property
    def heartbeat_interval(self) -> timedelta:
        return timedelta(seconds=self.heartbeat_interval_seconds)

    @property
    def agent_interval_seconds(self) -> int:
        """The interval in whole seconds, as the agent's timer and the acknowledgement say it."""
        return max(1, int(self.heartbeat_interval_seconds))

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"postgres", "postgresql"} or (not parts.hostname and not parts.path):
            raise ValueError("must look like postgresql://user:pass@host:5432/dbname")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must look like redis://host:6379/0")
        return value

    @field_validator("ollama_api_url", "api_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://localhost:11434")
        return value.rstrip("/")

    @field_validator("secret_key", "jwt_secret")
    @classmethod
    def _check_key(cls, value: str) -> str:
        if len(value.encode()) < _KEY_MIN_LENGTH:
            raise ValueError(f"must be at least {_KEY_MIN_LENGTH} characters (an HMAC-SHA256 key)")
        return value

    @field_validator("ansible_vault_password")
    @classmethod
    def _check_secret(cls, value: str) -> str:
        if len(value) < _SECRET_MIN_LENGTH:
            raise ValueError(f"must be at least {_SECRET_MIN_LENGTH} characters")
        return value

    @field_validator("repos_dir", "data_dir")
    @classmethod
    def _check_absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()


ENV_VARS: tuple[str, ...] = tuple(
    field.alias for field in Settings.model_fields.values() if field.alias is not None
)
"""Every environment variable Hearth reads."""


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``); report every fault at once."""
    source = os.environ if environ is None else environ
    values = {name: source[name] for name in ENV_VARS if source.get(name, "") != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            if error["type"] == "missing":
                problems.append(f"{name} is not set")
            else:
                message = error["msg"].removeprefix("Value error, ")
                problems.append(f"{name} {message}")
        raise SettingsError(problems) from None
