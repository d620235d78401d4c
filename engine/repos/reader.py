"""Read a tenant repo at a commit into a validated, immutable desired snapshot.

The reader works on pygit2's object store only, never a work tree, so what it
validates is exactly what the commit holds. It walks the commit's tree and
rejects what does not belong (symlinks, submodules, oversized files, paths
outside the layout), loads each YAML document safely (``yaml_loader``),
validates it into ``schemas.config`` and then runs the cross-document checks.
Every fault of the commit is reported at once, each with file, line and
column (``ConfigError``).

Parsing dominates the cost, so documents are cached by blob id: a commit that
changes one file of a thousand parses one file. ``SnapshotReader.parses``
counts real parses so tests can prove it.

``validate_worktree`` applies the same rules to a directory on disk (the
``hearth validate`` pre-commit hook), by staging it into a throwaway
in-memory tree first, so there is one code path.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2
from pydantic import ValidationError

from engine.errors import ConfigError, ConfigIssue, NotFoundError, RevisionError
from engine.repos.store import build_tree
from engine.repos.yaml_loader import MAX_FILE_BYTES, LoadedYaml, YamlError, load_yaml, locate
from schemas.config import (
    APPLIANCES_DIR,
    DOCUMENT_MODELS,
    GROUPS_FILE,
    TENANT_FILE,
    USERS_FILE,
    ApplianceDocument,
    DesiredAppliance,
    GroupsDocument,
    TenantConfig,
    TenantDocument,
    UsersDocument,
    check_appliance,
    check_fleet,
    check_shared,
    kind_for_path,
    resolve_appliance,
)

# Files a tenant repo may carry besides its documents.
EXTRA_FILES = frozenset({"README.md", ".gitignore", ".gitattributes", ".pre-commit-config.yaml"})
EXTRA_DIRS = frozenset({".schemas"})
SHARED_FILES = (TENANT_FILE, USERS_FILE, GROUPS_FILE)

_COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
_BRANCH = re.compile(r"^refs/heads/(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9][A-Za-z0-9._/-]{0,199}(?<![./])$")

_MODE_SYMLINK = pygit2.enums.FileMode.LINK
_MODE_SUBMODULE = pygit2.enums.FileMode.COMMIT
_MODE_TREE = pygit2.enums.FileMode.TREE


def _commit(repo: pygit2.Repository, commit_id: str) -> pygit2.Commit:
    try:
        obj = repo[commit_id]
    except (KeyError, ValueError):
        raise RevisionError(f"commit {commit_id} does not exist") from None
    if not isinstance(obj, pygit2.Commit):
        raise RevisionError(f"{commit_id} is not a commit")
    return obj


def resolve_revision(repo: pygit2.Repository, rev: str) -> str:
    """A full commit id or ``refs/heads/<name>`` to a commit id; nothing else is accepted."""
    if _COMMIT_ID.fullmatch(rev):
        _commit(repo, rev)
        return rev
    if _BRANCH.fullmatch(rev):
        ref = repo.references.get(rev)
        if ref is None:
            raise RevisionError(f"branch {rev} does not exist")
        return str(ref.resolve().target)
    raise RevisionError(
        f"revision {rev!r} is not accepted: give a full 40-character commit id or refs/heads/<name>"
    )


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """One file, loaded and validated; cached by (blob id, kind)."""

    loaded: LoadedYaml | None
    model: Any | None
    issues: tuple[tuple[int, int, str], ...]
    """(line, column, message); the file name is attached when reported."""


@dataclass(frozen=True)
class DesiredSnapshot:
    """A tenant's desired state at one commit. Immutable; safe to share."""

    tenant: str
    commit: str
    config: TenantConfig
    blob_ids: dict[str, str]
    """Repo path -> blob id of every document, for change detection."""
    _desired: dict[str, DesiredAppliance] = field(default_factory=dict, repr=False)

    def appliance_names(self) -> list[str]:
        return sorted(self.config.appliances)

    def desired(self, name: str) -> DesiredAppliance:
        """The desired state of one appliance; ``NotFoundError`` when the commit has none."""
        cached = self._desired.get(name)
        if cached is not None:
            return cached
        if name not in self.config.appliances:
            raise NotFoundError(f"appliance {name!r} is not defined at {self.commit[:12]}")
        value = resolve_appliance(self.config, name, tenant=self.tenant)
        self._desired[name] = value
        return value

    def dependencies(self, name: str) -> list[str]:
        """Paths whose change can change appliance ``name``'s desired state."""
        return [f"{APPLIANCES_DIR}/{name}.yaml", *SHARED_FILES]

    def changed_appliances(self, previous: DesiredSnapshot | None) -> list[str]:
        """Appliances whose desired state may differ from ``previous`` (all when None)."""
        if previous is None:
            return self.appliance_names()
        if any(self.blob_ids.get(p) != previous.blob_ids.get(p) for p in SHARED_FILES):
            return self.appliance_names()
        changed = []
        for name in self.appliance_names():
            path = f"{APPLIANCES_DIR}/{name}.yaml"
            if self.blob_ids.get(path) != previous.blob_ids.get(path):
                changed.append(name)
        return changed

    def removed_appliances(self, previous: DesiredSnapshot | None) -> list[str]:
        if previous is None:
            return []
        return sorted(set(previous.config.appliances) - set(self.config.appliances))


