#!/usr/bin/python3
"""Converge a domain's files in one module execution, and make sure its services see them.

Why a module: the stock ``template``/``copy`` cost two executions per file even
when nothing changes (stat, then copy or file), about 0.2 s of wall time each on
each host; a domain with five files is then ten executions. This does the same
work, with the same validate semantics, in one, for every domain of a run.

Contract, per batch (``{name, files, secret_files, directories, links, absent,
on_change, services, packages, after_reloads}``, applied in order):

- A file is written only when its content, mode or ownership differ, through a
  temporary file in the destination directory that is fsynced, checked by the
  file's ``validate`` command (argv, ``%s`` = the temporary file, ``%d`` = a
  private directory holding the candidate under its own name plus copies of
  ``validate_with``), renamed into place, and the directory fsynced. A file
  that fails its checker never replaces the good one. Check mode renders and
  validates the candidate too (in a private temporary directory), without
  writing anything under the destination.
- The replaced file is kept as ``.<name>.hearth-prev`` (a hard link) until the
  batch's ``on_change`` commands pass; removed paths (``absent``) are renamed to
  it. If a later file of the batch fails validation, or an ``on_change`` command
  (a post-replace check such as ``named-checkconf -z``, or the reload) fails,
  the batch's files are put back and ``on_change`` runs once more on them.
- Pending reloads are durable: before the first change of a batch that has
  ``on_change``, a marker ``<pending_dir>/<batch>.json`` (the commands) is
  written atomically (fsync, rename, fsync of the directory); it is removed only
  after the batch's ``on_change`` passed. Every execution runs the commands of
  every marker it finds, for batches that did not change now too (batches
  absent from the execution run the commands recorded in their marker), so a
  reload that failed, or was never reached because a later batch failed or the
  run died, is retried by the next execution.
- A batch that fails (validation, a missing owner or group) stops the batches
  after it, but the batches written before it still get their ``on_change``.
- ``services`` (systemd units) are enabled and started when they are not
  (``systemctl is-enabled``/``is-active``, then ``enable --now``); ``packages``
  missing from dpkg's database are installed with apt-get before any file is
  written. Both are empty in appliance roots (no init system there).
- A batch with ``after_reloads: true`` (the applied revision) is converged only
  when everything before it succeeded and no reload is pending any more.
- ``changed`` is true when any path was written or a pending reload ran, also
  when the module then fails.

Zone files may set ``zone_serial: true``: the content carries ``HEARTH_SERIAL``
where the SOA serial goes; the file is unchanged when only the serial would
differ, and otherwise gets ``max(old + 1, YYYYMMDD00)`` (the diff shows it).

Every subprocess has a timeout (``command_timeout``, apt-get ``INSTALL_TIMEOUT``).
Secret file contents are ``no_log`` in the argument spec and never get a diff.
"""

from __future__ import annotations

import datetime
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hearth_files
short_description: Write, validate and remove a set of files, directories and links at once
description:
  - Converges the files of one or more domains (batches) in one execution, each file
    validated before it replaces the old one, and runs each batch's C(on_change)
    commands when it changed or when an earlier execution left its reload pending.
  - Pending reloads are recorded on the box (I(pending_dir)) before anything is
    replaced and removed only once the batch's commands passed.
