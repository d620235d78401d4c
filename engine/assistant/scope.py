"""The scope check: does a branch change only what its intents said it would?

``touched(old, new)`` compares two versions of a YAML document as data and
returns the addresses of what differs. Lists of mappings with a ``name`` (users,
groups, shares, zones, certificates) or an ``address`` (mailboxes, aliases) are
compared item by item under that key, DNS records under ``name/type``, so an
added or removed item is one address (``spec/users/maria``) and a changed item
is the address of the changed field inside it (``spec/users/jchen/groups``);
anything else that differs is the address of the value itself.

``out_of_scope(changed, allowed)`` lists every touched address, per file, that no
allowed address is a prefix of, and every changed file the intents did not name.
An empty list means the branch is in scope. The assistant runs it on its own
commit before it opens a pull request and refuses to open one otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Address = tuple[str, ...]
_MISSING = object()


def _key(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    if "type" in item and "name" in item and ("address" in item or "target" in item
                                              or "text" in item or "exchange" in item):
        return f"{str(item['name']).lower()}/{item['type']}"
    for field in ("name", "address"):
        if isinstance(item.get(field), str | int):
            return str(item[field])
    return None


def touched(old: Any, new: Any, path: Address = ()) -> set[Address]:
    """Addresses at which ``new`` differs from ``old`` (plain data from YAML)."""
    if old is _MISSING or new is _MISSING:
        return {path}
    if old == new:
        return set()
    if isinstance(old, dict) and isinstance(new, dict):
        out: set[Address] = set()
        for key in sorted(set(old) | set(new), key=str):
            out |= touched(old.get(key, _MISSING), new.get(key, _MISSING), (*path, str(key)))
        return out
    if isinstance(old, list) and isinstance(new, list):
        old_keys = [_key(x) for x in old]
        new_keys = [_key(x) for x in new]
        keyed = (None not in old_keys and None not in new_keys
                 and len(set(old_keys)) == len(old_keys) and len(set(new_keys)) == len(new_keys))
        if keyed and (old or new):
            before = dict(zip(old_keys, old, strict=True))
            after = dict(zip(new_keys, new, strict=True))
            out = set()
            for key in sorted(set(before) | set(after), key=str):
                out |= touched(before.get(key, _MISSING), after.get(key, _MISSING),
                               (*path, str(key)))
            return out
    return {path}


def out_of_scope(changed: Mapping[str, tuple[Any, Any]],
                 allowed: Mapping[str, set[Address]]) -> list[str]:
    """``changed`` maps a file to (old data, new data); ``allowed`` the intents' addresses."""
    problems = []
    for file, (old, new) in sorted(changed.items()):
        if file not in allowed:
            problems.append(f"{file}: changed, but no intent names it")
            continue
        for address in sorted(touched(old, new)):
            if not any(address[:len(prefix)] == prefix for prefix in allowed[file]):
                problems.append(f"{file}: {'/'.join(address) or '(document)'} is outside "
                                "the intents")
    return problems
