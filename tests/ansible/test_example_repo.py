"""Two roots converged from example-config-repo through ansible-runner (issue 4 acceptance).

One module-scoped convergence (two runs: from scratch, then again with nothing
to change) feeds every test here; each test then checks the boxes with their
own tools and with the heartbeat agent running inside them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InvalidInputError
from engine.execution.extravars import Secrets, decrypt_vault_value, password_hashes
from engine.repos.reader import validate_worktree
from schemas.config import DesiredAppliance, UsersState
from schemas.heartbeat import Heartbeat

from .helpers import agent_report, in_root, mismatches

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APPLIANCES = ("front-office", "branch")


def _without_passwords(desired: DesiredAppliance) -> DesiredAppliance:
    users = [u.model_copy(update={"password": None}) for u in desired.users.users]
    return desired.model_copy(update={"users": UsersState(users=users,
                                                          groups=desired.users.groups)})


def _secrets(desired: DesiredAppliance) -> tuple[DesiredAppliance, Secrets]:
    """Decrypt the example's vault values with ANSIBLE_VAULT_PASSWORD when it can; without
    the example's vault password the users converge without passwords (and the test
    expects none)."""
    password = os.environ.get("ANSIBLE_VAULT_PASSWORD")
    if password:
        try:
            hashes = password_hashes(desired, lambda v: decrypt_vault_value(v, password))
            return desired, Secrets(password_hashes=hashes)
        except InvalidInputError:
            pass
    return _without_passwords(desired), Secrets()


@pytest.fixture(scope="module")
def example(example_repo_dir: Path, clone, converge) -> dict[str, Any]:
    snapshot = validate_worktree(example_repo_dir)
    desired = {}
    secrets = {}
    for name in APPLIANCES:
        desired[name], secrets[name] = _secrets(snapshot.desired(name))
    roots = clone([f"example-{name}" for name in APPLIANCES],
                  hostnames={f"example-{n}": desired[n].hostname for n in APPLIANCES})
    appliances = dict(zip(roots, desired.values(), strict=True))
    kwargs = {name: {"secrets": secrets[name]} for name in APPLIANCES}
    first = converge(appliances, **kwargs)
    second = converge(appliances, **kwargs)
    return {"roots": dict(zip(APPLIANCES, roots, strict=True)), "desired": desired,
            "first": first, "second": second}


def test_first_run_converges_both_roots(example: dict[str, Any]) -> None:
    first = example["first"]
    assert first.succeeded, first.events
    assert set(first.hosts) == set(APPLIANCES)
    assert all(h.changed > 0 for h in first.hosts.values())


def test_second_run_changes_nothing(example: dict[str, Any]) -> None:
    second = example["second"]
    assert second.succeeded, second.events
    assert {name: h.changed for name, h in second.hosts.items()} == dict.fromkeys(APPLIANCES, 0)


@pytest.mark.parametrize("name", APPLIANCES)
def test_agent_reports_desired_state(example: dict[str, Any], name: str) -> None:
    report = agent_report(example["roots"][name])
    heartbeat = Heartbeat.model_validate(report)
    assert heartbeat.observed.users is not None
    assert mismatches(example["desired"][name], report["observed"]) == []


@pytest.mark.parametrize("name", APPLIANCES)
def test_services_own_checkers_pass(example: dict[str, Any], name: str) -> None:
    root = example["roots"][name]
    testparm = in_root(root, "testparm", "-s")
    assert "Loaded services file OK." in testparm.stderr
    in_root(root, "named-checkconf", "-z", "/etc/bind/named.conf")
    in_root(root, "postfix", "check")
    dovecot = in_root(root, "doveconf", "-n").stdout
    assert "protocols = imap" in dovecot
    cert = next(c for c in example["desired"][name].pki.certificates if "mail" in c.consumers)
    assert f"ssl_cert = </etc/hearth/tls/{cert.name}" in dovecot
    assert "ssl = required" in dovecot
    for zone in example["desired"][name].dns.zones:
        in_root(root, "named-checkzone", zone.name, f"/etc/bind/hearth/db.{zone.name}")


@pytest.mark.parametrize("name", APPLIANCES)
def test_users_in_passwd_with_their_groups(example: dict[str, Any], name: str) -> None:
    root = example["roots"][name]
    desired = example["desired"][name]
    for user in desired.users.users:
        entry = in_root(root, "getent", "passwd", user.name, check=False)
        if user.state == "absent":
            assert entry.returncode == 2, f"{user.name} should not exist"
            continue
        assert entry.returncode == 0, f"{user.name} missing from /etc/passwd"
        groups = in_root(root, "id", "-Gn", user.name).stdout.split()
        assert set(user.groups) <= set(groups)
        assert set(groups) - set(user.groups) == {user.name}  # only the private group


@pytest.mark.parametrize("name", APPLIANCES)
def test_certificates_chain_to_tenant_ca(example: dict[str, Any], name: str) -> None:
    root = example["roots"][name]
    for cert in example["desired"][name].pki.certificates:
        out = in_root(root, "openssl", "verify", "-CAfile", "/etc/hearth/tls/ca.crt",
                      f"/etc/hearth/tls/{cert.name}.crt").stdout
        assert out.strip().endswith(": OK")
        mode = (root / f"etc/hearth/tls/{cert.name}.key").stat().st_mode & 0o777
        assert mode == 0o600


def test_both_roots_share_one_tenant_ca(example: dict[str, Any]) -> None:
    pems = {(root / "etc/hearth/tls/ca.crt").read_text() for root in example["roots"].values()}
    assert len(pems) == 1


@pytest.mark.parametrize("name", APPLIANCES)
def test_agent_is_installed_and_enabled(example: dict[str, Any], name: str) -> None:
    root = example["roots"][name]
    assert (root / "usr/local/bin/hearth-agent").stat().st_mode & 0o111
    link = root / "etc/systemd/system/timers.target.wants/hearth-agent.timer"
    assert os.readlink(link) == "/etc/systemd/system/hearth-agent.timer"
    timer = (root / "etc/systemd/system/hearth-agent.timer").read_text()
    assert re.search(r"OnUnitActiveSec=\d+s", timer)
