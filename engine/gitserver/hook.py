"""The pre-receive hook of every push over HTTP: enforce ``policy`` on the ref updates.

git runs it (through ``core.hooksPath``, set by the backend) after the pack is
received and before any ref moves, with the updates on stdin; a non-zero exit
refuses the whole push and git shows what the hook printed as ``remote: …``.
The backend passes the decision for ``main`` in ``HEARTH_MAIN_PUSH``
(``refuse`` or ``validate``; anything else refuses). Validation reads the
pushed commit from the push's quarantine directory (``GIT_QUARANTINE_PATH``)
with the same reader the reconciler uses, so a direct push to ``main`` that
would not be applied is not accepted either.

Stdlib only until a commit must be validated, so a branch push costs one
interpreter start.
"""

from __future__ import annotations

import os
import sys

from engine.gitserver.policy import MAIN_REF, main_update_refusal, parse_updates


def _validate(new: str, old: str) -> list[str]:
    # imported in the hook process only: keeps git's hook start-up small
    import pygit2

    from engine.errors import ConfigError
    from engine.repos.reader import SnapshotReader

    repo = pygit2.Repository(os.environ.get("GIT_DIR", "."))
    quarantine = os.environ.get("GIT_QUARANTINE_PATH")
    if quarantine:
        repo.odb.add_disk_alternate(quarantine)
    if old != "0" * 40 and not repo.descendant_of(new, old):
        return ["main only moves forward: fetch, rebase or merge, and push again"]
    try:
        SnapshotReader().load(repo, new, tenant=os.environ.get("HEARTH_TENANT"))
    except ConfigError as exc:
        return [f"commit {new[:12]} does not validate:", *(str(i) for i in exc.issues)]
    return []


def main() -> int:
    mode = os.environ.get("HEARTH_MAIN_PUSH")
    mode = mode if mode in ("refuse", "validate") else "refuse"
    for update in parse_updates(sys.stdin.read()):
        refusal = main_update_refusal(update, mode=mode)  # type: ignore[arg-type]
        if refusal is not None:
            print(refusal, file=sys.stderr)
            return 1
        if update.ref == MAIN_REF:
            problems = _validate(update.new, update.old)
            if problems:
                print("\n".join(problems), file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
