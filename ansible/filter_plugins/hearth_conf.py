"""Filters that let a value into a config file only as data: the templates' second line of defence.

The schema (``schemas/config.py``) already refuses what these filters refuse, with
file:line:col; the filters are here for a value that reaches a template some other
way (an older inventory, a bug in the engine, a hand-made extravars file). Every
value a dns, samba or mail template interpolates goes through one of them; each
checks the rule of the place it lands and returns the value unchanged, or fails the
render, so a bad value fails the task before any file is written. None of them
rewrites a value: a silently changed comment or path would be drift nobody asked for.

``what`` names the value in the error (``'share comment'``). The rules, by filter
(``ansible/README.md`` has the table per file):

    every filter        no control character: Unicode Cc (C0, DEL, C1 with NEL),
                        U+2028/U+2029, lone surrogates
    hearth_smb          smb.conf value: no '%' (Samba's %-variables, no escape), no
                        leading/trailing space (dropped), no trailing '\\' (continues
                        the line onto the next)
    hearth_smb_section  a [section] name: hearth_smb, no '[' or ']', not global/homes/
                        printers
    hearth_name         a bare word: letters, digits, '_', '.', '-' (user, group, zone,
                        host and workgroup names, record types)
    hearth_path         an absolute path of letters, digits and '_.+-', no '..'
    hearth_ip           an IPv4 or IPv6 address without a zone index ('%...')
    hearth_int          an integer (not a bool, not a numeric string)
    hearth_zone_name    a zone-file owner name: '@' or labels (with '_' and '*'); never
                        '$ORIGIN'/'$INCLUDE' or anything else starting a directive
    hearth_zone_rdata   record data: bare tokens of letters, digits and '._:*@/+=-'
                        and double-quoted strings of printable ASCII with backslash
                        escapes, one space apart; so no ';' comment, '(' continuation
                        or '$' outside quotes
    hearth_postfix      a main.cf word: letters, digits and '_.:[]/+-' (no '$'
                        expansion, no ',' or space list separator, no '#')
    hearth_postfix_address  a virtual-map address: no space, ',', '"', brackets or
                        ';:\\<>()', not starting with '#' (a comment line)
"""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_PATH = re.compile(r"(/[A-Za-z0-9_.+-]+)+")
_ZONE_NAME = re.compile(r"@|[A-Za-z0-9_*-]+(\.[A-Za-z0-9_-]+)*\.?")
_RDATA_TOKEN = re.compile(r'[A-Za-z0-9._:*@/+=-]+|"([\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"')
_POSTFIX = re.compile(r"[A-Za-z0-9_.:\[\]/+-]+")
_POSTFIX_ADDRESS = re.compile(r"[^\s,#\"<>()\\;:\[\]][^\s,\"<>()\\;:\[\]]*")
SAMBA_RESERVED = frozenset({"global", "homes", "printers"})


def _fail(filter_name: str, what: str, value: object, why: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"{filter_name}: {what} {str(value)!r} {why}; refusing to "
                              "render it into a config file")


def _text(filter_name: str, value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(filter_name, what, value, f"is a {type(value).__name__}, not a string")
    found = _CONTROL.search(value)
    if found:
        raise _fail(filter_name, what, value,
                    f"contains the control character U+{ord(found.group()):04X}")
    return value


def _matching(filter_name: str, pattern: re.Pattern[str], value: object, what: str,
              rule: str) -> str:
    text = _text(filter_name, value, what)
    if not pattern.fullmatch(text):
        raise _fail(filter_name, what, value, f"is not {rule}")
    return text


def _smb(filter_name: str, value: object, what: str) -> str:
    text = _text(filter_name, value, what)
    if "%" in text:
        raise _fail(filter_name, what, value, "contains '%' (a Samba substitution)")
    if text != text.strip(" "):
        raise _fail(filter_name, what, value, "begins or ends with a space")
    if text.endswith("\\"):
        raise _fail(filter_name, what, value, "ends with a backslash (a line continuation)")
    return text


def hearth_smb(value: object, what: str = "value") -> object:
    _smb("hearth_smb", value, what)
    return value


def hearth_smb_section(value: object, what: str = "section name") -> object:
    text = _smb("hearth_smb_section", value, what)
    if not text or "[" in text or "]" in text:
        raise _fail("hearth_smb_section", what, value, "is empty or contains '[' or ']'")
    if text.lower() in SAMBA_RESERVED:
        raise _fail("hearth_smb_section", what, value, "is a reserved section name")
    return value


def hearth_name(value: object, what: str = "name") -> object:
    _matching("hearth_name", _NAME, value, what, "a name of letters, digits, '_', '.', '-'")
    return value


def hearth_path(value: object, what: str = "path") -> object:
    text = _matching("hearth_path", _PATH, value, what,
                     "an absolute path of letters, digits and '_.+-'")
    if ".." in text.split("/"):
        raise _fail("hearth_path", what, value, "contains '..'")
    return value


def hearth_ip(value: object, what: str = "address") -> object:
    # ipaddress objects never reach here (extravars carry strings), but allow them.
    text = _text("hearth_ip", value if isinstance(value, str) else str(value), what)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _fail("hearth_ip", what, value, "is not an IP address") from None
    if getattr(address, "scope_id", None) is not None or "%" in text:
        raise _fail("hearth_ip", what, value, "has a zone index")
    return value


def hearth_int(value: object, what: str = "number") -> object:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail("hearth_int", what, value, "is not an integer")
    return value


def hearth_zone_name(value: object, what: str = "owner name") -> object:
    _matching("hearth_zone_name", _ZONE_NAME, value, what, "'@' or a domain name")
    return value


def hearth_zone_rdata(value: object, what: str = "record data") -> object:
    text = _text("hearth_zone_rdata", value, what)
    tokens = text.split(" ")
    # A quoted string may hold spaces: rejoin the pieces of each one before checking.
    joined: list[str] = []
    for token in tokens:
        if joined and joined[-1].startswith('"') and not _closed(joined[-1]):
            joined[-1] += " " + token
        else:
            joined.append(token)
    for token in joined:
        if not _RDATA_TOKEN.fullmatch(token):
            raise _fail("hearth_zone_rdata", what, value,
                        f"has {token!r}, which is neither a plain token nor a quoted string")
    return value


def _closed(token: str) -> bool:
    """Whether a token starting with '"' ends its string (a final quote not escaped)."""
    body = token[1:]
    escaped = False
    for char in body:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return True
    return False


def hearth_postfix(value: object, what: str = "value") -> object:
    _matching("hearth_postfix", _POSTFIX, value, what,
              "a main.cf word (letters, digits, '_.:[]/+-'; no '$', ',', space or '#')")
    return value


def hearth_postfix_address(value: object, what: str = "address") -> object:
    _matching("hearth_postfix_address", _POSTFIX_ADDRESS, value, what,
              "a plain address (no space, ',', '\"', bracket or ';:\\<>()', no leading '#')")
    return value


class FilterModule:
    """The hearth_* config-value filters (see the module docstring)."""

    def filters(self) -> dict[str, object]:
        return {
            "hearth_smb": hearth_smb,
            "hearth_smb_section": hearth_smb_section,
            "hearth_name": hearth_name,
            "hearth_path": hearth_path,
            "hearth_ip": hearth_ip,
            "hearth_int": hearth_int,
            "hearth_zone_name": hearth_zone_name,
            "hearth_zone_rdata": hearth_zone_rdata,
            "hearth_postfix": hearth_postfix,
            "hearth_postfix_address": hearth_postfix_address,
        }
