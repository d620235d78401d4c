"""`ansible-lint --profile production` finds nothing in ansible/.

The profile is the strictest ansible-lint has: FQCNs, task and play names,
role-prefixed variables, role metadata and argument specs, YAML style, risky
permissions, no ignore_errors. It runs as a person would, from ansible/ with the
project's ansible.cfg and .ansible-lint (which skips no rule). ansible-lint is
pinned in pyproject.toml's dev extra, so a finding here is ours, not a new rule.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from engine.execution.workspace import ANSIBLE_DIR

BIN = Path(sys.executable).parent


def test_ansible_lint_production_profile_is_clean(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}:/usr/bin:/bin",
           "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
           "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
           "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--offline", "-f", "pep8",
         "--nocolor"],
        cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "Profile 'production' was required, and it passed." in output, output[-3000:]
    # It looked at the project: every playbook, role file and plugin it knows.
    processed = int(re.search(r"in (\d+) files processed", output).group(1))
    yaml_files = [p for p in ANSIBLE_DIR.rglob("*.y*ml") if ".ansible" not in p.parts]
    assert processed >= len(yaml_files), output[-3000:]
