"""The hearth_* template filters, value by value: what passes unchanged and what fails.

The filters are the templates' second line of defence (``ansible/filter_plugins/hearth_conf.py``);
``test_config_injection.py`` shows them stopping payloads on real roots. These tables pin the
rule of each one, including the values the example repository and the engine produce, which
must keep rendering.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

_PATH = Path(__file__).resolve().parents[2] / "ansible" / "filter_plugins" / "hearth_conf.py"
_SPEC = importlib.util.spec_from_file_location("hearth_conf", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
hearth_conf = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(hearth_conf)
FILTERS = hearth_conf.FilterModule().filters()

ACCEPTED = [
    ("hearth_smb", "Patient records (dentists and reception)"),
    ("hearth_smb", "a ; b # c [global] $(reboot) `id` {{ 7*7 }}"),
    ("hearth_smb", "\\\\server\\share is the old one"),
    ("hearth_smb", ""),
    ("hearth_smb", "/srv/samba/Day sheets"),
    ("hearth_smb_section", "Day sheets"),
    ("hearth_name", "BRIGHTSMILE"),
    ("hearth_name", "10.168.192.in-addr.arpa"),
    ("hearth_name", "it-admins"),
    ("hearth_path", "/etc/hearth/tls/mail.chain.crt"),
    ("hearth_ip", "9.9.9.9"),
    ("hearth_ip", "fd00:10::50"),
    ("hearth_int", 3600),
    ("hearth_zone_name", "@"),
    ("hearth_zone_name", "_imaps._tcp"),
    ("hearth_zone_name", "*.lab"),
    ("hearth_zone_name", "front-office.brightsmile.example."),
    ("hearth_zone_rdata", "192.168.10.10"),
    ("hearth_zone_rdata", "fd00:10::50"),
    ("hearth_zone_rdata", "10 front-office.brightsmile.example."),
    ("hearth_zone_rdata", "0 1 993 front-office.brightsmile.example."),
    ("hearth_zone_rdata", '"v=spf1 mx -all"'),
    ("hearth_zone_rdata", '"v=hearth1 {% raw %} {{ 7*7 }}"'),
    ("hearth_zone_rdata", '"a; $ORIGIN x. ( ) \\"q\\" \\\\" "second  piece"'),
    ("hearth_zone_rdata", '"caf\\195\\169"'),
    ("hearth_postfix", "[smtp.relay.example]:587"),
    ("hearth_postfix", "brightsmile.example"),
    ("hearth_postfix_address", "julia.chen@brightsmile.example"),
    ("hearth_postfix_address", "o'brien+tag@brightsmile.example"),
]

REFUSED = [
    ("hearth_smb", "x\n   root preexec = id", "contains the control character U+000A"),
    ("hearth_smb", "x\x85y", "contains the control character U+0085"),
    ("hearth_smb", "x\u2028y", "contains the control character U+2028"),
    ("hearth_smb", "x\ty", "contains the control character U+0009"),
    ("hearth_smb", "%$(PATH)", "contains '%'"),
    ("hearth_smb", "forms \\", "ends with a backslash"),
    ("hearth_smb", " lead", "begins or ends with a space"),
    ("hearth_smb", 7, "is a int, not a string"),
    ("hearth_smb_section", "homes", "is a reserved section name"),
    ("hearth_smb_section", "a]b", "contains '[' or ']'"),
    ("hearth_name", "alice bob", "is not a name"),
    ("hearth_name", "-x", "is not a name"),
    ("hearth_path", "/etc/x\n!include /etc/shadow", "control character U+000A"),
    ("hearth_path", "/etc/hearth/../shadow", "contains '..'"),
    ("hearth_path", "relative/x", "is not an absolute path"),
    ("hearth_path", "/etc/$x", "is not an absolute path"),
    ("hearth_ip", "fe80::1%eth0", "has a zone index"),
    ("hearth_ip", "192.0.2.1; }", "is not an IP address"),
    ("hearth_int", "3600", "is not an integer"),
    ("hearth_int", True, "is not an integer"),
    ("hearth_zone_name", "$ORIGIN", "is not '@' or a domain name"),
    ("hearth_zone_name", "www ; x", "is not '@' or a domain name"),
    ("hearth_zone_rdata", '"v=1" ; hidden', "has ';'"),
    ("hearth_zone_rdata", "192.0.2.20 (", "has '('"),
    ("hearth_zone_rdata", "$INCLUDE", "has '$INCLUDE'"),
    ("hearth_zone_rdata", '"unterminated', "has '\"unterminated'"),
    ("hearth_zone_rdata", '"a"b', "has '\"a\"b'"),
    ("hearth_zone_rdata", "1  2", "has ''"),
    ("hearth_postfix", "$mynetworks", "is not a main.cf word"),
    ("hearth_postfix", "a.example, b.example", "is not a main.cf word"),
    ("hearth_postfix_address", "#alice@example.test", "is not a plain address"),
    ("hearth_postfix_address", "root,alice@example.test", "is not a plain address"),
    ("hearth_postfix_address", "alice@example.test root", "is not a plain address"),
]


@pytest.mark.parametrize(("name", "value"), ACCEPTED, ids=[f"{n}-{i}" for i, (n, _) in
                                                            enumerate(ACCEPTED)])
def test_value_passes_unchanged(name: str, value: object) -> None:
    assert FILTERS[name](value, "the value") is value


@pytest.mark.parametrize(("name", "value", "why"), REFUSED,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(REFUSED)])
def test_value_fails_the_render(name: str, value: object, why: str) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS[name](value, "the value")
    message = str(caught.value)
    assert message.startswith(f"{name}: the value {str(value)!r} "), message
    assert why in message, message
    assert message.endswith("; refusing to render it into a config file"), message
