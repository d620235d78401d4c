r"""One private directory per Ansible run: what ansible-runner reads, and nothing shared.

``prepare_workspace`` lays out ``<runs_dir>/<run id>/`` (mode 0700) as
ansible-runner expects a ``private_data_dir``:

    env/extravars   the run's values, YAML with every string tagged ``!unsafe``
    env/envvars     ANSIBLE_CONFIG, ANSIBLE_HOME/LOCAL_TEMP/REMOTE_TEMP under the run
    inventory/hosts the appliances of the run (roots on this machine: chroot)
    artifacts/      written by ansible-runner (events, stdout, rc)

Why ``!unsafe``: ansible-core 2.19 loads an ``-e @file`` extravars file
*trusted as template* (``utils/vars.py: load_extra_vars``), so a plain JSON
value ``{{ lookup('pipe','id') }}`` is rendered when a task uses it (tried: it
ran ``id``). A value under a ``!unsafe`` tag is never templated, wherever it
flows (module arguments, template lookups, filters). The tag goes on the one
top-level mapping: 2.19's constructor then builds everything below it as
untrusted while keeping each scalar's own type. (Tagging each string instead
is wrong in 2.19: ``!unsafe "0755"`` re-resolves the scalar as if unquoted and
yields the integer 493.) JSON cannot carry a tag, so the file is YAML written
here: ``"hearth": !unsafe {...}`` in flow style, each string double-quoted with
every non-printable or non-ASCII character escaped (``\uXXXX``/``\UXXXXXXXX``,
which YAML 1.1 readers accept, unlike JSON's surrogate pairs). Keys are our own
names or appliance names (``ObjectName``), never tenant text. The file is 0600
and deleted after the run: it holds password hashes and the agent token.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ExecutionError, InvalidInputError
from engine.execution.extravars import NAMESPACE, reject_ansible_keys
from schemas.address import check_management_address

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
"""The repository's ``ansible/`` directory (project dir of every run)."""


MANAGEMENT_USER = "hearth"
"""The account Ansible logs in as on a real appliance: unprivileged, with ``sudo`` to
root (``become``), provisioned with the control plane's SSH key at enrolment
(docs/deployment.md). Never root: a leaked or misdirected login is not a root login."""


@dataclass(frozen=True)
class Target:
    """One appliance of a run: a root on this machine (chroot) or a box reached by SSH.

    ``address`` is the appliance's registered management address, never a value
    from the tenant's repository (``schemas.address``).
    """

    name: str
    root: Path | None = None
    address: str | None = None
    user: str = MANAGEMENT_USER

    def host_vars(self) -> dict[str, Any]:
        if self.root is not None:
            return {
                "ansible_connection": "community.general.chroot",
                "ansible_host": str(self.root),
                # No init system runs in a root: never reload services there.
                "hearth_services_running": False,
            }
        if self.address is None:
            raise ExecutionError(
                f"appliance {self.name!r} has no registered address: register it with one "
                "(hearth appliance address TENANT NAME ADDRESS)")
        return {"ansible_host": check_management_address(self.address),
                "ansible_user": self.user, "ansible_connection": "ssh",
                "ansible_become": True, "ansible_become_method": "sudo",
                "ansible_become_user": "root"}


@dataclass(frozen=True)
class Workspace:
    run_id: str
    private_data_dir: Path
    inventory: Path
    extravars: Path
    project_dir: Path

    def scrub(self) -> None:
        """Delete the files holding secrets; keep artifacts for the run record."""
        self.extravars.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.private_data_dir, ignore_errors=True)


def _yaml_string(value: str) -> str:
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def to_flow_yaml(value: Any) -> str:
    """``value`` as one line of flow-style YAML (strings double-quoted, ASCII only)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        return _yaml_string(value)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"extravars key {key!r} is not a string")
            # Keys are plain (never templated by Ansible), quoted as JSON.
            items.append(f"{json.dumps(key)}: {to_flow_yaml(item)}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_flow_yaml(item) for item in value) + "]"
    raise InvalidInputError(f"extravars cannot hold a {type(value).__name__}")


def inventory_yaml(targets: list[Target]) -> str:
    hosts = {t.name: t.host_vars() for t in targets}
    return json.dumps({"all": {"hosts": hosts}}, indent=2, sort_keys=True) + "\n"


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def prepare_workspace(
    *,
    runs_dir: Path,
    run_id: str,
    extravars: dict[str, Any],
    targets: list[Target],
    pki_dir: Path,
    project_dir: Path = ANSIBLE_DIR,
) -> Workspace:
    """Create the private data dir of run ``run_id`` (which must be new)."""
    reject_ansible_keys(extravars)
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise InvalidInputError(f"run id {run_id!r} cannot name a directory")
    known = set(extravars[NAMESPACE]["appliances"])
    missing = [t.name for t in targets if t.name not in known]
    if missing:
        raise InvalidInputError(f"no extravars for appliances {', '.join(missing)}")
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = runs_dir / run_id
    try:
        base.mkdir(mode=0o700)
    except FileExistsError:
        raise ExecutionError(f"run directory {base} already exists") from None
    for sub in ("env", "inventory", "home", "tmp"):
        (base / sub).mkdir(mode=0o700)
    extravars_path = base / "env" / "extravars"
    body = to_flow_yaml(extravars[NAMESPACE])
    _write(extravars_path, f"---\n{json.dumps(NAMESPACE)}: !unsafe {body}\n")
    envvars = {
        # ansible-playbook of the interpreter running Hearth (a venv is not on PATH).
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(project_dir / "ansible.cfg"),
        "ANSIBLE_HOME": str(base / "home"),
        "ANSIBLE_LOCAL_TEMP": str(base / "tmp" / "local"),
        "ANSIBLE_REMOTE_TEMP": str(base / "tmp" / "remote"),
        "ANSIBLE_LIBRARY": str(project_dir / "library"),
        "ANSIBLE_ROLES_PATH": str(project_dir / "roles"),
        "ANSIBLE_LOOKUP_PLUGINS": str(project_dir / "lookup_plugins"),
        "ANSIBLE_FILTER_PLUGINS": str(project_dir / "filter_plugins"),
        "HEARTH_PKI_DIR": str(pki_dir),
    }
    _write(base / "env" / "envvars", json.dumps(envvars, indent=2) + "\n")
    inventory = base / "inventory" / "hosts.yml"
    _write(inventory, inventory_yaml(targets))
    # The control-side PKI store: one directory per tenant (CA) and appliance (leaf keys).
    for item in extravars[NAMESPACE]["appliances"].values():
        if item.get("pki") is not None:
            leaf = pki_dir / item["tenant"] / item["name"]
            leaf.mkdir(parents=True, exist_ok=True, mode=0o700)
            for path in (pki_dir, pki_dir / item["tenant"], leaf):
                path.chmod(0o700)
    return Workspace(run_id=run_id, private_data_dir=base, inventory=inventory,
                     extravars=extravars_path, project_dir=project_dir)