version_added: "1.0.0"
author: Hearth
options:
  batches:
    description: Domains to converge, in order. See I(files) for the file options.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Batch name; names the pending-reload marker (letters, digits, C(._-)).
        type: str
        required: true
      files:
        description: Files to write (same options as the top-level I(files)).
        type: list
        elements: dict
        default: []
      secret_files:
        description: Files whose content is never logged nor shown in a diff.
        type: list
        elements: dict
        default: []
      directories:
        description: Directories to create, with owner, group and mode.
        type: list
        elements: dict
        default: []
      links:
        description: Symbolic links (I(path) -> I(target)).
        type: list
        elements: dict
        default: []
      absent:
        description: Paths to remove (files, links, empty directories).
        type: list
        elements: str
        default: []
      on_change:
        description:
          - Commands (argv lists, no shell) run in order when the batch changed or a
            reload of it is pending (post-replace checks first, then the reloads).
          - On failure the batch's files are restored and the commands run once more.
        type: list
        elements: list
        default: []
      services:
        description: systemd units to keep enabled and running (empty where no init runs).
        type: list
        elements: str
        default: []
      packages:
        description: Debian packages installed with apt-get when dpkg lacks them.
        type: list
        elements: str
        default: []
      after_reloads:
        description: Converge only when every earlier batch passed and no reload is pending.
        type: bool
        default: false
  files:
    description: Files of the implicit first batch C(main).
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: str, required: true}
      content: {description: Whole content., type: str, default: ""}
      owner: {description: Owner name., type: str}
      group: {description: Group name., type: str}
      mode: {description: Octal mode as a string (C("0644")), type: raw}
      validate:
        description: Checker argv; C(%s) the candidate file, C(%d) a directory holding it.
        type: list
        elements: str
      validate_with:
        description: Files copied beside the candidate into C(%d) (e.g. master.cf).
        type: list
        elements: str
        default: []
      zone_serial: {description: HEARTH_SERIAL marks the SOA serial., type: bool, default: false}
  secret_files:
    description: Like I(files); the content is no_log and gets no diff.
    type: list
    elements: dict
    default: []
  directories: {description: Directories of batch C(main)., type: list, elements: dict, default: []}
  links: {description: Links of batch C(main)., type: list, elements: dict, default: []}
  absent: {description: Paths removed by batch C(main)., type: list, elements: str, default: []}
  on_change: {description: Commands of batch C(main)., type: list, elements: list, default: []}
  after:
    description: Commands run after everything else, every time; they only fail the task.
    type: list
    elements: list
    default: []
  pending_dir:
    description: Where pending-reload markers are kept on the box.
    type: str
    default: /var/lib/hearth-agent/pending-reloads
  systemctl:
    description: The systemctl argv prefix used for I(services).
    type: list
    elements: str
    default: [systemctl]
  command_timeout:
    description: Seconds any one command (checker, on_change, systemctl) may take.
    type: int
    default: 120
notes:
  - Supports check mode (validators run on a private copy) and diff mode.
"""

EXAMPLES = r"""
- name: Zones, checked before they replace the old ones, reloaded durably
  hearth_files:
    batches:
      - name: dns
        directories:
          - {path: /etc/bind/hearth, owner: root, group: bind, mode: "0755"}
        files:
          - path: /etc/bind/hearth/db.example.test
            content: "{{ zone_text }}"
            owner: root
            group: bind
            mode: "0644"
            zone_serial: true
            validate: [named-checkzone, -q, example.test, "%s"]
        on_change:
          - [named-checkconf, -z, /etc/bind/named.conf]
          - [systemctl, reload-or-restart, named]
        services: [named]
        packages: [bind9, bind9-utils]

- name: main.cf checked by postfix in a private config directory
  hearth_files:
    batches:
      - name: mail
        files:
          - path: /etc/postfix/main.cf
            content: "{{ main_cf }}"
            validate: [postfix, -c, "%d", check]
            validate_with: [/etc/postfix/master.cf]
"""

RETURN = r"""
changed_paths:
  description: Paths written, re-moded, created or removed (also those later restored).
  type: list
  elements: str
  returned: always
changed_batches:
  description: Batches that changed something.
  type: list
  elements: str
  returned: always
reloaded_batches:
  description: Batches whose on_change commands ran and passed in this execution.
  type: list
  elements: str
  returned: always
pending_batches:
  description: Batches whose reload is still pending (failed, or would run in check mode).
  type: list
  elements: str
  returned: always
restored_paths:
  description: Paths put back to their previous content after a failure.
  type: list
  elements: str
  returned: always
