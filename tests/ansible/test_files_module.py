"""hearth_files: its pure helpers, then the module run by ansible-playbook in a real root.

The root tests drive the module through the chroot connection exactly as the
roles do (one task, arguments as data), and read the task's result from the
``ansible.posix.json`` callback: changed, diff, warnings, failure message.
Commands that stand for a service's checker or reload are small scripts written
into the root.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.execution.workspace import ANSIBLE_DIR

_spec = importlib.util.spec_from_file_location("hearth_files", ANSIBLE_DIR / "library/hearth_files.py")
hf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hf)

PENDING = "/var/lib/hearth-agent/pending-reloads"


# ---- pure helpers -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("0644", 0o644, id="four-digits"),
        pytest.param("755", 0o755, id="three-digits"),
        pytest.param("2770", 0o2770, id="setgid"),
        pytest.param(None, None, id="unset"),
    ],
)
def test_parse_mode(value: str | None, expected: int | None) -> None:
    assert hf.parse_mode(value) == expected


@pytest.mark.parametrize("value", [420, "0x1ff", "rw-r--r--", "0999", ""],
                         ids=["yaml-octal-int", "hex", "symbolic", "not-octal", "empty"])
def test_parse_mode_refuses(value: Any) -> None:
    with pytest.raises(hf.BatchError):
        hf.parse_mode(value)


ZONE = "$TTL 3600\n@ IN SOA ns. admin. (\n  HEARTH_SERIAL ; serial\n  3600 )\n@ IN A 192.0.2.1\n"


@pytest.mark.parametrize(
    ("old", "content", "expected"),
    [
        pytest.param(None, ZONE, ZONE.replace("HEARTH_SERIAL", "2026011500"), id="new-zone"),
        pytest.param(ZONE.replace("HEARTH_SERIAL", "2026011003"), ZONE, None,
                     id="only-serial-differs"),
        pytest.param(ZONE.replace("HEARTH_SERIAL", "2026011003"), ZONE + "www IN A 192.0.2.2\n",
                     ZONE.replace("HEARTH_SERIAL", "2026011500") + "www IN A 192.0.2.2\n",
                     id="older-serial-takes-today"),
        pytest.param(ZONE.replace("HEARTH_SERIAL", "2026011507"), ZONE + "www IN A 192.0.2.2\n",
                     ZONE.replace("HEARTH_SERIAL", "2026011508") + "www IN A 192.0.2.2\n",
                     id="same-day-increments"),
    ],
)
def test_zone_content(old: str | None, content: str, expected: str | None) -> None:
    assert hf.zone_content(old, content, 2026011500) == expected


def test_substitute_candidate_and_directory() -> None:
    assert hf.substitute(["postfix", "-c", "%d", "check"], candidate="/x/.t", directory="/tmp/v") \
        == ["postfix", "-c", "/tmp/v", "check"]
    assert hf.substitute(["named-checkzone", "-q", "z", "%s", 5], candidate="/x/.t") \
        == ["named-checkzone", "-q", "z", "/x/.t", "5"]


def test_prev_path_is_hidden_beside_the_file() -> None:
    assert hf.prev_path("/etc/bind/hearth/db.example.test") \
        == "/etc/bind/hearth/.db.example.test.hearth-prev"


def test_missing_packages() -> None:
    out = ("bind9 installed\nbind9-utils not-installed\nsamba:amd64 installed\n"
           "dpkg-query: no packages found matching dovecot-imapd\n")
    assert hf.missing_packages(out, ["bind9", "bind9-utils", "samba", "dovecot-imapd"]) \
        == ["bind9-utils", "dovecot-imapd"]


def test_describe() -> None:
    assert hf.describe("directory", 0o2770, "root", "finance") \
        == "state: directory\nmode: 2770\nowner: root\ngroup: finance\n"
    assert hf.describe("link", target="/etc/x") == "state: link\ntarget: /etc/x\n"


def test_reload_order_runs_this_execution_first_then_other_pending() -> None:
    assert hf.reload_order(["main", "dns", "mail"], {"samba": None, "dns": [], "agent": []}) \
        == ["main", "dns", "mail", "agent", "samba"]


def test_pending_markers_survive_and_go(tmp_path: Path) -> None:
    store = hf.PendingReloads(str(tmp_path / "pending"))
    assert store.load() == {}
    store.add("dns", [["named-checkconf", "-z", "/etc/bind/named.conf"]])
    store.add("mail", [["postfix", "check"]])
    (tmp_path / "pending" / "broken.json").write_text("{not json")
    assert store.load() == {"dns": [["named-checkconf", "-z", "/etc/bind/named.conf"]],
                            "mail": [["postfix", "check"]], "broken": None}
    assert (tmp_path / "pending").stat().st_mode & 0o777 == 0o700
    store.remove("dns")
    store.remove("dns")  # already gone: fine
    assert sorted(os.listdir(tmp_path / "pending")) == ["broken.json", "mail.json"]


# ---- the module in a root -----------------------------------------------------------------

def run_module(root: Path, tmp_path: Path, args: dict[str, Any], *, check: bool = False,
               diff: bool = True) -> dict[str, Any]:
    """Run one hearth_files task in ``root``; the task's result for the host."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    playbook = tmp_path / "pb.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "files", "hearth_files": args}],
    }]))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"box": {
        "ansible_connection": "community.general.chroot", "ansible_host": str(root)}}}}))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
            str(playbook)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300, env={
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_LIBRARY": str(ANSIBLE_DIR / "library"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_REMOTE_TEMP": "/tmp/.ansible-tmp",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "HOME": str(tmp_path),
    })
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from ansible-playbook:\n{proc.stdout}\n{proc.stderr}") from None
    return out["plays"][0]["tasks"][0]["hosts"]["box"]


