"""Reloads cannot be lost: site.yml on a root whose inventory says services run.

The root's inventory sets ``hearth_services_running: true`` and points
``hearth_systemctl`` at a script written into the root (no init system runs in
a root): it records every call and fails the calls listed in a file, so the
roles' real reload, enable and start commands run through the real module.
The runs build on each other, so they share one module-scoped root, in order.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.execution.ansible import RunResult
from engine.execution.extravars import appliance_vars, build_extravars
from engine.execution.workspace import Target
from schemas.config import DesiredAppliance

from .desired import appliance_data

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "reload-1"
FAKE = "/usr/local/sbin/fake-systemctl"
CALLS = "var/lib/fake-systemd/calls"
FAIL = "var/lib/fake-systemd/fail"
PENDING = "var/lib/hearth-agent/pending-reloads"
REVISION = "var/lib/hearth-agent/applied-revision"
ZONE = "etc/bind/hearth/db.example.test"
DOMAINS = ["dns", "samba", "mail"]  # the agent's own batch calls the real systemctl

_run_ids = itertools.count(1)

FAKE_SYSTEMCTL = """#!/bin/sh
state=/var/lib/fake-systemd
mkdir -p "$state/enabled" "$state/active"
echo "$*" >> "$state/calls"
if [ -f "$state/fail" ] && grep -qxF -- "$*" "$state/fail"; then exit 1; fi
case "$1" in
  is-enabled) test -e "$state/enabled/$3" ;;
  is-active) test -e "$state/active/$3" ;;
  enable) touch "$state/enabled/$3" "$state/active/$3" ;;
  *) exit 0 ;;