commands:
  description: Commands run (argv, rc, tail of the output).
  type: list
  elements: dict
  returned: always
installed_packages:
  description: Packages apt-get installed.
  type: list
  elements: str
  returned: always
started_units:
  description: Units enabled and started because they were not.
  type: list
  elements: str
  returned: always
"""

SERIAL = "HEARTH_SERIAL"
_SERIAL_LINE = re.compile(r"^(\s*)(\d+)(\s*;\s*serial)", re.MULTILINE)
_BATCH_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")
PREV_SUFFIX = ".hearth-prev"
INSTALL_TIMEOUT = 1800
UNKNOWN_ID = -2
"""An owner or group that does not exist yet (check mode on a new box)."""

_PATH = {"type": "str", "required": True}
_ATTRS = {"owner": {"type": "str"}, "group": {"type": "str"}, "mode": {"type": "raw"}}
FILE_OPTIONS = {
    "path": _PATH, **_ATTRS,
    "content": {"type": "str", "default": ""},
    "validate": {"type": "list", "elements": "str"},
    "validate_with": {"type": "list", "elements": "str", "default": []},
    "zone_serial": {"type": "bool", "default": False},
}
SECRET_FILE_OPTIONS = dict(FILE_OPTIONS, content={"type": "str", "default": "", "no_log": True})
DIRECTORY_OPTIONS = {"path": _PATH, **_ATTRS}
LINK_OPTIONS = {"path": _PATH, "target": {"type": "str", "required": True}}


def _items(options, **extra):
    return {"type": "list", "elements": "dict", "default": [], "options": options, **extra}


BATCH_CONTENT = {
    "files": _items(FILE_OPTIONS),
    "secret_files": _items(SECRET_FILE_OPTIONS),
    "directories": _items(DIRECTORY_OPTIONS),
    "links": _items(LINK_OPTIONS),
    "absent": {"type": "list", "elements": "str", "default": []},
    "on_change": {"type": "list", "elements": "list", "default": []},
}
BATCH_OPTIONS = {
    "name": {"type": "str", "required": True},
    **BATCH_CONTENT,
    "services": {"type": "list", "elements": "str", "default": []},
    "packages": {"type": "list", "elements": "str", "default": []},
    "after_reloads": {"type": "bool", "default": False},
}
ARGUMENT_SPEC = {
    **BATCH_CONTENT,
    "batches": _items(BATCH_OPTIONS),
    "after": {"type": "list", "elements": "list", "default": []},
    "pending_dir": {"type": "str", "default": "/var/lib/hearth-agent/pending-reloads"},
    "systemctl": {"type": "list", "elements": "str", "default": ["systemctl"]},
    "command_timeout": {"type": "int", "default": 120},
}


class BatchError(Exception):
    """A batch cannot be converged (validation failed, a missing owner or group)."""


# ---- pure helpers -------------------------------------------------------------------------


def parse_mode(value):
    """``"0644"`` -> 0o644; None stays None. Integers are refused: YAML reads 0644 as 420."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MODE.match(value):
        raise BatchError(f"mode {value!r} is not an octal string such as \"0644\"")
    return int(value, 8)


def zone_content(old, content, today):
    """The zone text to write, or None when ``old`` differs from ``content`` only in its serial.

    ``today`` is ``YYYYMMDD00`` as an int; the new serial is ``max(old + 1, today)``.
    """
    old_serial = 0
    if old is not None:
        match = _SERIAL_LINE.search(old)
        if match:
            old_serial = int(match.group(2))
            if _SERIAL_LINE.sub(r"\g<1>" + SERIAL + r"\g<3>", old, count=1) == content:
                return None
    return content.replace(SERIAL, str(max(old_serial + 1, today)), 1)