@pytest.fixture
def root(clone, tmp_path: Path) -> Path:
    (path,) = clone([f"files-{tmp_path.name}"[:40]])
    return path


def script(root: Path, path: str, body: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("#!/bin/sh\n" + body)
    target.chmod(0o755)


def test_main_cf_with_an_invalid_parameter_is_refused_before_replacing(root: Path,
                                                                      tmp_path: Path) -> None:
    """The mail role's own main.cf check (read from its vars) on a bad numeric value."""
    mail_vars = yaml.safe_load((ANSIBLE_DIR / "roles/mail/vars/main.yml").read_text())
    (main_cf,) = [f for f in mail_vars["mail_changes"]["files"]
                  if f["path"] == "/etc/postfix/main.cf"]
    before = (root / "etc/postfix/main.cf").read_text()
    bad = before + "message_size_limit = lots\n"
    spec = {"path": "/etc/postfix/main.cf", "content": bad, "owner": "root", "group": "root",
            "mode": "0644", "validate": main_cf["validate"],
            "validate_with": main_cf.get("validate_with", [])}
    result = run_module(root, tmp_path, {"batches": [{"name": "mail", "files": [spec]}]})
    assert result.get("failed") is True
    assert result["msg"].startswith("mail: validation of /etc/postfix/main.cf failed (rc 1): "
                                    "postfix -c /tmp/hearth-validate-")
    assert result["changed"] is False
    assert (root / "etc/postfix/main.cf").read_text() == before
    # a good value passes the same check and is written
    good = before + "message_size_limit = 10240000\n"
    result = run_module(root, tmp_path / "2", {"batches": [{"name": "mail",
                                                            "files": [dict(spec, content=good)]}]})
    assert result.get("failed") is not True, result
    assert (root / "etc/postfix/main.cf").read_text() == good
    assert sorted(p.name for p in (root / "etc/postfix").iterdir() if p.name.startswith(".")) == []


def test_a_later_batch_failing_validation_still_runs_the_earlier_reload(root: Path,
                                                                       tmp_path: Path) -> None:
    script(root, "/usr/local/sbin/reload-one", 'echo one >> /var/log/reloads\n')
    result = run_module(root, tmp_path, {"batches": [
        {"name": "one", "files": [{"path": "/etc/one.conf", "content": "one\n"}],
         "on_change": [["/usr/local/sbin/reload-one"]]},
        {"name": "two", "files": [{"path": "/etc/two.conf", "content": "two\n",
                                   "validate": ["false", "%s"]}],
         "on_change": [["/bin/true"]]},
    ]})
    assert result["failed"] is True
    assert result["changed"] is True
    assert result["msg"].startswith("two: validation of /etc/two.conf failed (rc 1): false ")
    assert result["reloaded_batches"] == ["one"]
    assert (root / "var/log/reloads").read_text() == "one\n"
    assert (root / "etc/one.conf").read_text() == "one\n"
    assert not (root / "etc/two.conf").exists()
    assert os.listdir(root / PENDING.lstrip("/")) == []  # the marker went with the reload


def test_a_failed_reload_restores_the_files_and_is_retried_without_a_file_change(
        root: Path, tmp_path: Path) -> None:
    (root / "etc/svc.conf").write_text("old\n")
    script(root, "/usr/local/sbin/reload-svc",
           'cat /etc/svc.conf >> /var/log/reloads\n[ ! -e /etc/reload-fails ]\n')
    batch = {"name": "svc", "files": [{"path": "/etc/svc.conf", "content": "new\n"}],
             "on_change": [["/usr/local/sbin/reload-svc"]]}
    (root / "etc/reload-fails").write_text("")
    failed = run_module(root, tmp_path / "1", {"batches": [batch]})
    assert failed["failed"] is True
    assert failed["changed"] is True
    assert failed["restored_paths"] == ["/etc/svc.conf"]
    assert failed["pending_batches"] == ["svc"]
    # the reload saw the new file, failed; the old one is back and was tried again
    assert (root / "var/log/reloads").read_text() == "new\nold\n"
    assert (root / "etc/svc.conf").read_text() == "old\n"
    assert json.loads((root / PENDING.lstrip("/") / "svc.json").read_text())["on_change"] \
        == [["/usr/local/sbin/reload-svc"]]
    assert not (root / "etc/.svc.conf.hearth-prev").exists()

    # Next execution, the service works again, desired content equals the file: no file
    # changes, the pending reload runs and its marker goes.
    (root / "etc/reload-fails").unlink()
    retried = run_module(root, tmp_path / "2", {"batches": [dict(
        batch, files=[{"path": "/etc/svc.conf", "content": "old\n"}])]})
    assert retried.get("failed") is not True, retried
    assert retried["changed_paths"] == []
    assert retried["reloaded_batches"] == ["svc"]
    assert retried["changed"] is True
    assert (root / "var/log/reloads").read_text() == "new\nold\nold\n"
    assert os.listdir(root / PENDING.lstrip("/")) == []

    again = run_module(root, tmp_path / "3", {"batches": [dict(
        batch, files=[{"path": "/etc/svc.conf", "content": "old\n"}])]})
    assert again["changed"] is False
    assert again["reloaded_batches"] == []


def test_a_pending_reload_of_a_batch_not_in_the_run_uses_its_recorded_commands(
        root: Path, tmp_path: Path) -> None:
    script(root, "/usr/local/sbin/reload-gone", 'echo gone >> /var/log/reloads\n')
    pending = root / PENDING.lstrip("/")
    pending.mkdir(parents=True)
    (pending / "gone.json").write_text(json.dumps(
        {"batch": "gone", "on_change": [["/usr/local/sbin/reload-gone"]]}))
    result = run_module(root, tmp_path, {"batches": [{"name": "other"}]})
    assert result.get("failed") is not True, result
    assert result["reloaded_batches"] == ["gone"]
    assert (root / "var/log/reloads").read_text() == "gone\n"
    assert os.listdir(pending) == []


def test_after_reloads_batch_waits_for_every_reload(root: Path, tmp_path: Path) -> None:
    batches = [
        {"name": "svc", "files": [{"path": "/etc/svc.conf", "content": "new\n"}],
         "on_change": [["/bin/false"]]},
        {"name": "revision", "after_reloads": True,
         "files": [{"path": "/var/lib/hearth-agent/applied-revision", "content": "abc\n"}]},
    ]
    failed = run_module(root, tmp_path / "1", {"batches": batches})
    assert failed["failed"] is True
    assert not (root / "var/lib/hearth-agent/applied-revision").exists()
    batches[0]["on_change"] = [["/bin/true"]]
    done = run_module(root, tmp_path / "2", {"batches": batches})
    assert done.get("failed") is not True, done
    assert done["changed_batches"] == ["svc", "revision"]
    assert (root / "var/lib/hearth-agent/applied-revision").read_text() == "abc\n"


def test_typos_in_sub_options_are_errors(root: Path, tmp_path: Path) -> None:
    result = run_module(root, tmp_path, {"batches": [
        {"name": "x", "files": [{"path": "/etc/x.conf", "contnet": "x\n"}]}]})
    assert result["failed"] is True
    assert "contnet" in result["msg"]
    assert not (root / "etc/x.conf").exists()


def test_commands_time_out(root: Path, tmp_path: Path) -> None:
    result = run_module(root, tmp_path, {"command_timeout": 1, "batches": [
        {"name": "slow", "files": [{"path": "/etc/slow.conf", "content": "x\n"}],
         "on_change": [["sleep", "30"]]}]})
    assert result["failed"] is True
    assert "sleep 30 failed (rc 124): timed out after 1 s" in result["msg"]


def test_secret_contents_are_not_logged(root: Path, tmp_path: Path) -> None:
    secret = "not-for-logs-7f3a9c"
    result = run_module(root, tmp_path, {"batches": [{"name": "s", "secret_files": [
        {"path": "/etc/s.token", "content": secret, "mode": "0600"}]}]})
    assert result.get("failed") is not True, result
    assert (root / "etc/s.token").read_text() == secret
    assert secret not in json.dumps(result)
    assert result["changed_paths"] == ["/etc/s.token"]


def test_check_mode_validates_and_shows_the_real_serial_and_directories(
        root: Path, tmp_path: Path) -> None:
    zone = ("$TTL 3600\n@ IN SOA ns.example.test. admin.example.test. (\n"
            "  HEARTH_SERIAL ; serial\n  3600 600 86400 300 )\n@ IN NS ns.example.test.\n"
            "ns IN A 192.0.2.1\n")
    (root / "etc/bind/hearth").mkdir(parents=True)
    (root / "etc/bind/hearth/db.example.test").write_text(zone.replace("HEARTH_SERIAL",
                                                                      "2000010100"))
    args = {"batches": [{"name": "dns",
                         "directories": [{"path": "/srv/team", "owner": "root",
                                          "group": "team-not-yet", "mode": "2770"}],
                         "files": [{"path": "/etc/bind/hearth/db.example.test",
                                    "content": zone + "www IN A 192.0.2.2\n",
                                    "zone_serial": True,
                                    "validate": ["named-checkzone", "-q", "example.test", "%s"]}],
                         "on_change": [["/bin/false"]]}]}
    result = run_module(root, tmp_path / "1", args, check=True)
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert result["pending_batches"] == ["dns"]
    diffs = {d["after_header"]: d for d in result["diff"]}
    assert diffs["/srv/team"]["before"] == "state: absent\n"
    assert diffs["/srv/team"]["after"] == \
        "state: directory\nmode: 2770\nowner: root\ngroup: team-not-yet\n"
    after = diffs["/etc/bind/hearth/db.example.test"]["after"]
    assert "HEARTH_SERIAL" not in after
    # the serial the real run would write: the old one is older than today
    today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d00")
    assert after.splitlines()[2] == f"  {today} ; serial"
    assert any("group 'team-not-yet' of /srv/team does not exist yet" in w
               for w in result["warnings"])
    assert not (root / "srv/team").exists()
    assert not (root / PENDING.lstrip("/")).exists()

    # The rendered file is checked in check mode too: a broken zone fails the dry run.
    broken = {"batches": [dict(args["batches"][0], directories=[], files=[
        dict(args["batches"][0]["files"][0], content=zone + "www IN A not-an-address\n")])]}
    result = run_module(root, tmp_path / "2", broken, check=True)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "dns: validation of /etc/bind/hearth/db.example.test failed (rc 1): named-checkzone")
    assert os.listdir(root / "etc/bind/hearth") == ["db.example.test"]

    # A real run with a group that does not exist is a clear error, nothing written.
    result = run_module(root, tmp_path / "3", {"batches": [dict(args["batches"][0], files=[])]})
    assert result["failed"] is True
    assert result["msg"] == ("dns: group 'team-not-yet' of /srv/team does not exist "
                             "(users and groups are created by the users step)")
    assert not (root / "srv/team").exists()