esac
"""


@dataclass(frozen=True)
class ServiceRoot(Target):
    """A root whose inventory says services run, with systemctl replaced by FAKE."""

    def host_vars(self) -> dict[str, Any]:
        return {**super().host_vars(), "hearth_services_running": True,
                "hearth_systemctl": FAKE}


def _desired(*, www: str = "192.0.2.20", comment: str = "Everyone") -> DesiredAppliance:
    data = appliance_data(NAME)
    data["dns"]["zones"][0]["records"][1]["address"] = www
    data["samba"]["shares"][1]["comment"] = comment
    return DesiredAppliance.model_validate(data)


@pytest.fixture(scope="module")
def root(clone, converge) -> Path:
    (path,) = clone([NAME], hostnames={NAME: f"{NAME}.example.test"})
    # Everything once as a root is converged (no services), revision r1.
    result = converge({path: _desired()}, **{NAME: {"revision": "r1"}})
    assert result.succeeded, result.events
    script = path / FAKE.lstrip("/")
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(0o755)
    return path


def _run(executor, root: Path, desired: DesiredAppliance, revision: str) -> RunResult:
    return executor.run(run_id=f"reloads-{next(_run_ids)}",
                        extravars=build_extravars([appliance_vars(desired, revision=revision)]),
                        targets=[ServiceRoot(name=NAME, root=root)], domains=DOMAINS)


def _files_event(result: RunResult) -> dict[str, Any]:
    (event,) = [e for e in result.events if e["task"] == "Domain files"
                and e["event"] != "runner_on_skipped"]
    return event


def _calls(root: Path) -> list[str]:
    path = root / CALLS
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("")
    return lines


def test_units_are_enabled_and_started_where_services_run(executor, root: Path) -> None:
    result = _run(executor, root, _desired(), "r1")
    assert result.succeeded, result.events
    calls = _calls(root)
    for unit in ("named", "smbd", "postfix", "dovecot"):
        assert f"enable --now {unit}" in calls
    assert [c for c in calls if c.startswith("reload")] == []  # no file changed
    again = _run(executor, root, _desired(), "r1")
    assert again.succeeded
    assert [c for c in _calls(root) if not c.startswith("is-")] == []
    assert again.hosts[NAME].changed == 0


def test_a_later_batch_failing_validation_still_reloads_the_earlier_one(
        executor, root: Path) -> None:
    smb_before = (root / "etc/samba/smb.conf").read_text()
    testparm = root / "usr/bin/testparm"
    original = testparm.read_bytes()
    testparm.write_text("#!/bin/sh\nexit 1\n")  # samba's checker refuses everything
    try:
        result = _run(executor, root, _desired(www="192.0.2.21", comment="Everyone, changed"),
                      "r2")
    finally:
        testparm.write_bytes(original)
    assert not result.succeeded
    event = _files_event(result)
    assert event["event"] == "runner_on_failed"
    assert event["changed"] is True  # the zone was written
    assert "www 600 IN A 192.0.2.21" in (root / ZONE).read_text()
    assert "reload-or-restart named" in _calls(root)
    assert os.listdir(root / PENDING) == []
    assert (root / "etc/samba/smb.conf").read_text() == smb_before
    assert (root / REVISION).read_text() == "r1\n"


def test_a_failed_reload_keeps_the_revision_and_is_retried_with_no_file_change(
        executor, root: Path) -> None:
    zone_before = (root / ZONE).read_text()
    (root / FAIL).write_text("reload-or-restart named\n")
    failed = _run(executor, root, _desired(www="192.0.2.22"), "r3")
    assert not failed.succeeded
    assert "reload-or-restart named failed" in _files_event(failed)["msg"]
    assert _calls(root).count("reload-or-restart named") == 2  # new files, then restored ones
    assert (root / ZONE).read_text() == zone_before  # restored
    assert os.listdir(root / PENDING) == ["dns.json"]
    assert (root / REVISION).read_text() == "r1\n"  # never a revision a service did not load

    # The reload works again; the desired zone is what is on disk: no file changes,
    # yet the pending reload runs, and only then is the revision recorded.
    (root / FAIL).unlink()
    retried = _run(executor, root, _desired(www="192.0.2.21"), "r4")
    assert retried.succeeded, retried.events
    assert _files_event(retried).get("changed_paths", []) == ["/" + REVISION]
    assert "reload-or-restart named" in _calls(root)
    assert os.listdir(root / PENDING) == []
    assert (root / REVISION).read_text() == "r4\n"


def test_a_failed_post_replace_check_restores_the_old_files(executor, root: Path) -> None:
    """A hand edit elsewhere breaks named-checkconf -z: the new zone does not stay."""
    zone_before = (root / ZONE).read_text()
    conf = root / "etc/bind/named.conf"
    original = conf.read_text()
    (root / "etc/bind/db.broken").write_text("this is not a zone\n")
    conf.write_text(original + 'zone "broken.test" { type primary; file "/etc/bind/db.broken"; };\n')
    try:
        result = _run(executor, root, _desired(www="192.0.2.23"), "r5")
    finally:
        conf.write_text(original)
    assert not result.succeeded
    assert "named-checkconf -z /etc/bind/named.conf failed" in _files_event(result)["msg"]
    assert (root / ZONE).read_text() == zone_before
    assert sorted(os.listdir(root / "etc/bind/hearth")) == ["db.example.test"]  # no leftovers
    assert "reload-or-restart named" not in _calls(root)  # the check stops it
    assert os.listdir(root / PENDING) == ["dns.json"]
    assert (root / REVISION).read_text() == "r4\n"
    fixed = _run(executor, root, _desired(www="192.0.2.23"), "r6")
    assert fixed.succeeded, fixed.events
    assert "www 600 IN A 192.0.2.23" in (root / ZONE).read_text()
    assert os.listdir(root / PENDING) == []
    assert (root / REVISION).read_text() == "r6\n"


def test_dry_run_on_a_new_box_with_groups_not_made_yet(clone, converge) -> None:
    (fresh,) = clone(["reload-new"], hostnames={"reload-new": "reload-new.example.test"})
    desired = DesiredAppliance.model_validate(appliance_data("reload-new"))
    result = converge({fresh: desired}, check=True, domains=["users", "samba", "dns", "mail"])
    assert result.succeeded, result.events
    assert not (fresh / "srv/finance").exists()
    assert not (fresh / "etc/bind/hearth").exists()
