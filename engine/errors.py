"""The one exception hierarchy of Hearth.

    HearthError                      base; never raised itself
    ├── SettingsError                environment missing or malformed (list of problems)
    ├── ConfigError                  a tenant repo at a commit is invalid (list of ConfigIssue)
    ├── RevisionError                a user-supplied ref or revision is malformed or unknown
    ├── NotFoundError                a tenant, appliance, run... does not exist (or is not yours)
    ├── ConflictError                a state precondition failed (replayed sequence, CAS on a ref)
    ├── PermissionDeniedError        authenticated but not allowed
    ├── AuthenticationError          no, bad, expired or wrong-audience credentials
    ├── InvalidInputError            a request is well-formed but its values are not acceptable
    ├── RateLimitedError             too many attempts; carries retry_after seconds
    └── ExecutionError               Ansible could not be run (not: a task failed)

The API maps each class to one RFC 9457 problem type and status in
``api/errors.py``; the CLI prints ``str(exc)`` and exits 1 (2 for usage).
"""

from __future__ import annotations

from dataclasses import dataclass


class HearthError(Exception):
    """Base of every error Hearth raises on purpose."""


class SettingsError(HearthError):
    """The environment is missing variables or has malformed ones."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One fault in a tenant repo, located so a person can fix it."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column, "message": self.message}


class ConfigError(HearthError):
    """A tenant repo (at a commit or in a work tree) does not validate."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column, i.message))
        super().__init__("\n".join(str(i) for i in self.issues))


class RevisionError(HearthError):
    """A ref or revision given by a user is malformed or does not exist."""


class NotFoundError(HearthError):
    """The thing asked for does not exist, or the caller may not know it does."""


class ConflictError(HearthError):
    """A precondition on current state failed; retrying the same request fails again."""


class PermissionDeniedError(HearthError):
    """The caller is known but its role does not allow this."""


class AuthenticationError(HearthError):
    """Credentials are missing, malformed, expired or meant for another audience."""


class InvalidInputError(HearthError):
    """The request parsed but its values are not acceptable (e.g. a clock far off)."""


class RateLimitedError(HearthError):
    """Too many attempts; ``retry_after`` says when to try again."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ExecutionError(HearthError):
    """Ansible could not be started or was interrupted (not a failed task)."""
