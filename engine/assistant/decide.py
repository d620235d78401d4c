"""From the model's reply to what Hearth does: pure, and the only place that decides.

``decide(reply, config=, role=, appliance=)`` returns one of ``Answer``,
``Question``, ``Refusal`` or ``Change``. The model's ``kind`` is a proposal:

- a reply that did not parse is a ``Question`` asking to rephrase (never a guess);
- ``answer``/``question``/``refusal`` replies never change anything, whatever intents
  they carry;
- a ``change`` is checked intent by intent, in this order, and the first failure
  decides: a value that looks like a template, a variable or an Ansible key
  (``{{``, ``{%``, ``${``, ``ansible_``) is refused; the intent's permission level
  (``schemas.intents.PERMISSION``) against the caller's role is refused when too
  low, as is a customer changing a group that looks administrative
  (``PRIVILEGED_GROUP``); then the tenant's current configuration: a user, group,
  share or appliance that does not exist, a name already taken, a choice the
  request leaves open (which appliance?) becomes a ``Question`` naming what is
  missing, never a guess.

A ``Change`` carries, per repository file, the round-trip edits
(``engine.repos.edit.Edit``) and the scope: the item addresses the edits may touch
(``engine.assistant.scope`` compares a branch's diff with them). Every name comes
from the caller's own tenant configuration; the tenant itself is never an input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.repos.edit import Edit
from schemas.config import USERS_FILE, TenantConfig, appliance_file
from schemas.intents import PERMISSION, ModelReply

PRIVILEGED_GROUP = re.compile(r"admin|sudo|wheel|root|^adm$", re.IGNORECASE)
"""Groups whose membership a customer may not change through the assistant."""
_UNSAFE = re.compile(r"\{\{|\{%|\$\{|ansible_|\{#", re.IGNORECASE)

Address = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Answer:
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    text: str


@dataclass(frozen=True, slots=True)
class Refusal:
    text: str


@dataclass(frozen=True)
class Change:
    text: str
    intents: list[dict[str, Any]]
    edits: dict[str, list[Edit]] = field(default_factory=dict)
    scope: dict[str, set[Address]] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)


Decision = Answer | Question | Refusal | Change


class _Ask(Exception):
    pass


class _Refuse(Exception):
    pass


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def decide(reply: ModelReply | None, *, config: TenantConfig, role: str,
           appliance: str | None = None, problem: str | None = None) -> Decision:
    """What to do with the model's ``reply`` for a caller with ``role`` in this tenant."""
    if reply is None:
        return Question("I could not work out what you need. Please say it again in one "
                        "sentence, naming the person, share or mailbox concerned.")
    text = reply.text.strip()
    if reply.kind == "answer":
        return Answer(text or "I have no answer to that; an operator will follow up.")
    if reply.kind == "question":
        return Question(text or "Could you give more details?")
    if reply.kind == "refusal":
        return Refusal(text or "I cannot do that through support; please ask an operator.")
    if not reply.intents:
        return Question(text or "What exactly should be changed?")
    builder = _Builder(config=config, role=role, appliance=appliance)
    try:
        for intent in reply.intents:
            builder.add(intent.model_dump())
    except _Refuse as exc:
        return Refusal(str(exc))
    except _Ask as exc:
        return Question(str(exc))
    return Change(text=text, intents=[i.model_dump() for i in reply.intents],
                  edits=builder.edits, scope=builder.scope, summary=builder.summary)


