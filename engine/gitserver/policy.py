"""What a smart-HTTP git request is, and what a push may do to ``main``. Pure.

Only the smart protocol is served: ``GET info/refs?service=…``, ``POST
git-upload-pack`` (clone, fetch) and ``POST git-receive-pack`` (push). The
dumb protocol (raw object and ref files) is not: it would bypass the hook.

``main`` is protected. A push that updates it is refused (``main is protected:
open a pull request``) unless the tenant's policy
``pull_requests.allow_direct_push`` is on and the pusher is an admin; then the
update must be a fast-forward whose commit validates, else it is refused with
the validation errors (file:line:col). Deleting ``main`` is always refused.
Every other branch accepts any push: a pull request shows its failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Service = Literal["upload", "receive"]
MainPush = Literal["refuse", "validate"]

MAIN_REF = "refs/heads/main"
ZERO = "0" * 40
PROTECTED_MESSAGE = "main is protected: open a pull request"


@dataclass(frozen=True, slots=True)
class GitPath:
    tenant: str
    rest: str
    """What follows ``<tenant>.git``: ``/info/refs``, ``/git-upload-pack``, ``/git-receive-pack``."""


def parse_path(path: str) -> GitPath | None:
    """``/git/<tenant>.git/<rest>`` (with or without the ``/git`` prefix) or None."""
    path = path.removeprefix("/git")
    head, sep, rest = path.lstrip("/").partition(".git")
    if not sep or not head or "/" in head:
        return None
    return GitPath(tenant=head, rest=rest or "/")


def service_of(method: str, rest: str, query: str) -> Service | None:
    """The smart-protocol service a request belongs to; None for anything else."""
    if method == "GET" and rest == "/info/refs":
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        return {"git-upload-pack": "upload", "git-receive-pack": "receive"}.get(  # type: ignore[return-value]
            params.get("service", ""))
    if method == "POST" and rest == "/git-upload-pack":
        return "upload"
    if method == "POST" and rest == "/git-receive-pack":
        return "receive"
    return None


def main_push_mode(*, role: str, allow_direct_push: bool) -> MainPush:
    return "validate" if allow_direct_push and role == "admin" else "refuse"


@dataclass(frozen=True, slots=True)
class RefUpdate:
    old: str
    new: str
    ref: str


def parse_updates(text: str) -> list[RefUpdate]:
    """The pre-receive hook's stdin: ``<old> <new> <ref>`` per line."""
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            updates.append(RefUpdate(*parts))
    return updates


def main_update_refusal(update: RefUpdate, *, mode: MainPush) -> str | None:
    """Why an update of ``main`` is refused before looking at its content (None: look)."""
    if update.ref != MAIN_REF:
        return None
    if update.new == ZERO:
        return "main cannot be deleted"
    if mode == "refuse":
        return PROTECTED_MESSAGE
    return None