def _message_for(error: dict[str, Any]) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        return f"unknown field {loc[-1]!r}"
    if kind == "missing":
        return f"required field {loc[-1]!r} is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error" and loc and loc[-1] in ("kind", "apiVersion"):
        return f"{loc[-1]}: {message}"
    field_name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    return f"{field_name}: {message}" if field_name else message


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # Discriminated unions add the tag ("A", "MX", ...) to the path; drop it.
    return tuple(p for p in loc if not (isinstance(p, str) and p.isupper() and len(p) <= 5))


def parse_document(content: bytes, *, file: str, kind: str) -> ParsedDocument:
    """Load and validate one document; the result holds its issues instead of raising."""
    try:
        loaded = load_yaml(content, file=file)
    except YamlError as exc:
        return ParsedDocument(None, None, ((exc.issue.line, exc.issue.column, exc.issue.message),))
    if not isinstance(loaded.data, dict):
        return ParsedDocument(loaded, None, ((1, 1, f"expected a {kind} document (a mapping with "
                                                    "apiVersion, kind, metadata, spec)"),))
    declared = loaded.data.get("kind")
    if declared != kind:
        line, column = locate(loaded.root, ("kind",))
        return ParsedDocument(loaded, None, (
            (line, column, f"this file must hold kind {kind!r}, not {declared!r}"),))
    model_cls = DOCUMENT_MODELS[kind]
    try:
        model = model_cls.model_validate(loaded.data)
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False):
            loc = _clean_loc(error["loc"])
            line, column = locate(loaded.root, loc)
            issues.append((line, column, _message_for(error)))
        return ParsedDocument(loaded, None, tuple(issues))
    return ParsedDocument(loaded, model, ())


class SnapshotReader:
    """Loads snapshots; one per process. Thread-safe; caches by blob id and commit id."""

    def __init__(self, *, max_documents: int = 200_000, max_snapshots: int = 64) -> None:
        self._documents: OrderedDict[tuple[str, str], ParsedDocument] = OrderedDict()
        self._snapshots: OrderedDict[tuple[str, str], DesiredSnapshot | ConfigError] = (
            OrderedDict())
        self._max_documents = max_documents
        self._max_snapshots = max_snapshots
        self._findings: dict[tuple[str | None, ...], tuple[Any, ...]] = {}
        """Per-appliance cross-check findings by (name, appliance, tenant, users, groups blob)."""
        self._lock = threading.Lock()
        self.parses = 0
        """How many documents were really parsed (cache misses)."""

    def load(self, repo: pygit2.Repository, commit_id: str, *, tenant: str | None = None
             ) -> DesiredSnapshot:
        """The validated snapshot at ``commit_id``; raises ``ConfigError`` listing every issue."""
        if not _COMMIT_ID.fullmatch(commit_id):
            raise RevisionError(f"{commit_id!r} is not a full commit id")
        tenant_name = tenant or Path(repo.path.rstrip("/")).name.removesuffix(".git")
        key = (repo.path, commit_id)
        with self._lock:
            hit = self._snapshots.get(key)
        if hit is None:
            hit = self._load(repo, commit_id, tenant_name)
            with self._lock:
                self._snapshots[key] = hit
                while len(self._snapshots) > self._max_snapshots:
                    self._snapshots.popitem(last=False)
        if isinstance(hit, ConfigError):
            raise hit
        return hit

    def _document(self, repo: pygit2.Repository, oid: pygit2.Oid, *, file: str,
                  kind: str) -> ParsedDocument:
        key = (str(oid), kind)
        with self._lock:
            cached = self._documents.get(key)
            if cached is not None:
                self._documents.move_to_end(key)
                return cached
        blob = repo[oid]
        if blob.size > MAX_FILE_BYTES:
            parsed = ParsedDocument(None, None, (
                (1, 1, f"file is {blob.size} bytes; the limit is {MAX_FILE_BYTES} bytes"),))
        else:
            parsed = parse_document(blob.data, file=file, kind=kind)
        with self._lock:
            self.parses += 1
            self._documents[key] = parsed
            while len(self._documents) > self._max_documents:
                self._documents.popitem(last=False)
        return parsed

    def _load(self, repo: pygit2.Repository, commit_id: str, tenant: str
              ) -> DesiredSnapshot | ConfigError:
        commit = _commit(repo, commit_id)
        issues: list[ConfigIssue] = []
        documents: dict[str, ParsedDocument] = {}
        blob_ids: dict[str, str] = {}
        for path, entry in _walk(repo, commit.tree, ""):
            mode = entry.filemode
            if mode == _MODE_SYMLINK:
                issues.append(ConfigIssue(path, 1, 1, "symbolic links are not allowed in a "
                                                      "tenant repo; commit the file itself"))
                continue
            if mode == _MODE_SUBMODULE:
                issues.append(ConfigIssue(path, 1, 1, "submodules are not allowed in a tenant "
                                                      "repo"))
                continue
            kind = kind_for_path(path)
            if kind is None:
                top = path.split("/", 1)[0]
                if path in EXTRA_FILES or (top in EXTRA_DIRS and "/" in path):
                    continue
                issues.append(ConfigIssue(path, 1, 1, _layout_message(path)))
                continue
            blob_ids[path] = str(entry.id)
            parsed = self._document(repo, entry.id, file=path, kind=kind)
            documents[path] = parsed
            issues.extend(ConfigIssue(path, line, col, msg) for line, col, msg in parsed.issues)
        if len(self._findings) > self._max_documents:
            self._findings.clear()
        return _assemble(tenant, commit_id, documents, blob_ids, issues, self._findings)


