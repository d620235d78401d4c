"""The pki domain on a real appliance root: dry runs, canonical SANs, keys made on the box.

One module-scoped root and one executor with its own data directory (so the
tenant CA is new), runs in order: a dry run on the brand-new box, the first
issue, an idempotent run (the certificate names an IPv6 address typed
non-canonically), a dry run and a real run of a renewal (a SAN added), and the
migration of a leaf key an older Hearth kept on the controller. The reloads the
pki batch declares are checked by rendering the role's vars with Ansible.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.execution.ansible import AnsibleExecutor, RunResult
from engine.execution.extravars import appliance_vars, build_extravars
from engine.execution.workspace import ANSIBLE_DIR, Target, to_flow_yaml
from schemas.config import DesiredAppliance

from .desired import appliance_data
from .helpers import in_root

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "pki-1"
TENANT = "pkitenant"
SANS = ["mail.example.test", "192.0.2.10", "2001:DB8::0:1"]
_run_ids = itertools.count(1)


def _desired(*, sans: list[str] = SANS) -> DesiredAppliance:
    data = appliance_data(NAME)
    data["tenant"] = TENANT
    data["pki"]["certificates"][0]["sans"] = sans
    return DesiredAppliance.model_validate(data)


@pytest.fixture(scope="module")
def state(clone, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    (root,) = clone([NAME], hostnames={NAME: f"{NAME}.example.test"})
    executor = AnsibleExecutor(data_dir=tmp_path_factory.mktemp("pki-data"), timeout=600)
    return {"root": root, "executor": executor, "results": []}


def _run(state: dict[str, Any], desired: DesiredAppliance, *, check: bool = False) -> RunResult:
    executor: AnsibleExecutor = state["executor"]
    result = executor.run(run_id=f"pki-{next(_run_ids)}",
                          extravars=build_extravars([appliance_vars(desired)]),
                          targets=[Target(name=NAME, root=state["root"])],
                          domains=["pki"], check=check)
    assert result.succeeded, [e for e in result.events if e["event"] == "runner_on_failed"]
    state["results"].append(result)
    return result


def _executed(result: RunResult) -> dict[str, dict[str, Any]]:
    """Task name -> its event, for the tasks that ran (not skipped)."""
    return {e["task"]: e for e in result.events
            if e["event"] in {"runner_on_ok", "runner_on_failed"}}


def _controller(state: dict[str, Any]) -> Path:
    return state["executor"].pki_dir / TENANT


def _tls(state: dict[str, Any]) -> Path:
    return state["root"] / "etc/hearth/tls"


def _x509(state: dict[str, Any], *args: str) -> str:
    return in_root(state["root"], "openssl", "x509", "-in", "/etc/hearth/tls/services.crt",
                   "-noout", *args).stdout


def test_dry_run_on_a_new_box_reports_and_creates_nothing(state: dict[str, Any]) -> None:
    result = _run(state, _desired(), check=True)
    tasks = _executed(result)
    assert tasks["CA private key"]["changed"]
    assert tasks["Certificates to issue"]["msg"] == "certificates to issue: services"
    assert tasks["Certificate directory on the appliance"]["changed_paths"] == [
        "/etc/hearth", "/etc/hearth/tls"]
    assert tasks["Domain files"]["changed_paths"] == [
        "/etc/hearth", "/etc/hearth/tls", "/etc/hearth/tls/ca.crt",
        "/etc/hearth/tls/services.crt", "/etc/hearth/tls/services.chain.crt"]
    assert not (state["root"] / "etc/hearth").exists()
    assert sorted(p.name for p in _controller(state).rglob("*")) == [NAME]


def test_first_run_makes_the_key_on_the_box_and_keeps_only_certificates(
        state: dict[str, Any]) -> None:
    result = _run(state, _desired())
    assert result.hosts[NAME].changed > 0
    key = _tls(state) / "services.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" in key.read_text()
    assert in_root(state["root"], "openssl", "verify", "-CAfile", "/etc/hearth/tls/ca.crt",
                   "/etc/hearth/tls/services.crt").stdout.strip().endswith(": OK")
    # The certificate is for the key on the box.
    assert (_x509(state, "-pubkey")
            == in_root(state["root"], "openssl", "pkey", "-in", "/etc/hearth/tls/services.key",
                       "-pubout").stdout)
    # The controller holds the CA and the issued certificate, no leaf key.
    assert sorted(str(p.relative_to(_controller(state)))
                  for p in _controller(state).rglob("*")) == [
        "ca.crt", "ca.key", NAME, f"{NAME}/services.crt"]
    assert "IP Address:2001:DB8:0:0:0:0:0:1" in _x509(state, "-ext", "subjectAltName")


def test_second_run_changes_nothing_with_a_non_canonical_ipv6_san(
        state: dict[str, Any]) -> None:
    before = (_tls(state) / "services.crt").read_text()
    result = _run(state, _desired())
    assert result.hosts[NAME].changed == 0
    assert set(_executed(result)) == {"Domain files"}
    assert (_tls(state) / "services.crt").read_text() == before


def test_dry_run_of_a_renewal_reports_and_changes_nothing(state: dict[str, Any]) -> None:
    before = (_tls(state) / "services.crt").read_text()
    result = _run(state, _desired(sans=[*SANS, "imap.example.test"]), check=True)
    tasks = _executed(result)
    assert tasks["Certificates to issue"]["msg"] == "certificates to issue: services"
    assert not tasks["Leaf private keys, on the appliance"]["changed"]  # the key is kept
    assert (_tls(state) / "services.crt").read_text() == before
    assert "imap.example.test" not in _x509(state, "-ext", "subjectAltName")


def test_renewal_deploys_a_new_certificate_for_the_same_key(state: dict[str, Any]) -> None:
    key_before = (_tls(state) / "services.key").read_text()
    serial_before = _x509(state, "-serial")
    result = _run(state, _desired(sans=[*SANS, "imap.example.test"]))
    assert "DNS:imap.example.test" in _x509(state, "-ext", "subjectAltName")
    assert _x509(state, "-serial") != serial_before
    assert (_tls(state) / "services.key").read_text() == key_before
    files = _executed(result)["Domain files"]
    assert files["changed_paths"] == ["/etc/hearth/tls/services.crt",
                                      "/etc/hearth/tls/services.chain.crt"]
    again = _run(state, _desired(sans=[*SANS, "imap.example.test"]))
    assert again.hosts[NAME].changed == 0


def test_a_leaf_key_an_older_hearth_kept_on_the_controller_is_replaced(
        state: dict[str, Any]) -> None:
    """Before keys were made on the box, the controller made them and kept a copy."""
    old_key = (_tls(state) / "services.key").read_text()
    legacy = _controller(state) / NAME / "services.key"
    legacy.write_text(old_key)
    _run(state, _desired(sans=[*SANS, "imap.example.test"]))
    assert not legacy.exists()
    new_key = (_tls(state) / "services.key").read_text()
    assert new_key != old_key
    assert (_x509(state, "-pubkey")
            == in_root(state["root"], "openssl", "pkey", "-in", "/etc/hearth/tls/services.key",
                       "-pubout").stdout)


def test_no_leaf_key_in_events_or_run_files(state: dict[str, Any]) -> None:
    results: list[RunResult] = state["results"]
    assert len(results) == 7, "runs the tests above made"
    body = "".join((_tls(state) / "services.key").read_text().splitlines()[1:-1])
    # A P-256 key's DER: 7 bytes of header, the 32-byte private scalar, then the
    # curve and the public point (which the results may show). Base64 characters
    # 10-50 lie inside the scalar.
    private = body[10:50]
    events = json.dumps([r.events for r in results])
    runs_dir: Path = state["executor"].runs_dir
    files = [p for r in results for p in (runs_dir / r.run_id).rglob("*") if p.is_file()]
    assert any(p.parent.name == "job_events" for p in files)
    assert private not in events
    for path in files:
        assert private not in path.read_text(errors="replace"), f"key in {path}"


# --------------------------------------------------------------------------- #
# The reloads of the pki batch, rendered by Ansible from the role's vars
# --------------------------------------------------------------------------- #

def _appliance(name: str, consumers: list[list[str]], *, drop: tuple[str, ...] = ()
               ) -> dict[str, Any]:
    data = appliance_data(name)
    data["pki"]["certificates"] = [
        {"name": f"cert{i}", "common_name": f"{name}.example.test", "consumers": c}
        for i, c in enumerate(consumers)]
    for domain in drop:
        data[domain] = None
    return appliance_vars(DesiredAppliance.model_validate(data))


POSTFIX = ["systemctl", "reload-or-restart", "postfix"]
DOVECOT = ["systemctl", "reload-or-restart", "dovecot"]
SMBD = ["systemctl", "reload-or-restart", "smbd"]
NAMED = ["systemctl", "reload-or-restart", "named"]
RELOAD_CASES = {
    # host: (appliance vars, services running, the pki batch's on_change)
    "mail-and-samba": (_appliance("mail-and-samba", [["mail", "samba"]]), True,
                       [POSTFIX, DOVECOT, SMBD]),
    "all-consumers": (_appliance("all-consumers", [["dns"], ["samba", "mail"]]), True,
                      [POSTFIX, DOVECOT, SMBD, NAMED]),
    "dns-not-configured": (_appliance("dns-not-configured", [["dns", "mail"]], drop=("dns",)),
                           True, [POSTFIX, DOVECOT]),
    "no-consumers": (_appliance("no-consumers", [[]]), True, []),
    "in-a-root": (_appliance("in-a-root", [["mail", "samba", "dns"]]), False, []),
}


def test_the_pki_batch_reloads_the_services_that_read_certificates(tmp_path: Path) -> None:
    hosts = {name: {"ansible_connection": "local", "hearth_services_running": running}
             for name, (_, running, _) in RELOAD_CASES.items()}
    (tmp_path / "hosts.json").write_text(json.dumps({"all": {"hosts": hosts}}))
    extravars = build_extravars([vars_ for vars_, _, _ in RELOAD_CASES.values()])
    # As the workspace writes them: untrusted data, never template text.
    (tmp_path / "extravars.yml").write_text(
        f"---\nhearth: !unsafe {to_flow_yaml(extravars['hearth'])}\n")
    (tmp_path / "show.yml").write_text(json.dumps([{
        "hosts": "all", "gather_facts": False,
        "vars_files": [str(ANSIBLE_DIR / "roles/pki/defaults/main.yml"),
                       str(ANSIBLE_DIR / "roles/pki/vars/main.yml")],
        "vars": {"appliance": "{{ hearth.appliances[inventory_hostname] }}"},
        "tasks": [{"name": "show", "ansible.builtin.debug": {
            "msg": "{{ pki_changes.on_change | to_json }}"}}],
    }]))
    env = {"ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
           "ANSIBLE_HOME": str(tmp_path / "home"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "HEARTH_PKI_DIR": str(tmp_path / "pki"),
           "PATH": "/usr/bin:/bin"}
    # --check: the CA and certificates do not exist here; the dry-run placeholders stand in.
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--check", "-i",
         str(tmp_path / "hosts.json"), "-e", f"@{tmp_path / 'extravars.yml'}",
         str(tmp_path / "show.yml")],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (task,) = json.loads(proc.stdout)["plays"][0]["tasks"]
    got = {host: json.loads(res["msg"]) for host, res in task["hosts"].items()}
    assert got == {host: expected for host, (_, _, expected) in RELOAD_CASES.items()}