def substitute(argv, *, candidate=None, directory=None):
    """``argv`` with ``%s`` -> the candidate file and ``%d`` -> its private directory."""
    out = []
    for arg in argv:
        arg = str(arg)
        if candidate is not None:
            arg = arg.replace("%s", candidate)
        if directory is not None:
            arg = arg.replace("%d", directory)
        out.append(arg)
    return out


def prev_path(path):
    """Where the previous version of ``path`` is kept while its batch is unconfirmed."""
    head, tail = os.path.split(path)
    return os.path.join(head, "." + tail + PREV_SUFFIX)


def missing_packages(dpkg_output, wanted):
    """Packages of ``wanted`` that ``dpkg-query -W -f '${Package} ${db:Status-Status}\\n'``
    does not list as installed, in ``wanted`` order."""
    installed = set()
    for line in dpkg_output.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] == "installed":
            installed.add(fields[0].split(":", 1)[0])
    return [name for name in wanted if name not in installed]


def describe(kind, mode=None, owner=None, group=None, target=None):
    """One path's state as diff text (``kind`` is file, directory, link or absent)."""
    lines = [f"state: {kind}"]
    if target is not None:
        lines.append(f"target: {target}")
    if mode is not None:
        lines.append(f"mode: {mode:04o}")
    if owner is not None:
        lines.append(f"owner: {owner}")
    if group is not None:
        lines.append(f"group: {group}")
    return "\n".join(lines) + "\n"


def reload_order(batch_names, pending_names):
    """Batches whose commands may run: this execution's in order, then other pending ones."""
    present = set(batch_names)
    return list(batch_names) + sorted(n for n in pending_names if n not in present)


# ---- the box ------------------------------------------------------------------------------


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(fd, data):
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class PendingReloads:
    """Markers ``<directory>/<batch>.json`` holding the batch's on_change commands."""

    def __init__(self, directory):
        self.directory = directory

    def load(self):
        """{batch: commands, or None when the marker cannot be read}."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return {}
        out = {}
        for entry in names:
            if not entry.endswith(".json") or entry.startswith("."):
                continue
            try:
                with open(os.path.join(self.directory, entry), encoding="utf-8") as fh:
                    commands = json.load(fh)["on_change"]
            except (OSError, ValueError, KeyError, TypeError):
                commands = None
            out[entry[: -len(".json")]] = commands
        return out

    def add(self, name, commands):
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        data = json.dumps({"batch": name, "on_change": commands,
                           "since": datetime.datetime.now(datetime.UTC).isoformat()})
        fd, tmp = tempfile.mkstemp(prefix=".pending-", dir=self.directory)
        try:
            _write_durably(fd, data.encode() + b"\n")
            os.rename(tmp, os.path.join(self.directory, name + ".json"))
            tmp = None
        finally:
            if tmp is not None:
                os.unlink(tmp)
        _fsync_dir(self.directory)

    def remove(self, name):
        try:
            os.unlink(os.path.join(self.directory, name + ".json"))
        except FileNotFoundError:
            return
        _fsync_dir(self.directory)


class Run:
    """One execution: the module, its results so far, the marker store."""

    def __init__(self, module):
        self.module = module
        self.check = module.check_mode
        self.diff = module._diff
        self.timeout = module.params["command_timeout"]
        self.store = PendingReloads(module.params["pending_dir"])
        self.changed_paths = []
        self.restored_paths = []
        self.diffs = []
        self.commands = []
        self.warnings = []

    def run(self, argv, *, candidate=None, directory=None, timeout=None, env=None):
        argv = substitute(argv, candidate=candidate, directory=directory)
        timeout = timeout or self.timeout
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                                  timeout=timeout, stdin=subprocess.DEVNULL, env=env)
            rc, out = proc.returncode, (proc.stdout + proc.stderr).strip()
        except subprocess.TimeoutExpired:
            rc, out = 124, f"timed out after {timeout} s"
        except OSError as exc:
            rc, out = 127, str(exc)
        self.commands.append({"argv": argv, "rc": rc, "output": out[-4000:]})
        return rc, out, argv

    def run_all(self, commands):
        """Run ``commands`` in order; None when all passed, else the failure message."""
        for argv in commands:
            rc, out, argv = self.run(argv)
            if rc != 0:
                return f"{' '.join(argv)} failed (rc {rc}): {out[-2000:]}"
        return None


class Batch:
    """One batch's state in this execution."""

    def __init__(self, spec, pending):
        self.spec = spec
        self.name = spec["name"]
        if not _BATCH_NAME.match(self.name):
            raise BatchError(f"batch name {self.name!r} cannot name a marker file")
        self.on_change = [[str(a) for a in argv] for argv in spec.get("on_change") or []]
        self.was_pending = self.name in pending
        self.marked = self.was_pending
        self.changed = False
        self.replaced = []  # (path, previous path or None when the path was new)

    def before_change(self, run, path):
        """Called before ``path`` is modified: the marker first, so no reload can be lost."""
        self.changed = True
        run.changed_paths.append(path)
        if run.check or self.marked or not self.on_change:
            return
        run.store.add(self.name, self.on_change)
        self.marked = True

    def keep_previous(self, path):
        prev = prev_path(path)
        if os.path.lexists(prev):
            os.unlink(prev)
        if os.path.lexists(path):
            os.link(path, prev, follow_symlinks=False)
            self.replaced.append((path, prev))
        else:
            self.replaced.append((path, None))

    def restore(self, run):
        """Put back every path this batch replaced or removed, newest first."""
        for path, prev in reversed(self.replaced):
            if prev is None:
                if os.path.lexists(path):
                    os.unlink(path)
            else:
                os.rename(prev, path)
            _fsync_dir(os.path.dirname(path))
            run.restored_paths.append(path)
        self.replaced = []

    def confirm(self):
        """The batch's commands passed: the previous versions are no longer needed."""
        for _, prev in self.replaced:
            if prev is not None and os.path.lexists(prev):
                os.unlink(prev)
        self.replaced = []


