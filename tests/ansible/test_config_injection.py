"""No directive from tenant data: the templates write values only as data, on real roots.

The schema refuses these payloads (``tests/repos/test_control_chars.py``). Here they
get past it, as a bug in the engine or a stale inventory would carry them: each case
takes the extravars ``appliance_vars`` builds for a valid appliance, puts one payload
in, and converges its own root; all roots go in one run. Every case must fail its host
before a file is written (the smb.conf, named.conf, zone, main.cf, virtual map and
dovecot file stay as the image had them; ``testparm -s`` and the files show no
injected parameter), with the hearth_* filter naming the value. On the code before
the filters, the smb.conf newline case renders a ``root preexec`` that testparm
accepts, which this test catches.

One more root converges schema-valid values with the same characters in places
where they are data (a share comment ``a ; b # c [global] $(reboot)``, a TXT record
with ``;``, ``(``, ``$ORIGIN``, a quote and a backslash) and they arrive literally.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.execution.ansible import AnsibleExecutor, RunResult
from engine.execution.extravars import appliance_vars, build_extravars
from engine.execution.workspace import Target
from schemas.config import DesiredAppliance

from .helpers import in_root

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INERT_COMMENT = "a ; b # c [global] $(reboot) {{ 7*7 }}"
INERT_TXT = 'v=spf1 -all; $ORIGIN evil.test. ( x ) "q" \\ end'
ROOT_PREEXEC = "   root preexec = /bin/touch /hearth-pwned"
FILES = {
    "smb": "etc/samba/smb.conf",
    "named-local": "etc/bind/named.conf.local",
    "named-options": "etc/bind/named.conf.options",
    "zone": "etc/bind/hearth/db.example.test",
    "main.cf": "etc/postfix/main.cf",
    "virtual": "etc/postfix/virtual",
    "dovecot": "etc/dovecot/conf.d/99-hearth.conf",
}
_names = itertools.count(1)


def desired(name: str) -> DesiredAppliance:
    return DesiredAppliance.model_validate({
        "tenant": "acme",
        "name": name,
        "hostname": f"{name}.example.test",
        "policies": {"prune": False},
        "users": {},
        "dns": {
            "zones": [{"name": "example.test", "records": [
                {"type": "A", "name": name, "address": "192.0.2.10"},
                {"type": "A", "name": "www", "address": "192.0.2.20"},
                {"type": "TXT", "name": "@", "text": INERT_TXT},
            ]}],
            "forwarders": ["192.0.2.53"],
        },
        "samba": {"workgroup": "ACME", "shares": [
            {"name": "sheets", "path": "/srv/sheets", "comment": INERT_COMMENT},
            {"name": "forms", "path": "/srv/forms", "comment": "Blank forms",
             "read_only": True, "guest_ok": True},
        ]},
        "mail": {
            "domains": ["example.test"],
            "mailboxes": [{"address": "alice@example.test", "user": "alice"}],
            "aliases": [{"address": "info@example.test", "destinations": ["alice@example.test"]}],
            "relay_host": "[smtp.example.net]:587",
        },
    })


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(item: dict[str, Any]) -> None:
        target = item
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _tls(item: dict[str, Any]) -> None:
    item["mail"]["tls"] = {"chain_path": "/etc/hearth/tls/m.chain.crt\n!include_try /etc/shadow",
                           "key_path": "/etc/hearth/tls/m.key"}


@dataclass(frozen=True)
class Case:
    mutate: Callable[[dict[str, Any]], None]
    file: str
    """Key of FILES: the file the payload aims at."""
    marker: str
    """Text of the injected directive, which must not reach that file."""
    error: str
    """What the failed host's message must say (the filter and the value's name)."""


CASES: dict[str, Case] = {
    # smb.conf
    "smb-comment-newline-root-preexec": Case(
        _set(("samba", "shares", 0, "comment"), "Day sheets\n" + ROOT_PREEXEC), "smb",
        "root preexec", "hearth_smb: share comment"),
    "smb-path-newline-root-postexec": Case(
        _set(("samba", "shares", 0, "path"), "/srv/sheets\n   root postexec = /bin/id"), "smb",
        "root postexec", "hearth_smb: share path"),
    "smb-comment-percent-env": Case(
        _set(("samba", "shares", 0, "comment"), "leak %$(PATH)"), "smb", "%$(PATH)",
        "hearth_smb: share comment"),
    "smb-comment-backslash-continuation": Case(
        _set(("samba", "shares", 1, "comment"), "Blank forms \\"), "smb", "forms \\",
        "hearth_smb: share comment"),
    "smb-share-named-global": Case(
        _set(("samba", "shares", 0, "name"), "GLOBAL"), "smb", "[GLOBAL]",
        "hearth_smb_section: share name"),
    "smb-share-name-new-section": Case(
        _set(("samba", "shares", 0, "name"), "x]\n" + ROOT_PREEXEC + "\n[y"), "smb",
        "root preexec", "hearth_smb_section: share name"),
    "smb-valid-users-newline": Case(
        _set(("samba", "shares", 0, "valid_users"), ["alice\n" + ROOT_PREEXEC]), "smb",
        "root preexec", "hearth_name: valid user"),
    # named.conf
    "named-forwarder-newline-directive": Case(
        _set(("dns", "forwarders"), ["192.0.2.53;\n\t};\n\tallow-query { any; };\n\tforwarders {"
                                     "\n\t\t192.0.2.54"]),
        "named-options", "allow-query", "hearth_ip: forwarder"),
    "named-kept-zone-include": Case(
        _set(("dns", "keep_zones"), ['old.test" { type primary; file "db.old"; };\n'
                                     'include "/etc/bind/named.conf.default-zones";\nzone "x']),
        "named-local", "named.conf.default-zones", "hearth_name: kept zone name"),
    # zone file
    "zone-data-newline-origin": Case(
        _set(("dns", "zones", 0, "records", 1, "data"),
             "192.0.2.20\n$ORIGIN evil.test.\nwww IN A 192.0.2.66"),
        "zone", "$ORIGIN evil.test.\n", "hearth_zone_rdata: record data"),
    "zone-name-include": Case(
        _set(("dns", "zones", 0, "records", 1, "name"), "$INCLUDE /etc/bind/db.empty\nwww"),
        "zone", "$INCLUDE", "hearth_zone_name: record name"),
    "zone-data-semicolon-comment": Case(
        _set(("dns", "zones", 0, "records", 2, "data"), '"v=spf1 -all" ; hidden'),
        "zone", "; hidden", "hearth_zone_rdata: record data"),
    "zone-data-open-paren": Case(
        _set(("dns", "zones", 0, "records", 1, "data"), "192.0.2.20 ("),
        "zone", "192.0.2.20 (", "hearth_zone_rdata: record data"),
    "zone-ttl-text": Case(
        _set(("dns", "zones", 0, "ttl"), "3600\n$INCLUDE /etc/bind/db.empty"),
        "zone", "$INCLUDE", "hearth_int: zone ttl"),
    # main.cf
    "postfix-relay-newline-mynetworks": Case(
        _set(("mail", "relay_host"), "[smtp.example.net]:587\nmynetworks = 0.0.0.0/0"),
        "main.cf", "0.0.0.0/0", "hearth_postfix: relay host"),
    "postfix-domain-list-expansion": Case(
        _set(("mail", "domains"), ["example.test, $mydestination"]),
        "main.cf", "$mydestination", "hearth_postfix: mail domain"),
    # virtual map
    "virtual-address-newline-catchall": Case(
        _set(("mail", "mailboxes", 0, "address"), "alice@example.test alice\n@example.test"),
        "virtual", "@example.test alice\n", "hearth_postfix_address: mailbox address"),
    "virtual-destination-list": Case(
        _set(("mail", "aliases", 0, "destinations"), ["root, alice@example.test"]),
        "virtual", "root,", "hearth_postfix_address: alias destination"),
    "virtual-address-comment": Case(
        _set(("mail", "mailboxes", 0, "address"), "#alice@example.test"),
        "virtual", "#alice", "hearth_postfix_address: mailbox address"),
    # dovecot
    "dovecot-path-newline-include": Case(_tls, "dovecot", "!include", "hearth_path: "),
}


@dataclass
class Converged:
    roots: dict[str, Path]
    """Case id (and "inert") -> root."""
    names: dict[str, str]
    """Case id -> appliance name."""
    before: dict[str, dict[str, str | None]]
    """Case id -> file key -> content before the run (None: absent)."""
    result: RunResult


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


@pytest.fixture(scope="module")
def converged(clone, executor: AnsibleExecutor) -> Converged:
    ids = ["inert", *CASES]
    names = {case: f"inj-{next(_names)}" for case in ids}
    roots = dict(zip(ids, clone(list(names.values()),
                                hostnames={n: f"{n}.example.test" for n in names.values()}),
                     strict=True))
    items = []
    for case in ids:
        item = appliance_vars(desired(names[case]))
        if case != "inert":
            CASES[case].mutate(item)
        items.append(item)
    before = {case: {key: _read(roots[case] / rel) for key, rel in FILES.items()} for case in ids}
    result = executor.run(run_id="config-injection", extravars=build_extravars(items),
                          targets=[Target(name=names[c], root=roots[c]) for c in ids],
                          domains=["dns", "samba", "mail"])
    print(f"{len(ids)} roots converged in one run: {result.duration:.1f} s")
    return Converged(roots=roots, names=names, before=before, result=result)


@pytest.mark.parametrize("case", list(CASES))
def test_payload_never_reaches_the_file(converged: Converged, case: str) -> None:
    spec = CASES[case]
    root = converged.roots[case]
    rendered = _read(root / FILES[spec.file]) or ""
    assert spec.marker not in rendered, f"{spec.marker!r} reached {FILES[spec.file]}"
    if spec.file == "smb":
        effective = in_root(root, "testparm", "-s", check=False).stdout
        assert "root preexec" not in effective and "root postexec" not in effective, effective
    # Not even the other domains' files of this host were written: the run stopped at render.
    after = {key: _read(root / rel) for key, rel in FILES.items()}
    assert after == converged.before[case]
    host = converged.result.hosts[converged.names[case]]
    assert host.failed == 1, host
    messages = [e.get("msg", "") for e in converged.result.events
                if e["host"] == converged.names[case] and e["event"] == "runner_on_failed"]
    assert any(spec.error in m and "refusing to render it into a config file" in m
               for m in messages), messages


def test_inert_values_arrive_as_data(converged: Converged) -> None:
    root = converged.roots["inert"]
    assert converged.result.hosts[converged.names["inert"]].failed == 0
    smb = in_root(root, "testparm", "-s").stdout
    assert "\tcomment = a ; b # c [global] $(reboot) {{ 7*7 }}\n" in smb
    assert "[global]\n" in smb and smb.count("[global]") == 2  # the section and the comment
    zone = (root / FILES["zone"]).read_text()
    assert '@ IN TXT "v=spf1 -all; $ORIGIN evil.test. ( x ) \\"q\\" \\\\ end"\n' in zone
    dump = in_root(root, "named-checkzone", "-D", "example.test",
                   "/etc/bind/hearth/db.example.test").stdout
    assert ('example.test.\t\t\t\t      3600 IN TXT\t"v=spf1 -all; $ORIGIN evil.test. ( x ) '
            '\\"q\\" \\\\ end"') in dump, dump
    assert "evil.test" not in dump.replace("$ORIGIN evil.test. ( x )", "")
