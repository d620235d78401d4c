from __future__ import annotations

import pytest

from engine.errors import SettingsError
from engine.settings import ENV_VARS, load_settings

GOOD = {
    "DATABASE_URL": "postgresql://hearth:pw@db:5432/hearth",
    "REDIS_URL": "redis://redis:6379/0",
    "OLLAMA_API_URL": "http://ollama:11434/",
    "SECRET_KEY": "k" * 32,
    "JWT_SECRET": "j" * 32,
    "ANSIBLE_VAULT_PASSWORD": "v" * 16,
    "REPOS_DIR": "/var/lib/hearth/repos",
}


def test_good_environment_loads_with_defaults() -> None:
    settings = load_settings(GOOD)
    assert settings.ollama_api_url == "http://ollama:11434"
    assert settings.ollama_model == "llama3.2:3b"
    assert "k" * 32 not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("DATABASE_URL", "mysql://x/y", "must look like postgresql://"),
        ("REDIS_URL", "localhost:6379", "must look like redis://"),
        ("OLLAMA_API_URL", "ollama:11434", "http(s) URL"),
        ("SECRET_KEY", "k" * 31, "at least 32"),
        ("ANSIBLE_VAULT_PASSWORD", "short", "at least 16"),
        ("REPOS_DIR", "relative/repos", "absolute"),
        ("HEARTH_LOG_LEVEL", "LOUD", "one of"),
    ],
)
def test_malformed_values_are_named(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**GOOD, name: value})
    assert any(p.startswith(name) and words in p for p in info.value.problems)


def test_every_missing_variable_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({})
    missing = {p.split()[0] for p in info.value.problems}
    assert missing == {"DATABASE_URL", "REDIS_URL", "OLLAMA_API_URL", "SECRET_KEY", "JWT_SECRET",
                       "ANSIBLE_VAULT_PASSWORD", "REPOS_DIR"}
    assert set(ENV_VARS) >= missing