def _ids(run, spec):
    """(uid, gid) of a spec; -1 when not set, UNKNOWN_ID for a name not there yet in check mode."""
    out = []
    for key, lookup in (("owner", pwd.getpwnam), ("group", grp.getgrnam)):
        name = spec.get(key)
        if name is None:
            out.append(-1)
            continue
        try:
            entry = lookup(name)
        except KeyError:
            what = "user" if key == "owner" else "group"
            if not run.check:
                raise BatchError(f"{what} {name!r} of {spec['path']} does not exist "
                                 f"(users and groups are created by the users step)") from None
            run.warnings.append(f"{what} {name!r} of {spec['path']} does not exist yet: "
                                f"the users step creates it before this is applied")
            out.append(UNKNOWN_ID)
            continue
        out.append(entry[2])
    return tuple(out)


def _attrs_differ(st, mode, uid, gid):
    return ((mode is not None and (st.st_mode & 0o7777) != mode)
            or uid == UNKNOWN_ID or gid == UNKNOWN_ID
            or (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid))


def _fix_attrs(path, mode, uid, gid):
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid, follow_symlinks=False)
    if mode is not None:
        os.chmod(path, mode)


def _attr_diff(run, spec, st, mode, kind):
    if not run.diff:
        return
    before = "state: absent\n" if st is None else describe(
        kind, st.st_mode & 0o7777, _name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid))
    after = describe(kind, mode, spec.get("owner"), spec.get("group"))
    run.diffs.append({"before_header": spec["path"], "after_header": spec["path"],
                      "before": before, "after": after})


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def _validate(run, spec, data, in_place):
    """Run the file's checker on ``data``; raises BatchError when it refuses it.

    ``in_place`` is the temporary file that will be renamed over the destination (real
    runs); ``%s`` names it, as the stock ``validate:`` does. In check mode the candidate
    is written to a private directory instead, so nothing appears under the destination.
    ``%d`` is always a private directory holding the candidate under the destination's
    own name, with copies of ``validate_with`` beside it (``postfix -c %d check``).
    """
    argv = spec.get("validate")
    if not argv:
        return
    private = tempfile.mkdtemp(prefix="hearth-validate-")
    try:
        named = os.path.join(private, os.path.basename(spec["path"]))
        if in_place is None or any("%d" in str(a) for a in argv):
            with open(named, "wb") as fh:
                fh.write(data)
            for other in spec.get("validate_with") or []:
                if os.path.exists(other):
                    shutil.copy2(other, os.path.join(private, os.path.basename(other)))
        candidate = named if in_place is None else in_place
        rc, out, argv = run.run(argv, candidate=candidate, directory=private)
        if rc != 0:
            # postfix logs its reason to syslog, not stderr: the rc is all some checkers say.
            raise BatchError(f"validation of {spec['path']} failed (rc {rc}): "
                             f"{' '.join(argv)}: {out}")
    finally:
        shutil.rmtree(private, ignore_errors=True)


