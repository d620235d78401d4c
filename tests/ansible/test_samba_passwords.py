"""Samba passwords from vault values: who gets one, what is refused, the NT hash, where it goes.

Vault values are made and decrypted with ansible's own VaultLib, as the engine does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.errors import InvalidInputError
from engine.execution.extravars import (
    SAMBA_PASSWORD_MAX_BYTES,
    Secrets,
    appliance_vars,
    decrypt_vault_value,
    nt_hash,
    samba_passwords,
)
from schemas.config import DesiredAppliance

from .desired import appliance_data
from .helpers import VAULT_PASSWORD, vault

ALICE = "alice-smb-Pa55:word"
BOB = "Grüße aus Köln 😀"


def _decrypt(value: str) -> str:
    return decrypt_vault_value(value, VAULT_PASSWORD)


def _desired(**samba_passwords: str) -> DesiredAppliance:
    """The literal appliance (alice in group finance, bob named by share scratch) plus
    carol, who is in no share's group, and dave, who is absent; ``samba_passwords`` by name."""
    data = appliance_data()
    data["users"]["users"] += [
        {"name": "carol", "uid": 2102, "full_name": "Carol", "groups": []},
        {"name": "dave", "uid": 2103, "full_name": "Dave", "state": "absent"},
    ]
    for user in data["users"]["users"]:
        if user["name"] in samba_passwords:
            user["samba_password"] = vault(samba_passwords[user["name"]])
    return DesiredAppliance.model_validate(data)


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        pytest.param("password", "8846f7eaee8fb117ad06bdd830b7586c", id="password"),
        pytest.param("", "31d6cfe0d16ae931b73c59d7e0c089c0", id="empty"),
        # Samba's own: smbpasswd -s set this password in an appliance root, pdbedit -L -w
        # printed the hash (upper case there).
        pytest.param(BOB, "0f085abdc849bc79b06ebeb983a52f59", id="utf16-surrogate-pair"),
    ],
)
def test_nt_hash_vectors(password: str, expected: str) -> None:
    assert nt_hash(password) == expected


def test_users_with_a_samba_account_and_a_vault_value_get_their_password() -> None:
    desired = _desired(alice=ALICE, bob=BOB, carol="carol-pw", dave="dave-pw")
    # carol is in no share's group and no share names her; dave is absent.
    assert samba_passwords(desired, _decrypt) == {"alice": ALICE, "bob": BOB}


def test_users_without_a_vault_value_are_left_out() -> None:
    assert samba_passwords(_desired(bob=BOB), _decrypt) == {"bob": BOB}
    assert samba_passwords(_desired(), _decrypt) == {}


def test_no_samba_on_the_appliance_means_no_passwords() -> None:
    data = _desired(alice=ALICE).model_dump(mode="json")
    data["samba"] = None
    assert samba_passwords(DesiredAppliance.model_validate(data), _decrypt) == {}


def test_a_share_open_to_every_account_gives_everyone_present_their_password() -> None:
    data = _desired(alice=ALICE, carol="carol-pw", dave="dave-pw").model_dump(mode="json")
    data["samba"]["shares"].append({"name": "all", "path": "/srv/all"})
    got = samba_passwords(DesiredAppliance.model_validate(data), _decrypt)
    assert got == {"alice": ALICE, "carol": "carol-pw"}


def test_surrounding_whitespace_is_not_part_of_the_password() -> None:
    # What `echo pw | ansible-vault encrypt_string --stdin-name samba_password` encrypts.
    assert samba_passwords(_desired(bob="hunter2\n"), _decrypt) == {"bob": "hunter2"}


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("a" * SAMBA_PASSWORD_MAX_BYTES, id="254-ascii"),
        pytest.param("ü" * (SAMBA_PASSWORD_MAX_BYTES // 2), id="254-bytes-of-utf8"),
        pytest.param("with spaces, tabs\tand : ; ' \" $ `", id="punctuation"),
    ],
)
def test_values_samba_takes_are_accepted(password: str) -> None:
    assert samba_passwords(_desired(bob=password), _decrypt) == {"bob": password}


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("   \n", "is empty", id="only-whitespace"),
        pytest.param("first-line\nsecond-line", "line break", id="newline"),
        pytest.param("carriage\rreturn", "line break", id="carriage-return"),
        pytest.param("nul\0byte", "NUL", id="nul"),
        pytest.param("a" * (SAMBA_PASSWORD_MAX_BYTES + 1), "longer", id="255-ascii"),
        pytest.param("a" * 257, "longer", id="257-ascii"),
        # 128 characters but 256 bytes: smbpasswd would fail on the box.
        pytest.param("ü" * 128, "longer", id="256-bytes-of-utf8"),
    ],
)
def test_values_samba_cannot_take_are_refused_naming_the_user_only(
        password: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason) as caught:
        samba_passwords(_desired(alice=ALICE, bob=password), _decrypt)
    message = str(caught.value)
    assert "'bob'" in message
    for part in filter(None, password.split()):
        assert part not in message


def test_a_value_that_does_not_decrypt_is_refused() -> None:
    desired = _desired(bob=BOB)
    with pytest.raises(InvalidInputError, match="cannot decrypt"):
        samba_passwords(desired, lambda value: decrypt_vault_value(value, "wrong-password"))


def test_a_value_that_decrypts_to_non_utf8_bytes_is_refused() -> None:
    value = vault(b"\xff\xfe not text")
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        decrypt_vault_value(value, VAULT_PASSWORD)


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_passwords_and_hashes_reach_only_the_secrets() -> None:
    desired = _desired(alice=ALICE, bob=BOB)
    secrets = Secrets(samba_passwords=samba_passwords(desired, _decrypt))
    data = appliance_vars(desired, secrets=secrets)
    # The NT hash only: the password in clear never reaches the box.
    assert data["secrets"]["samba_accounts"] == [
        {"name": "alice", "nt_hash": nt_hash(ALICE)},
        {"name": "bob", "nt_hash": "0f085abdc849bc79b06ebeb983a52f59"},
    ]
    assert ALICE not in json.dumps(data, ensure_ascii=False)
    assert BOB not in json.dumps(data, ensure_ascii=False)
    outside = {k: v for k, v in data.items() if k != "secrets"}
    dumped = json.dumps(outside, ensure_ascii=False)
    for secret in (ALICE, BOB, nt_hash(ALICE), nt_hash(BOB), nt_hash(ALICE).upper()):
        assert secret not in dumped
        assert secret not in _strings(outside)
    # The vault values themselves are not passed on either.
    for user in desired.users.users:
        if user.samba_password:
            assert user.samba_password.strip().splitlines()[1] not in dumped


def test_without_samba_passwords_the_module_gets_an_empty_list() -> None:
    assert appliance_vars(_desired(alice=ALICE))["secrets"]["samba_accounts"] == []
