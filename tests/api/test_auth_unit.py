"""The pure parts of ``api.auth``: JWT issue and checks, the Bearer header, a principal's roles.

No app, database or Redis: each function is called with literal inputs and its
answer compared with a literal (the route-level behaviour is in test_auth.py and
test_permissions.py).
"""

from __future__ import annotations

import time

import jwt
import pytest

from api.auth import (
    ANONYMOUS,
    DEFERRED_APPLIANCE,
    Principal,
    _bearer,
    decode_person_token,
    issue_person_token,
)
from engine.errors import AuthenticationError

SECRET = "unit-test-jwt-secret-" + "0123456789abcdef" * 3  # 69 bytes: enough for HS512 too


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _sign(claims: dict, *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _valid(**overrides: object) -> dict:
    now = int(time.time())
    return {"sub": "42", "aud": "hearth-api", "iss": "hearth", "iat": now, "exp": now + 300} | overrides


def test_issued_token_carries_exactly_these_claims() -> None:
    before = int(time.time())
    token = issue_person_token(secret=SECRET, person_id=42, lifetime=900)
    after = int(time.time())
    claims = _claims(token)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert sorted(claims) == ["aud", "exp", "iat", "iss", "jti", "nbf", "sub", "ver"]
    assert claims["ver"] == 0
    assert (claims["sub"], claims["aud"], claims["iss"]) == ("42", "hearth-api", "hearth")
    assert before <= claims["iat"] <= after
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 900
    assert len(claims["jti"]) == 32 and int(claims["jti"], 16) >= 0


def test_two_tokens_have_different_ids() -> None:
    first = _claims(issue_person_token(secret=SECRET, person_id=1, lifetime=60))
    second = _claims(issue_person_token(secret=SECRET, person_id=1, lifetime=60))
    assert first["jti"] != second["jti"]


def test_an_issued_token_decodes_to_its_person() -> None:
    assert decode_person_token(secret=SECRET, token=issue_person_token(
        secret=SECRET, person_id=7, lifetime=60)).person_id == 7


def test_a_token_expired_within_the_five_second_leeway_is_accepted() -> None:
    now = int(time.time())
    assert decode_person_token(secret=SECRET, token=_sign(_valid(iat=now - 60, exp=now - 2))).person_id == 42


@pytest.mark.parametrize("make", [
    lambda: _sign(_valid(exp=int(time.time()) - 30)),
    lambda: _sign(_valid(aud="hearth-appliance")),
    lambda: _sign(_valid(iss="hearth-other")),
    lambda: _sign(_valid(), secret="another-secret-of-enough-length-0123456789"),
    lambda: _sign(_valid(), algorithm="HS512"),
    lambda: jwt.encode(_valid(), None, algorithm="none"),
    lambda: _sign({k: v for k, v in _valid().items() if k != "exp"}),
    lambda: _sign({k: v for k, v in _valid().items() if k != "iat"}),
    lambda: _sign({k: v for k, v in _valid().items() if k != "sub"}),
    lambda: _sign({k: v for k, v in _valid().items() if k != "aud"}),
    lambda: _sign({k: v for k, v in _valid().items() if k != "iss"}),
    lambda: _sign(_valid(sub="root")),
    lambda: _sign(_valid(nbf=int(time.time()) + 120)),
    lambda: "not-a-jwt",
], ids=["expired-30s", "audience", "issuer", "other-key", "hs512", "alg-none", "no-exp",
        "no-iat", "no-sub", "no-aud", "no-iss", "sub-not-a-number", "not-yet-valid", "garbage"])
def test_anything_but_a_valid_token_is_refused_with_one_message(make) -> None:
    with pytest.raises(AuthenticationError) as caught:
        decode_person_token(secret=SECRET, token=make())
    assert str(caught.value) == "invalid or expired token"


@pytest.mark.parametrize(("header", "token"), [
    (None, None),
    ("", None),
    ("Bearer abc.def", "abc.def"),
    ("bearer abc", "abc"),
    ("BEARER  abc  ", "abc"),
], ids=["absent", "empty", "bearer", "lower-case", "spaces"])
def test_bearer_header(header, token) -> None:
    assert _bearer(header) == token


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc",
                                    "abc"],
                         ids=["basic", "no-credential", "blank-credential", "other-scheme",
                              "no-scheme"])
def test_a_header_that_is_not_bearer_is_refused(header) -> None:
    with pytest.raises(AuthenticationError) as caught:
        _bearer(header)
    assert str(caught.value) == "expected 'Authorization: Bearer <token>'"


MEMBER = Principal(kind="person", id="5", username="olga",
                   memberships={"acme": (1, "operator"), "globex": (2, "auditor")})
ADMIN = Principal(kind="person", id="1", username="root", is_admin=True,
                  memberships={"acme": (1, "customer")})
NOBODY = Principal(kind="person", id="9", username="new")
BOX = Principal(kind="appliance", id="b0x", appliance={"appliance_id": "b0x", "tenant_id": 1,
                                                       "tenant": "acme", "name": "front-office"})


@pytest.mark.parametrize(("principal", "roles"), [
    (ANONYMOUS, {"anonymous"}),
    (BOX, {"appliance"}),
    (DEFERRED_APPLIANCE, {"appliance"}),
    (MEMBER, {"operator", "auditor"}),
    (ADMIN, {"admin", "customer"}),
    (NOBODY, set()),
], ids=["anonymous", "appliance", "deferred-appliance", "member", "admin", "no-membership"])
def test_global_roles(principal, roles) -> None:
    assert principal.global_roles() == roles


@pytest.mark.parametrize(("principal", "tenant_id", "role"), [
    (MEMBER, 1, "operator"),
    (MEMBER, 2, "auditor"),
    (MEMBER, 3, None),
    (ADMIN, 1, "admin"),
    (ADMIN, 3, "admin"),
    (NOBODY, 1, None),
    (BOX, 1, "appliance"),
    (BOX, 2, None),
    (DEFERRED_APPLIANCE, 1, None),
    (ANONYMOUS, 1, None),
], ids=["member-acme", "member-globex", "member-elsewhere", "admin-member", "admin-anywhere",
        "no-membership", "appliance-own", "appliance-other", "deferred-appliance", "anonymous"])
def test_role_in_tenant(principal, tenant_id, role) -> None:
    assert principal.role_in_tenant(tenant_id) == role


def test_audit_actor_is_kind_and_id() -> None:
    assert MEMBER.audit_actor == ("person", "5")
    assert BOX.audit_actor == ("appliance", "b0x")
    assert ANONYMOUS.audit_actor == ("anonymous", None)