def converge_file(run, batch, spec):
    path = spec["path"]
    mode = parse_mode(spec.get("mode"))
    uid, gid = _ids(run, spec)
    content = spec.get("content") or ""
    st = None
    if os.path.lexists(path):
        st = os.lstat(path)
    is_file = st is not None and os.path.isfile(path) and not os.path.islink(path)
    old = None
    if is_file and (spec.get("zone_serial") or (run.diff and not spec.get("no_diff"))):
        with open(path, encoding="utf-8", errors="replace") as fh:
            old = fh.read()
    if spec.get("zone_serial"):
        today = int(datetime.datetime.now(datetime.UTC).strftime("%Y%m%d00"))
        content = zone_content(old, content, today)
        if content is None:  # only the serial would differ: the file is up to date
            if _attrs_differ(st, mode, uid, gid):
                _attr_diff(run, spec, st, mode, "file")
                batch.before_change(run, path)
                if not run.check:
                    _fix_attrs(path, mode, uid, gid)
            return
    data = content.encode("utf-8")
    if is_file:
        with open(path, "rb") as fh:
            same = fh.read() == data
        if same:
            if _attrs_differ(st, mode, uid, gid):
                _attr_diff(run, spec, st, mode, "file")
                batch.before_change(run, path)
                if not run.check:
                    _fix_attrs(path, mode, uid, gid)
            return
    if run.diff and not spec.get("no_diff"):
        run.diffs.append({"before_header": path, "after_header": path,
                          "before": old or "", "after": content})
    if run.check:
        _validate(run, spec, data, None)
        batch.before_change(run, path)
        return
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hearth-", dir=directory)
    try:
        _write_durably(fd, data)
        _fix_attrs(tmp, mode if mode is not None else 0o644, uid, gid)
        _validate(run, spec, data, tmp)
        batch.before_change(run, path)
        batch.keep_previous(path)
        os.rename(tmp, path)
        tmp = None
        _fsync_dir(directory)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def converge_directory(run, batch, spec):
    path = spec["path"]
    mode = parse_mode(spec.get("mode"))
    uid, gid = _ids(run, spec)
    if not os.path.isdir(path):
        _attr_diff(run, spec, None, mode, "directory")
        batch.before_change(run, path)
        if not run.check:
            os.makedirs(path, exist_ok=True)
            _fix_attrs(path, mode, uid, gid)
        return
    st = os.lstat(path)
    if _attrs_differ(st, mode, uid, gid):
        _attr_diff(run, spec, st, mode, "directory")
        batch.before_change(run, path)
        if not run.check:
            _fix_attrs(path, mode, uid, gid)


