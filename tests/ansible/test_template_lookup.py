"""hearth_template: the stock template lookup's output, without deep-copying variables.

The plugin exists for speed (ansible/README.md "Speed"): the stock lookup deep
copies every host variable, the whole run's extravars included, on each render.
These tests load both lookups through ansible-core's plugin loader and render
real template files in-process; a variable whose deep copy raises shows which
of them copies.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible.template import Templar

from engine.execution.workspace import ANSIBLE_DIR

lookup_loader.add_directory(str(ANSIBLE_DIR / "lookup_plugins"))


class _NoDeepCopy(dict):
    def __deepcopy__(self, memo: dict) -> Any:
        raise AssertionError("a variable was deep-copied")


def _lookup(name: str):
    loader = DataLoader()
    plugin = lookup_loader.get(name, loader=loader, templar=Templar(loader=loader))
    assert plugin is not None, name
    return plugin


def test_no_variable_is_deep_copied(tmp_path: Path) -> None:
    template = tmp_path / "t.j2"
    template.write_text("{{ big.a }} {{ extra }}\n")
    variables = {"big": _NoDeepCopy(a="A")}
    assert _lookup("hearth_template").run([str(template)], variables=variables,
                                          template_vars={"extra": 1}) == ["A 1\n"]
    # The stock lookup of the installed ansible-core does copy (else this plugin
    # is no longer needed: use ansible.builtin.template again).
    with pytest.raises(AssertionError, match="deep-copied"):
        _lookup("template").run([str(template)], variables=variables, template_vars={"extra": 1})


def test_the_lookup_does_not_change_the_callers_variables(tmp_path: Path) -> None:
    template = tmp_path / "t.j2"
    template.write_text("{{ template_path | basename }} {{ x }}\n")
    variables = {"x": "y"}
    assert _lookup("hearth_template").run([str(template)], variables=variables) == ["t.j2 y\n"]
    assert variables == {"x": "y"}  # template_* and template_vars went into the copy


@pytest.mark.parametrize("kwargs", [
    {},
    {"template_vars": {"zone": {"name": "example.test"}}},
    {"variable_start_string": "[%", "variable_end_string": "%]"},
    {"comment_start_string": "[#", "comment_end_string": "#]", "trim_blocks": False},
], ids=["plain", "template_vars", "variable_strings", "comments_and_trim"])
def test_output_equals_the_stock_lookup(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    template = tmp_path / "t.j2"
    template.write_text(
        "{% if true %}\nname={{ zone.name | default('none') }} [% zone.name | default('-') %]\n"
        "{% endif %}{# c #}[# d #]\n{{ items | join(',') }}\n")
    variables = {"zone": {"name": "var.test"}, "items": ["a", "b"]}
    ours = _lookup("hearth_template").run([str(template)], variables=dict(variables), **kwargs)
    stock = _lookup("template").run([str(template)], variables=dict(variables), **kwargs)
    assert ours == stock
    assert ours != [""]


def test_no_plugin_or_module_imports_ansible_internals() -> None:
    """ansible._internal changes without notice between ansible-core releases."""
    users = [str(p.relative_to(ANSIBLE_DIR)) for p in sorted(ANSIBLE_DIR.rglob("*.py"))
             if re.search(r"\bansible\._internal\b", p.read_text())]
    assert users == []
