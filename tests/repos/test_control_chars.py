"""Tenant YAML cannot carry a directive into an appliance's config files: refused at the schema.

Each case edits one line of the example repo to hold a payload aimed at one config
format (a line break and a directive, a comment or section trick, a Samba
%-substitution, a zone-file ``$ORIGIN``/``$INCLUDE``, a Postfix ``$`` or list
separator, a Dovecot ``!include``) and checks that validation names the file, line
and column of the value with a message about the field. Values are written as YAML
double-quoted escapes (``\\n``, ``\\N`` for NEL, ``\\L``/``\\P`` for U+2028/U+2029),
which is how they would arrive in a pushed file. The same payloads, past the
schema, are refused by the templates: ``tests/ansible/test_config_injection.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from engine.errors import ConfigError
from engine.repos.reader import validate_worktree
from schemas.config import ConfigText, Group, Share

FRONT = "appliances/front-office.yaml"
LF = "must not contain a line feed"

# id -> (file, line to replace, replacement, "file:line:col: " of the issue, words of the message)
CASES: dict[str, tuple[str, str, str, str, str]] = {
    # smb.conf
    "smb-comment-newline-root-preexec": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records\\n   root preexec = /bin/sh -c id"',
        f"{FRONT}:43:9: ", f"comment: {LF} (at character 8)"),
    "smb-comment-carriage-return": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records\\r   root preexec = id"',
        f"{FRONT}:43:9: ", "comment: must not contain a carriage return"),
    "smb-comment-crlf": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records\\r\\n[global]"',
        f"{FRONT}:43:9: ", "comment: must not contain a carriage return"),
    "smb-comment-nel": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records\\N   root preexec = id"',
        f"{FRONT}:43:9: ", "comment: must not contain a next-line (NEL)"),
    "smb-comment-line-separator": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records\\L   root preexec = id"',
        f"{FRONT}:43:9: ", "comment: must not contain a line separator"),
    "smb-comment-paragraph-separator": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records\\P   root preexec = id"',
        f"{FRONT}:43:9: ", "comment: must not contain a paragraph separator"),
    "smb-comment-tab": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records\\tnotes"', f"{FRONT}:43:9: ", "comment: must not contain a tab"),
    "smb-comment-hash-line": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records\\n# read only = yes"', f"{FRONT}:43:9: ", f"comment: {LF}"),
    "smb-comment-semicolon-section": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records\\n; x\\n[global]\\n   guest ok = yes"',
        f"{FRONT}:43:9: ", f"comment: {LF}"),
    "smb-comment-percent-env": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: "Records %$(PATH)"', f"{FRONT}:43:9: ",
        "comment: must not contain '%': Samba expands %-variables here"),
    "smb-comment-percent-user": (
        FRONT, "        comment: Patient records (dentists and reception)",
        "        comment: Home of %U", f"{FRONT}:43:9: ", "comment: must not contain '%'"),
    "smb-comment-trailing-backslash": (
        FRONT, "        comment: Blank forms, read-only for everyone on the LAN",
        '        comment: "Blank forms \\\\"', f"{FRONT}:52:9: ",
        "comment: must not end with a backslash: in smb.conf it joins the next line"),
    "smb-comment-edge-space": (
        FRONT, "        comment: Patient records (dentists and reception)",
        '        comment: " Records"', f"{FRONT}:43:9: ",
        "comment: must not begin or end with a space"),
    "smb-path-newline-root-postexec": (
        FRONT, "        path: /srv/samba/patients",
        '        path: "/srv/samba/patients\\n   root postexec = id"', f"{FRONT}:42:9: ",
        f"path: {LF}"),
    "smb-path-percent": (
        FRONT, "        path: /srv/samba/patients", "        path: /srv/samba/%U",
        f"{FRONT}:42:9: ", "path: must not contain '%'"),
    "smb-share-name-newline-section": (
        FRONT, "      - name: patients", '      - name: "patients]\\n[global"',
        f"{FRONT}:41:9: ", f"name: {LF}"),
    "smb-share-named-global": (
        FRONT, "      - name: patients", "      - name: global", f"{FRONT}:41:9: ",
        "name: 'global' is a reserved smb.conf section name"),
    "smb-share-named-homes": (
        FRONT, "      - name: patients", "      - name: Homes", f"{FRONT}:41:9: ",
        "name: 'Homes' is a reserved smb.conf section name"),
    "smb-valid-users-newline": (
        FRONT, "        valid_users: [skim]", '        valid_users: ["skim\\n   root preexec = id"]',
        f"{FRONT}:49:23: ", f"valid_users: {LF}"),
    # named.conf
    "named-forwarder-newline-include": (
        FRONT, "    forwarders: [9.9.9.9, 1.1.1.1]     # where names outside our zones are resolved",
        '    forwarders: ["fe80::1%x;\\n};\\ninclude \\"rndc.key\\";\\noptions {#", 1.1.1.1]',
        f"{FRONT}:19:18: ", f"forwarders: {LF}"),
    "named-forwarder-zone-index": (
        FRONT, "    forwarders: [9.9.9.9, 1.1.1.1]     # where names outside our zones are resolved",
        "    forwarders: [9.9.9.9, \"fe80::1%eth0\"]", f"{FRONT}:19:27: ",
        "forwarders: 'fe80::1%eth0': an address with a zone index"),
    "named-zone-name-quote-include": (
        FRONT, "      - name: brightsmile.example",
        '      - name: "brightsmile.example\\" {}; include \\"/etc/bind/rndc.key"',
        f"{FRONT}:21:9: ", "is not a valid domain name"),
    # zone files
    "zone-txt-newline-origin": (
        FRONT, '          - {name: "@", type: TXT, text: "v=spf1 mx -all"}',
        '          - {name: "@", type: TXT, text: "v=spf1 mx -all\\n$ORIGIN evil.example."}',
        f"{FRONT}:32:36: ", f"text: {LF}"),
    "zone-txt-newline-include": (
        FRONT, '          - {name: "@", type: TXT, text: "v=spf1 mx -all"}',
        '          - {name: "@", type: TXT, text: "x\\n$INCLUDE /etc/shadow"}',
        f"{FRONT}:32:36: ", f"text: {LF}"),
    "zone-record-name-origin": (
        FRONT, "          - {name: lab, type: A, address: 192.168.10.20}",
        '          - {name: "$ORIGIN evil.example.", type: A, address: 192.168.10.20}',
        f"{FRONT}:26:14: ", "is not a valid record name"),
    "zone-record-name-semicolon": (
        FRONT, "          - {name: lab, type: A, address: 192.168.10.20}",
        '          - {name: "lab ; x", type: A, address: 192.168.10.20}',
        f"{FRONT}:26:14: ", "is not a valid record name"),
    "zone-aaaa-zone-index-include": (
        FRONT, '          - {name: xray, type: AAAA, address: "fd00:10::50"}',
        '          - {name: xray, type: AAAA, address: "fd00:10::50%\\n$INCLUDE shadow"}',
        f"{FRONT}:28:38: ", "address: 'fd00:10::50%\\n$INCLUDE shadow': an address with a zone"),
    "zone-cname-paren": (
        FRONT, "          - {name: files, type: CNAME, target: front-office}",
        '          - {name: files, type: CNAME, target: "front-office ("}',
        f"{FRONT}:29:40: ", "is not a valid record name"),
    # main.cf
    "postfix-relay-newline-mynetworks": (
        FRONT, '    relay_host: "[smtp.relay.example]:587"   # outgoing mail goes through the '
               "ISP's relay",
        '    relay_host: "[smtp.relay.example]:587\\nmynetworks = 0.0.0.0/0"',
        f"{FRONT}:67:5: ", f"relay_host: {LF}"),
    "postfix-relay-zone-index": (
        FRONT, '    relay_host: "[smtp.relay.example]:587"   # outgoing mail goes through the '
               "ISP's relay",
        '    relay_host: "[fe80::1%eth0]:25"', f"{FRONT}:67:5: ",
        "relay_host: 'fe80::1%eth0': an address with a zone index"),
    "postfix-relay-dollar": (
        FRONT, '    relay_host: "[smtp.relay.example]:587"   # outgoing mail goes through the '
               "ISP's relay",
        '    relay_host: "$mynetworks"', f"{FRONT}:67:5: ", "is not a valid domain name"),
    "postfix-domain-list": (
        FRONT, "    domains: [brightsmile.example]",
        '    domains: ["brightsmile.example, $mydestination"]', f"{FRONT}:56:15: ",
        "is not a valid domain name"),
    # virtual map
    "virtual-mailbox-newline-catchall": (
        FRONT, "      - {address: sarah.kim@brightsmile.example, user: skim}",
        '      - {address: "sarah.kim@brightsmile.example skim\\n@brightsmile.example", user: skim}',
        f"{FRONT}:58:10: ", f"address: {LF}"),
    "virtual-alias-destination-list": (
        FRONT, "        destinations: [julia.chen@brightsmile.example]",
        '        destinations: ["root,julia.chen@brightsmile.example"]', f"{FRONT}:64:24: ",
        "destinations: 'root,julia.chen@brightsmile.example': local part is not a valid"),
    "virtual-alias-comment": (
        FRONT, "      - address: appointments@brightsmile.example",
        '      - address: "#appointments@brightsmile.example"', f"{FRONT}:63:9: ",
        "a local part starting with '#' would be a comment in the virtual map"),
    # dovecot.conf (certificate paths come from certificate names)
    "dovecot-cert-name-include": (
        FRONT, "      - name: mail", '      - name: "mail\\n!include /etc/shadow"',
        f"{FRONT}:71:9: ", f"name: {LF}"),
    "pki-san-newline": (
        FRONT, "        sans: [mail.brightsmile.example, files.brightsmile.example, 192.168.10.10]",
        '        sans: ["mail.brightsmile.example\\nDNS:evil.example"]', f"{FRONT}:73:16: ",
        f"sans: {LF}"),
    # /etc/passwd, authorized_keys and free text elsewhere
    "passwd-full-name-newline": (
        "users.yaml", "      full_name: Julia Chen",
        '      full_name: "Julia\\nevil::0:0::/root:/bin/bash"', "users.yaml:54:7: ",
        f"full_name: {LF}"),
    "passwd-full-name-colon": (
        "users.yaml", "      full_name: Julia Chen", "      full_name: Julia:Chen",
        "users.yaml:54:7: ", "full_name: must not contain ':'"),
    "authorized-keys-newline": (
        "users.yaml",
        "        - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6AF7pMj2U1HMxHrdUJ0+GpmS/ZPOy6bo0qSIt2KtcK "
        "skim@laptop",
        '        - "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH6AF7pMj2U1HMxHrdUJ0+GpmS/ZPOy6bo0qSIt2KtcK '
        'skim\\u2028command=\\"id\\" ssh-ed25519 AAAA"', "users.yaml:36:11: ",
        "ssh_keys: must not contain a line separator"),
    "email-escape-sequence": (
        "users.yaml", "      email: julia.chen@brightsmile.example",
        '      email: "julia\\e[2Jchen@brightsmile.example"', "users.yaml:55:7: ",
        "email: must not contain the control character U+001B"),
    "group-description-nul": (
        "groups.yaml", "      description: Dentists of both sites",
        '      description: "Dentists\\0"', "groups.yaml:13:7: ",
        "description: must not contain a NUL"),
    "tenant-display-name-c1": (
        "tenant.yaml", "  display_name: Bright Smile Dental",
        '  display_name: "Bright Smile\\x9b2J"', "tenant.yaml:11:3: ",
        "display_name: must not contain the control character U+009B"),
    "ca-common-name-delete": (
        "tenant.yaml", "    common_name: Bright Smile Dental Internal CA",
        '    common_name: "Bright\\x7f CA"', "tenant.yaml:27:5: ",
        "common_name: must not contain the control character U+007F"),
    "site-file-separator": (
        FRONT, "  site: Elm Street", '  site: "Elm\\x1cStreet"', f"{FRONT}:13:3: ",
        "site: must not contain the control character U+001C"),
}


def _repo_with(example_repo_dir: Path, tmp_path: Path, file: str, old: str, new: str) -> Path:
    work = tmp_path / "brightsmile"
    shutil.copytree(example_repo_dir, work)
    path = work / file
    text = path.read_text()
    assert text.count(old + "\n") == 1, f"{old!r} is not one line of {file}"
    path.write_text(text.replace(old + "\n", new + "\n"))
    return work


@pytest.mark.parametrize("case", list(CASES))
def test_payload_is_refused_with_its_location(case: str, example_repo_dir: Path,
                                              tmp_path: Path) -> None:
    file, old, new, where, words = CASES[case]
    work = _repo_with(example_repo_dir, tmp_path, file, old, new)
    with pytest.raises(ConfigError) as caught:
        validate_worktree(work)
    issues = [str(i) for i in caught.value.issues]
    assert any(i.startswith(where) and words in i for i in issues), issues


def test_hearth_validate_prints_file_line_col(example_repo_dir: Path, tmp_path: Path) -> None:
    file, old, new, _, _ = CASES["smb-comment-newline-root-preexec"]
    work = _repo_with(example_repo_dir, tmp_path, file, old, new)
    result = subprocess.run([sys.executable, "-m", "engine.cli", "validate", str(work)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "appliances/front-office.yaml:43:9: comment: must not contain a line feed (at "
        "character 8): values end up in line-oriented config files, where only a plain space "
        "is safe",
    ]


CONTROL = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]] + ["\u2028", "\u2029",
                                                                          "\ud800", "\udfff"]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_every_control_character_is_refused(char: str) -> None:
    with pytest.raises(ValidationError, match="must not contain"):
        TypeAdapter(ConfigText).validate_python(f"a{char}b")
    with pytest.raises(ValidationError, match="must not contain"):
        Group(name="staff", description=f"a{char}b")


@pytest.mark.parametrize("text", [
    "Dr. Zoë Ångström", "日本語のコメント", "Files 📁", "a ; b # c [global] $(reboot)",
    "x" * 256, "Persian\u200cname", "",
])
def test_text_without_control_characters_is_kept(text: str) -> None:
    assert Group(name="staff", description=text).description == text


def test_data_that_is_inert_in_smb_conf_is_accepted() -> None:
    share = Share(name="Day sheets", path="/srv/samba/Day sheets",
                  comment="a ; b # c [global] $(reboot) \\\\server\\share")
    assert share.comment == "a ; b # c [global] $(reboot) \\\\server\\share"