def converge_link(run, batch, spec):
    path, target = spec["path"], spec["target"]
    current = os.readlink(path) if os.path.islink(path) else None
    if current == target:
        return
    if run.diff:
        before = ("state: absent\n" if not os.path.lexists(path)
                  else describe("link", target=current) if current is not None
                  else "state: not a link\n")
        run.diffs.append({"before_header": path, "after_header": path,
                          "before": before, "after": describe("link", target=target)})
    batch.before_change(run, path)
    if run.check:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


def remove(run, batch, path):
    if not os.path.lexists(path):
        return
    is_dir = os.path.isdir(path) and not os.path.islink(path)
    if run.diff:
        run.diffs.append({"before_header": path, "after_header": path,
                          "before": describe("directory" if is_dir else "file"),
                          "after": "state: absent\n"})
    batch.before_change(run, path)
    if run.check:
        return
    if is_dir:
        os.rmdir(path)  # only empty directories: never delete data
        return
    prev = prev_path(path)
    if os.path.lexists(prev):
        os.unlink(prev)
    os.rename(path, prev)  # kept until the batch's commands pass
    batch.replaced.append((path, prev))
    _fsync_dir(os.path.dirname(path))


def converge_batch(run, batch):
    """Converge one batch's paths; on BatchError the paths it replaced are put back."""
    spec = batch.spec
    try:
        for item in spec.get("directories") or []:
            converge_directory(run, batch, item)
        secret = [dict(item, no_diff=True) for item in spec.get("secret_files") or []]
        for item in list(spec.get("files") or []) + secret:
            converge_file(run, batch, item)
        for item in spec.get("links") or []:
            converge_link(run, batch, item)
        for path in spec.get("absent") or []:
            remove(run, batch, path)
    except (BatchError, OSError):
        if not run.check:
            batch.restore(run)
            if batch.marked and not batch.was_pending:
                # Back to what the service already runs: nothing to reload.
                run.store.remove(batch.name)
                batch.marked = False
        raise


def reload_batch(run, batch):
    """Run a batch's on_change; on failure restore its files and run them once more.

    Returns None or the failure message. The marker goes only when the commands passed
    on what is now on disk.
    """
    if not batch.on_change:
        batch.confirm()
        run.store.remove(batch.name)
        return None
    failure = run.run_all(batch.on_change)
    if failure is None:
        batch.confirm()
        run.store.remove(batch.name)
        return None
    if batch.replaced:
        batch.restore(run)
        again = run.run_all(batch.on_change)
        if again is None:
            run.store.remove(batch.name)
            return f"{batch.name}: {failure}; previous files restored"
        return f"{batch.name}: {failure}; previous files restored, then: {again}"
    return f"{batch.name}: {failure}"


def ensure_services(run, units, systemctl):
    started = []
    for unit in units:
        enabled = run.run([*systemctl, "is-enabled", "--quiet", unit])[0] == 0
        active = run.run([*systemctl, "is-active", "--quiet", unit])[0] == 0
        if enabled and active:
            continue
        if run.check:
            started.append(unit)
            continue
        rc, out, argv = run.run([*systemctl, "enable", "--now", unit])
        if rc != 0:
            return started, f"{' '.join(argv)} failed (rc {rc}): {out[-2000:]}"
        started.append(unit)
    return started, None


def ensure_packages(run, packages):
    rc, out, _ = run.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n",
                          *packages])
    missing = missing_packages(out, packages)
    if not missing or run.check:
        return missing, None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    rc, out, argv = run.run(["apt-get", "install", "-y", "--no-install-recommends", *missing],
                            timeout=INSTALL_TIMEOUT, env=env)
    if rc != 0:
        return [], f"{' '.join(argv)} failed (rc {rc}): {out[-2000:]}"
    return missing, None