class _Builder:
    def __init__(self, *, config: TenantConfig, role: str, appliance: str | None) -> None:
        self.config = config
        self.role = role
        self.appliance = appliance
        self.edits: dict[str, list[Edit]] = {}
        self.scope: dict[str, set[Address]] = {}
        self.summary: list[str] = []
        self.users = {u.name: u for u in config.user_list()}
        self.groups = {g.name for g in config.group_list()}

    # ------------------------------------------------------------------ common checks

    def _edit(self, file: str, address: Address, *edits: Edit) -> None:
        self.edits.setdefault(file, []).extend(edits)
        self.scope.setdefault(file, set()).add(address)

    def _permit(self, intent: dict[str, Any]) -> None:
        for value in _strings({k: v for k, v in intent.items() if k != "type"}):
            if _UNSAFE.search(value):
                raise _Refuse("That value looks like a template or a system variable; "
                              "I cannot put it into the configuration.")
        level = PERMISSION.get(intent["type"], "never")
        if level == "never":
            raise _Refuse("Passwords are set by an operator, never through the assistant; "
                          "please ask your operator to reset it." if intent["type"] ==
                          "reset_password" else "I cannot do that; please ask an operator.")
        if level == "operator" and self.role not in ("operator", "admin"):
            raise _Refuse(f"Only an operator can ask for {intent['type'].replace('_', ' ')}; "
                          "I have not changed anything.")
        group = intent.get("group")
        groups = [*intent.get("groups", []), *([group] if group else [])]
        if self.role not in ("operator", "admin") and any(
                PRIVILEGED_GROUP.search(g) for g in groups):
            raise _Refuse("Administrative groups are changed by an operator only.")

    def _user(self, name: str) -> Any:
        user = self.users.get(name)
        if user is None or user.state != "present":
            known = ", ".join(sorted(n for n, u in self.users.items() if u.state == "present"))
            raise _Ask(f"There is no user {name!r}. Which of these did you mean: {known}?")
        return user

    def _group(self, name: str) -> None:
        if name not in self.groups:
            raise _Ask(f"There is no team (group) {name!r}. The teams are: "
                       f"{', '.join(sorted(self.groups))}. Which one?")

    def _appliance(self, wanted: str | None, section: str, what: str) -> tuple[str, Any]:
        name = wanted or self.appliance
        having = sorted(n for n, doc in self.config.appliances.items()
                        if getattr(doc.spec, section) is not None)
        if name is None:
            if len(having) == 1:
                name = having[0]
            else:
                raise _Ask(f"On which appliance should the {what} be: {', '.join(having)}?")
        doc = self.config.appliances.get(name)
        if doc is None:
            raise _Ask(f"There is no appliance {name!r}. The appliances are: "
                       f"{', '.join(sorted(self.config.appliances))}.")
        spec = getattr(doc.spec, section)
        if spec is None:
            raise _Ask(f"{name} has no {section} service; choose one of: {', '.join(having)}.")
        return name, spec

    def _share(self, wanted: str | None, share: str) -> tuple[str, Any]:
        name, samba = self._appliance(wanted, "samba", "share")
        for item in samba.shares:
            if item.name == share:
                return name, item
        raise _Ask(f"{name} has no share {share!r}; its shares are: "
                   f"{', '.join(s.name for s in samba.shares)}.")

    # ------------------------------------------------------------------ intents

    def add(self, intent: dict[str, Any]) -> None:
        self._permit(intent)
        getattr(self, "_" + intent["type"])(intent)

    def _add_user(self, i: dict[str, Any]) -> None:
        name = i["username"]
        if name in self.users:
            other = self.users[name]
            raise _Ask(f"The user name {name!r} is taken ({other.full_name or name}). "
                       "Which user name should the new account have?")
        if not i["groups"]:
            raise _Ask(f"Which team (group) should {i['full_name'] or name} join? The teams "
                       f"are: {', '.join(sorted(self.groups))}.")
        for group in i["groups"]:
            self._group(group)
        entry: dict[str, Any] = {"name": name}
        if i["full_name"]:
            entry["full_name"] = i["full_name"]
        if i["email"]:
            entry["email"] = i["email"]
        entry["groups"] = list(i["groups"])
        self._edit(USERS_FILE, ("spec", "users", name),
                   Edit("append", ("spec", "users"), entry))
        self.summary.append(f"add user {name} ({', '.join(i['groups'])})")

    def _remove_user(self, i: dict[str, Any]) -> None:
        name = i["username"]
        self._user(name)
        self._edit(USERS_FILE, ("spec", "users", name, "state"),
                   Edit("set", ("spec", "users", f"name={name}", "state"), "absent"))
        self.summary.append(f"remove user {name} from every appliance")

    def _add_to_group(self, i: dict[str, Any]) -> None:
        user = self._user(i["username"])
        self._group(i["group"])
        if i["group"] in user.groups:
            raise _Ask(f"{user.name} is already in {i['group']}. What else should change?")
        self._edit(USERS_FILE, ("spec", "users", user.name, "groups"),
                   Edit("append", ("spec", "users", f"name={user.name}", "groups"), i["group"]))
        self.summary.append(f"add {user.name} to group {i['group']}")

    def _remove_from_group(self, i: dict[str, Any]) -> None:
        user = self._user(i["username"])
        if i["group"] not in user.groups:
            raise _Ask(f"{user.name} is not in {i['group']}; their groups are: "
                       f"{', '.join(user.groups) or 'none'}.")
        self._edit(USERS_FILE, ("spec", "users", user.name, "groups"),
                   Edit("delete", ("spec", "users", f"name={user.name}", "groups",
                                   user.groups.index(i["group"]))))
        self.summary.append(f"remove {user.name} from group {i['group']}")

    def _reset_password(self, i: dict[str, Any]) -> None:  # PERMISSION "never": unreachable
        raise _Refuse("Passwords are set by an operator.")

    def _create_share(self, i: dict[str, Any]) -> None:
        name, samba = self._appliance(i["appliance"], "samba", "share")
        if any(s.name.lower() == i["name"].lower() for s in samba.shares):
            raise _Ask(f"{name} already has a share {i['name']!r}. Which name should the new "
                       "share have?")
        for group in i["groups"]:
            self._group(group)
        for user in i["users"]:
            self._user(user)
        if not i["groups"] and not i["users"]:
            raise _Ask(f"Who should be able to use the share {i['name']!r}: which team or "
                       "which people?")
        directory = re.sub(r"[^a-z0-9_-]", "-", i["name"].lower())
        entry: dict[str, Any] = {"name": i["name"], "path": f"/srv/samba/{directory}"}
        if i["groups"]:
            entry["valid_groups"] = list(i["groups"])
        if i["users"]:
            entry["valid_users"] = list(i["users"])
        if i["read_only"]:
            entry["read_only"] = True
        self._edit(appliance_file(name), ("spec", "samba", "shares", i["name"]),
                   Edit("append", ("spec", "samba", "shares"), entry))
        self.summary.append(f"create share {i['name']} on {name}")

    def _remove_share(self, i: dict[str, Any]) -> None:
        name, share = self._share(i["appliance"], i["name"])
        self._edit(appliance_file(name), ("spec", "samba", "shares", share.name),
                   Edit("delete", ("spec", "samba", "shares", f"name={share.name}")))
        self.summary.append(f"remove share {share.name} from {name}")

    def _access(self, i: dict[str, Any]) -> tuple[str, Any, str, str]:
        name, share = self._share(i["appliance"], i["share"])
        if (i["user"] is None) == (i["group"] is None):
            raise _Ask(f"Whom should this apply to on {share.name}: one person or one team?")
        if i["user"] is not None:
            self._user(i["user"])
            return name, share, "valid_users", i["user"]
        self._group(i["group"])
        return name, share, "valid_groups", i["group"]

    def _grant_share_access(self, i: dict[str, Any]) -> None:
        name, share, key, who = self._access(i)
        if who in getattr(share, key):
            raise _Ask(f"{who} can already use {share.name}. What else should change?")
        self._edit(appliance_file(name), ("spec", "samba", "shares", share.name, key),
                   Edit("append", ("spec", "samba", "shares", f"name={share.name}", key), who))
        self.summary.append(f"let {who} use share {share.name} on {name}")

    def _revoke_share_access(self, i: dict[str, Any]) -> None:
        name, share, key, who = self._access(i)
        current = list(getattr(share, key))
        if who not in current:
            raise _Ask(f"{who} is not listed on {share.name}; nothing to take away there.")
        self._edit(appliance_file(name), ("spec", "samba", "shares", share.name, key),
                   Edit("delete", ("spec", "samba", "shares", f"name={share.name}", key,
                                   current.index(who))))
        self.summary.append(f"stop {who} using share {share.name} on {name}")

    def _mail_checks(self, name: str, mail: Any, address: str) -> None:
        domain = address.rpartition("@")[2].lower()
        if domain not in mail.domains:
            raise _Ask(f"{name} receives mail for {', '.join(mail.domains)}, not {domain}. "
                       "Which address should it be?")
        taken = {m.address.lower() for m in mail.mailboxes} | {
            a.address.lower() for a in mail.aliases}
        if address.lower() in taken:
            raise _Ask(f"{address} exists already on {name}. Which address should it be?")

    def _add_mailbox(self, i: dict[str, Any]) -> None:
        name, mail = self._appliance(i["appliance"], "mail", "mailbox")
        self._mail_checks(name, mail, i["address"])
        self._user(i["username"])
        self._edit(appliance_file(name), ("spec", "mail", "mailboxes", i["address"]),
                   Edit("append", ("spec", "mail", "mailboxes"),
                        {"address": i["address"], "user": i["username"]}))
        self.summary.append(f"add mailbox {i['address']} for {i['username']} on {name}")

    def _add_alias(self, i: dict[str, Any]) -> None:
        name, mail = self._appliance(i["appliance"], "mail", "mail alias")
        self._mail_checks(name, mail, i["address"])
        self._edit(appliance_file(name), ("spec", "mail", "aliases", i["address"]),
                   Edit("append", ("spec", "mail", "aliases"),
                        {"address": i["address"], "destinations": list(i["destinations"])}))
        self.summary.append(f"add alias {i['address']} on {name}")

    def _zone(self, i: dict[str, Any]) -> tuple[str, Any]:
        name, dns = self._appliance(i["appliance"], "dns", "DNS record")
        for zone in dns.zones:
            if zone.name == i["zone"].rstrip(".").lower():
                return name, zone
        raise _Ask(f"{name} has no zone {i['zone']!r}; its zones: "
                   f"{', '.join(z.name for z in dns.zones)}.")

    @staticmethod
    def _record_index(zone: Any, i: dict[str, Any]) -> int | None:
        found = [n for n, r in enumerate(zone.records)
                 if r.name == i["name"].lower() and r.type == i["record_type"]]
        if len(found) > 1:
            raise _Ask(f"{zone.name} has several {i['record_type']} records named "
                       f"{i['name']}; an operator has to pick one.")
        return found[0] if found else None

    @staticmethod
    def _record_value(i: dict[str, Any]) -> tuple[str, str]:
        return ("target", i["value"]) if i["record_type"] == "CNAME" else ("address", i["value"])

    def _add_dns_record(self, i: dict[str, Any]) -> None:
        name, zone = self._zone(i)
        if self._record_index(zone, i) is not None:
            raise _Ask(f"{i['name']} already has a {i['record_type']} record in {zone.name}; "
                       "should it be changed instead?")
        key, value = self._record_value(i)
        self._edit(appliance_file(name),
                   ("spec", "dns", "zones", zone.name, "records",
                    f"{i['name'].lower()}/{i['record_type']}"),
                   Edit("append", ("spec", "dns", "zones", f"name={zone.name}", "records"),
                        {"name": i["name"].lower(), "type": i["record_type"], key: value}))
        self.summary.append(f"add {i['record_type']} record {i['name']} in {zone.name}")

    def _change_dns_record(self, i: dict[str, Any]) -> None:
        name, zone = self._zone(i)
        index = self._record_index(zone, i)
        if index is None:
            raise _Ask(f"{zone.name} has no {i['record_type']} record {i['name']}; add it?")
        key, value = self._record_value(i)
        self._edit(appliance_file(name),
                   ("spec", "dns", "zones", zone.name, "records",
                    f"{i['name'].lower()}/{i['record_type']}"),
                   Edit("set", ("spec", "dns", "zones", f"name={zone.name}", "records", index,
                                key), value))
        self.summary.append(f"change {i['record_type']} record {i['name']} in {zone.name}")

    def _remove_dns_record(self, i: dict[str, Any]) -> None:
        name, zone = self._zone(i)
        index = self._record_index(zone, i)
        if index is None:
            raise _Ask(f"{zone.name} has no {i['record_type']} record {i['name']}.")
        self._edit(appliance_file(name),
                   ("spec", "dns", "zones", zone.name, "records",
                    f"{i['name'].lower()}/{i['record_type']}"),
                   Edit("delete", ("spec", "dns", "zones", f"name={zone.name}", "records",
                                   index)))
        self.summary.append(f"remove {i['record_type']} record {i['name']} from {zone.name}")

    def _issue_certificate(self, i: dict[str, Any]) -> None:
        name, pki = self._appliance(i["appliance"], "pki", "certificate")
        if any(c.name == i["name"] for c in pki.certificates):
            raise _Ask(f"{name} already has a certificate {i['name']!r}; renewals are "
                       "automatic. Which new name?")
        self._edit(appliance_file(name), ("spec", "pki", "certificates", i["name"]),
                   Edit("append", ("spec", "pki", "certificates"),
                        {"name": i["name"], "common_name": i["common_name"]}))
        self.summary.append(f"issue certificate {i['name']} on {name}")
