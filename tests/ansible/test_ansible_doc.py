"""Every custom module and documented plugin renders with ansible-doc.

ansible-doc reads DOCUMENTATION, EXAMPLES and RETURN without importing the
file (a DOCUMENTATION computed at import time does not render), so this is how
an Ansible engineer finds out what a Hearth module takes. Modules are found
with -M library; plugins through ansible.cfg's plugin paths; roles through
their meta/argument_specs.yml.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.execution.workspace import ANSIBLE_DIR

BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ANSIBLE_DIR / "library").glob("*.py"))
ROLES = sorted(p.parent.parent.name for p in (ANSIBLE_DIR / "roles").glob("*/meta/argument_specs.yml"))

CASES = (
    [pytest.param(["-M", "library", name], name, id=f"module-{name}") for name in MODULES]
    + [pytest.param(["-t", "lookup", "hearth_template"], "hearth_template", id="lookup"),
       pytest.param(["-t", "inventory", "hearth_appliances"], "hearth_appliances", id="inventory")]
    + [pytest.param(["-t", "role", "-r", "roles", name], name, id=f"role-{name}") for name in ROLES]
)


def test_every_module_and_role_is_listed() -> None:
    assert MODULES == ["hearth_files", "hearth_samba_accounts", "hearth_users"]
    assert ROLES == ["agent", "dns", "mail", "pki", "samba", "users"]


@pytest.mark.parametrize(("args", "name"), CASES)
def test_ansible_doc_renders(args: list[str], name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}:/usr/bin:/bin",
           "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
           "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
           "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([str(BIN / "ansible-doc"), *args], cwd=ANSIBLE_DIR, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == "", proc.stderr[-3000:]  # no "Missing documentation" error or warning
    assert name in proc.stdout.splitlines()[0], proc.stdout[:500]
    if "-t" not in args or args[1] != "role":
        assert "OPTIONS" in proc.stdout and "EXAMPLES" in proc.stdout, proc.stdout[:3000]
    else:
        assert "ENTRY POINT: *main*" in proc.stdout and "appliance" in proc.stdout, proc.stdout[:3000]