def _unique(lists):
    out = []
    for items in lists:
        for item in items:
            if item not in out:
                out.append(item)
    return out


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    run = Run(module)
    top = {key: params[key] for key in BATCH_CONTENT}
    specs = [dict(top, name="main", services=[], packages=[], after_reloads=False),
             *params["batches"]]
    result = {"changed": False, "changed_batches": [], "reloaded_batches": [],
              "pending_batches": [], "installed_packages": [], "started_units": []}

    def finish(failures):
        ran_reload = bool(result["reloaded_batches"]) and not run.check
        result.update(changed=bool(run.changed_paths) or ran_reload,
                      changed_paths=run.changed_paths, restored_paths=run.restored_paths,
                      commands=run.commands)
        if run.check and result["pending_batches"]:
            result["changed"] = True
        if run.diffs:
            result["diff"] = run.diffs
        for warning in run.warnings:
            module.warn(warning)
        if failures:
            module.fail_json(msg="; ".join(failures), **result)
        module.exit_json(**result)

    pending = run.store.load()
    try:
        batches = [Batch(spec, pending) for spec in specs]
    except BatchError as exc:
        finish([str(exc)])
    names = [b.name for b in batches]
    if len(set(names)) != len(names):
        finish([f"batch names must be unique: {names}"])
    failures = []

    packages = _unique(b.spec.get("packages") or [] for b in batches)
    if packages:
        installed, failure = ensure_packages(run, packages)
        result["installed_packages"] = installed
        if failure is not None:
            finish([failure])

    # 1. Write every batch up to the first that fails; later batches are left alone.
    done = []
    final = [b for b in batches if b.spec.get("after_reloads")]
    for batch in (b for b in batches if not b.spec.get("after_reloads")):
        try:
            converge_batch(run, batch)
        except (BatchError, OSError) as exc:
            failures.append(f"{batch.name}: {exc}")
            batch.changed = False
            done.append(batch)  # its restored files still need a pending reload, if any
            break
        done.append(batch)
    result["changed_batches"] = [b.name for b in done if b.changed]

    # 2. The commands of every batch written now, and of every reload still pending.
    by_name = {b.name: b for b in done}
    for name in reload_order([b.name for b in done], pending):
        batch = by_name.get(name)
        if batch is None:
            batch = next((b for b in batches if b.name == name), None)
            if batch is None:  # pending from an earlier execution, not in this one
                commands = pending[name]
                if commands is None:
                    run.warnings.append(f"pending-reload marker of {name} unreadable: removed")
                    if not run.check:
                        run.store.remove(name)
                    continue
                batch = Batch({"name": name, "on_change": commands}, pending)
        if not (batch.changed or batch.was_pending):
            continue
        if run.check:
            if batch.on_change:
                result["pending_batches"].append(name)
            continue
        failure = reload_batch(run, batch)
        if failure is None:
            if batch.on_change:
                result["reloaded_batches"].append(name)
        else:
            failures.append(failure)
            result["pending_batches"].append(name)

    # 3. Services of the batches written and reloaded, enabled and started.
    units = _unique(b.spec.get("services") or [] for b in done
                    if b.name not in result["pending_batches"])
    if units:
        started, failure = ensure_services(run, units, params["systemctl"])
        result["started_units"] = started
        if failure is not None:
            failures.append(failure)

    # 4. What may only follow a fully applied run (the applied revision).
    if final and not failures and (run.check or not run.store.load()):
        for batch in final:
            try:
                converge_batch(run, batch)
                if batch.changed:
                    result["changed_batches"].append(batch.name)
                    if not run.check:
                        failure = reload_batch(run, batch)
                        if failure is not None:
                            failures.append(failure)
                            break
            except (BatchError, OSError) as exc:
                failures.append(f"{batch.name}: {exc}")
                break
    elif final and not failures:
        failures.append("reloads still pending: "
                        + ", ".join(sorted(run.store.load())) + "; applied revision not written")

    if not failures:
        for argv in params["after"]:
            rc, out, argv = run.run(argv)
            if rc != 0:
                failures.append(f"{' '.join(argv)} failed: {out}")
                break
    finish(failures)


if __name__ == "__main__":
    main()