def _layout_message(path: str) -> str:
    if path.endswith((".yml", ".yaml")):
        return (f"{path} is outside the tenant layout: documents live in {TENANT_FILE}, "
                f"{USERS_FILE}, {GROUPS_FILE} and {APPLIANCES_DIR}/<name>.yaml "
                "(lower-case name, .yaml)")
    return f"{path} is outside the tenant layout and is not allowed"


def _walk(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str):
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if entry.filemode == _MODE_TREE:
            allowed_dir = (prefix == "" and (entry.name == APPLIANCES_DIR
                                             or entry.name in EXTRA_DIRS))
            if not allowed_dir:
                yield path, entry
                continue
            yield from _walk(repo, repo[entry.id], path + "/")
        else:
            yield path, entry


def _assemble(tenant: str, commit_id: str, documents: dict[str, ParsedDocument],
              blob_ids: dict[str, str], issues: list[ConfigIssue],
              finding_cache: dict[tuple[str | None, ...], tuple[Any, ...]]
              ) -> DesiredSnapshot | ConfigError:
    tenant_doc = documents.get(TENANT_FILE)
    if tenant_doc is None:
        issues.append(ConfigIssue(TENANT_FILE, 1, 1, f"{TENANT_FILE} is missing; every tenant "
                                                     "repo needs one"))
    if issues:
        return ConfigError(issues)
    appliances: dict[str, ApplianceDocument] = {}
    for path, parsed in documents.items():
        if path.startswith(APPLIANCES_DIR + "/"):
            appliances[path[len(APPLIANCES_DIR) + 1:-5]] = parsed.model
    users = documents.get(USERS_FILE)
    groups = documents.get(GROUPS_FILE)
    assert tenant_doc is not None and isinstance(tenant_doc.model, TenantDocument)
    config = TenantConfig(
        tenant=tenant_doc.model,
        users=users.model if users else None,
        groups=groups.model if groups else None,
        appliances=appliances,
    )
    assert config.users is None or isinstance(config.users, UsersDocument)
    assert config.groups is None or isinstance(config.groups, GroupsDocument)
    findings = check_shared(config) + check_fleet(config)
    shared_key = tuple(blob_ids.get(p) for p in SHARED_FILES)
    for name in sorted(appliances):
        key = (name, blob_ids[f"{APPLIANCES_DIR}/{name}.yaml"], *shared_key)
        cached = finding_cache.get(key)
        if cached is None:
            cached = finding_cache[key] = tuple(check_appliance(config, name))
        findings.extend(cached)
    for finding in findings:
        parsed = documents.get(finding.file)
        root = parsed.loaded.root if parsed and parsed.loaded else None
        line, column = locate(root, finding.path)
        issues.append(ConfigIssue(finding.file, line, column, finding.message))
    if issues:
        return ConfigError(issues)
    return DesiredSnapshot(tenant=tenant, commit=commit_id, config=config, blob_ids=blob_ids)


def validate_worktree(path: Path, *, reader: SnapshotReader | None = None) -> DesiredSnapshot:
    """Validate a directory as if it were committed; raises ``ConfigError``.

    The directory is staged into a throwaway in-memory repository, so the
    checks are the ones a commit gets (symlinks and layout included).
    """
    root = path.resolve()
    if not root.is_dir():
        raise NotFoundError(f"{path} is not a directory")
    with tempfile.TemporaryDirectory(prefix="hearth-validate-") as tmp:
        repo = pygit2.init_repository(tmp, bare=True, initial_head="main")
        tree_id = build_tree(repo, root)
        signature = pygit2.Signature("hearth validate", "validate@hearth.invalid", 0, 0)
        commit_id = repo.create_commit(None, signature, signature, "validate", tree_id, [])
        return (reader or SnapshotReader()).load(repo, str(commit_id), tenant=root.name)
