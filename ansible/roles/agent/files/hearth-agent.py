#!/usr/bin/env python3
"""Hearth heartbeat agent: report what this appliance really is.

One file, Python standard library only, so it runs on the appliance's own
python3. Every run probes the box with the box's own tools and files:

  users   getent passwd / group (uid and gid 1000-60000), /etc/shadow (whether a
          password is set), ~/.ssh/authorized_keys
  dns     named.conf and its includes -> primary zones -> named-checkzone -D
          (canonical records; valid = the checker accepted the file); forwarders
  samba   testparm -s (shares, as Samba itself reads smb.conf), pdbedit -L
  mail    postconf -h (domains, relay, limits) and the source of
          virtual_alias_maps (an address mapped to one local name is a mailbox,
          to addresses an alias)
  pki     openssl x509 / openssl verify on /etc/hearth/tls; consumers are the
          services whose configuration points at a certificate
  services  processes found in /proc (unknown when /proc is not mounted)

and prints or posts a heartbeat with exactly the fields of
``schemas.heartbeat.Heartbeat``. It reports facts, never desired state (it has
none), and leaves normalising (relative names, default TTLs...) to the planner.
Two structural conventions are applied: a user's private group (same name as
the user, the user's primary group) is not reported as a group, and the RFC
6303 local zones of Debian's named.conf.default-zones are not reported.

Each probe is isolated: one that raises leaves its section out (None) and
names it, with the error, in ``observed.unknown``, which the planner reads as
"no evidence" rather than "not running"; the heartbeat still goes.

Files are read as root, so what a local user can influence is read with care.
Every read is capped in size and accepts only a regular file (no FIFO, device
or /proc oddity can hang or exhaust the agent). A user's
``~/.ssh/authorized_keys`` is opened by walking the path one component at a
time from ``/``, each directory with ``O_DIRECTORY|O_NOFOLLOW`` relative to the
previous one and the file with ``O_NOFOLLOW``: no symlink is followed anywhere
in it; the home and ``.ssh`` must belong to the user or root, and the file to
the user (or to root with a single link, so a hard link to /etc/shadow is
refused). A file that fails any check, or is larger than 256 KiB, is not sent
even in part: the user's ``ssh_keys`` is null and ``ssh_keys_error`` says why.
A process counts for a service only if it runs as root or a system account,
so a local user cannot fake a running daemon by naming a process after it.

The sequence number is persisted in the state directory (atomic write) and
strictly increases across restarts. When the API answers 409 (the sequence is
not above the last one it stored: the state directory was lost or restored
from a backup), the agent asks ``POST /api/v1/heartbeat/reenrol`` (with its
token) for the last stored sequence, continues above it and sends the report
once more. Posting retries with exponential backoff and full jitter; 4xx
answers other than 408 and 429 are not retried; a ``Retry-After`` is honoured.
Redirects are refused (a redirected request would carry the token elsewhere),
the API URL must be ``https`` unless its host is loopback, and ``ca_file`` in
the configuration names a private CA bundle to trust instead of the system's.
The token is read from a file and never printed or logged.

Reports of one box are serialised by a lock in the state directory (the
timer's and a run's own may start together), so they reach the API in the
order they were collected. The run id and revision the last successful run wrote
(``<state_dir>/applied-run``, ``applied-revision``) go in every report, so the
API can tell a report collected before a run ended from one after it.

Modes: ``--print`` prints one report; ``--once`` posts one now (``--attempts 1``:
one try, no backoff; what a run's last task uses to confirm itself); ``--when-due``
(what the systemd timer runs, every few seconds) posts only when the time
recorded in ``<state_dir>/next-due`` has come and then records the next one,
from the API's ``next_interval_seconds`` or ``Retry-After``; with no mode the
agent loops on the same schedule.

Usage: hearth-agent [--config /etc/hearth/agent.json] [--once [--attempts N] | --when-due | --print]
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import errno
import fcntl
import ipaddress
import json
import os
import random
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

AGENT_VERSION = "hearth-agent/1.0"
DEFAULT_CONFIG = "/etc/hearth/agent.json"
TLS_DIR = "/etc/hearth/tls"
NAMED_CONF = "/etc/bind/named.conf"
DEFAULT_ZONES_FILE = "/etc/bind/named.conf.default-zones"
UID_MIN, UID_MAX = 1000, 60000
RECORD_TYPES = {"A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "NS", "SOA"}
_REVISION = re.compile(r"^[0-9a-f]{40}$")
READ_CAP = 4 * 1024 * 1024
"""Largest file the agent reads (configuration, maps, /proc entries)."""
KEYS_CAP = 256 * 1024
"""Largest authorized_keys read; a larger one is reported as unreadable, not cut."""
MAX_DELAY = 6 * 3600
"""Longest wait the API can ask for (next_interval_seconds, Retry-After); a next-due
time further away than this is treated as due (a clock that jumped, a corrupt file)."""
RETRY_AFTER_INLINE = 60
"""A Retry-After up to this many seconds is slept inside the run; a longer one ends it."""
PROBES = ("users", "dns", "samba", "mail", "pki")


def run(argv, timeout=30):
    """(returncode, stdout, stderr) of a command; 127 when it is not installed."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False, errors="replace")
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: timed out"
    return proc.returncode, proc.stdout, proc.stderr


class UnreadableFile(Exception):
    """A file the agent will not read (wrong type, owner, size, a symlink on the way)."""


_OPEN_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _read_fd(fd, cap, what):
    """Text of an open regular file of at most ``cap`` bytes, else UnreadableFile."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile(f"{what} is not a regular file")
    chunks, total = [], 0
    while True:
        # /proc files report size 0, so the cap is enforced on what is read
        chunk = os.read(fd, min(65536, cap + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            raise UnreadableFile(f"{what} is larger than {cap} bytes")
    return b"".join(chunks).decode("utf-8", errors="replace")


def read_text(path, cap=READ_CAP):
    """A root-owned file's text; None when it is missing, not a regular file or too big.

    Symlinks are followed: these paths are the system's own (/etc/os-release is one).
    O_NONBLOCK keeps a FIFO from blocking the open."""
    try:
        fd = os.open(path, _OPEN_FILE)
    except OSError:
        return None
    try:
        return _read_fd(fd, cap, path)
    except OSError:  # e.g. a /proc entry whose process just ended
        return None
    except UnreadableFile as exc:
        log(f"not reading {path}: {exc}", level=4)
        return None
    finally:
        os.close(fd)


def read_user_file(path, uid, cap=KEYS_CAP):
    """Text of ``path``, a file in the home of the account ``uid``, read as root safely.

    None when it (or a directory on the way) does not exist. UnreadableFile when a
    component is a symlink or not a directory, a directory the user controls belongs
    to someone else, the file is not a regular file owned by the user (or by root with
    one link), or it is larger than ``cap``. Only ``O_NOFOLLOW`` opens relative to
    directory descriptors are used, so nothing the user renames mid-way is followed.
    """
    parts = path.split("/")
    if not path.startswith("/") or any(p in (".", "..") for p in parts) or len(parts) < 3:
        raise UnreadableFile(f"{path} is not a plain absolute path")
    names = [p for p in parts if p]
    dirs, leaf = names[:-1], names[-1]
    fds = []
    try:
        fds.append(os.open("/", _OPEN_DIR))
        # the last two directories are the home and .ssh: the user's to control
        owned_from = max(len(dirs) - 2, 0)
        for index, name in enumerate(dirs):
            try:
                fds.append(os.open(name, _OPEN_DIR, dir_fd=fds[-1]))
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnreadableFile(
                        f"{'/' + '/'.join(dirs[:index + 1])} is a symlink or not a directory"
                    ) from None
                raise UnreadableFile(f"/{'/'.join(dirs[:index + 1])}: {exc.strerror}") from None
            if index >= owned_from and os.fstat(fds[-1]).st_uid not in (uid, 0):
                raise UnreadableFile(f"/{'/'.join(dirs[:index + 1])} belongs to another user")
        try:
            fd = os.open(leaf, _OPEN_FILE | os.O_NOFOLLOW, dir_fd=fds[-1])
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnreadableFile(f"{path} is a symlink") from None
            raise UnreadableFile(f"{path}: {exc.strerror}") from None
        fds.append(fd)
        info = os.fstat(fd)
        if not (info.st_uid == uid or (info.st_uid == 0 and info.st_nlink == 1)):
            raise UnreadableFile(f"{path} belongs to another user or is a hard link")
        return _read_fd(fd, cap, path)
    finally:
        for fd in fds:
            os.close(fd)


# --------------------------------------------------------------------------- #
# users
# --------------------------------------------------------------------------- #


def _getent(database, fallback):
    rc, out, _ = run(["getent", database])
    if rc != 0:
        out = read_text(fallback) or ""
    return [line.split(":") for line in out.splitlines() if line and not line.startswith("#")]


def authorized_keys(home, uid):
    """``(keys, None)`` from the user's authorized_keys, or ``(None, why)`` when it cannot
    be read safely: a partial or foreign file is never reported as the user's keys."""
    try:
        text = read_user_file(os.path.join(home, ".ssh", "authorized_keys"), uid)
    except UnreadableFile as exc:
        log(f"ssh keys of uid {uid} not reported: {exc}")
        return None, str(exc)
    keys = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line[:16384])
    return keys[:64], None


def probe_users():
    passwd = _getent("passwd", "/etc/passwd")
    groups = _getent("group", "/etc/group")
    shadow = {f[0]: f[1] for f in (line.split(":") for line in
                                   (read_text("/etc/shadow") or "").splitlines()) if len(f) > 1}
    members = {}
    for fields in groups:
        if len(fields) >= 4:
            for member in filter(None, fields[3].split(",")):
                members.setdefault(member, []).append(fields[0])
    users = []
    private_groups = set()
    for fields in passwd:
        if len(fields) < 7 or not fields[2].isdigit():
            continue
        uid = int(fields[2])
        if not UID_MIN <= uid <= UID_MAX:
            continue
        name, gid, gecos, home, shell = fields[0], fields[3], fields[4], fields[5], fields[6]
        private_groups.add((name, gid))
        keys, keys_error = authorized_keys(home, uid)
        secret = shadow.get(name, "")
        user = {
            "name": name[:255],
            "uid": uid,
            "full_name": gecos[:512],
            "groups": sorted(members.get(name, []))[:256],
            "shell": shell[:512],
            "ssh_keys": keys,
            "has_password": bool(secret) and secret[0] not in "!*",
        }
        if keys_error is not None:
            user["ssh_keys_error"] = keys_error[:512]
        users.append(user)
    out_groups = []
    for fields in groups:
        if len(fields) < 3 or not fields[2].isdigit():
            continue
        gid = int(fields[2])
        if not UID_MIN <= gid <= UID_MAX or (fields[0], fields[2]) in private_groups:
            continue
        out_groups.append({"name": fields[0][:255], "gid": gid})
    users.sort(key=lambda u: u["name"])
    out_groups.sort(key=lambda g: g["name"])
    return {"users": users[:2000], "groups": out_groups[:2000]}


# --------------------------------------------------------------------------- #
# dns
# --------------------------------------------------------------------------- #

_COMMENTS = re.compile(r'("(?:[^"\\]|\\.)*")|//[^\n]*|#[^\n]*|/\*.*?\*/', re.DOTALL)
_INCLUDE = re.compile(r'^\s*include\s+"([^"]+)"\s*;', re.MULTILINE)
_ZONE = re.compile(r'zone\s+"([^"]+)"\s*(?:IN\s+)?\{(.*?)\}\s*;', re.DOTALL)


def _strip_comments(text):
    return _COMMENTS.sub(lambda m: m.group(1) or "", text)


def _named_files(path, seen=None):
    """(path, text without comments) of named.conf and every file it includes."""
    seen = seen if seen is not None else set()
    if path in seen:
        return []
    seen.add(path)
    text = read_text(path)
    if text is None:
        return []
    text = _strip_comments(text)
    out = [(path, text)]
    for include in _INCLUDE.findall(text):
        out += _named_files(include, seen)
    return out


def _relative(name, zone):
    name = name.rstrip(".").lower()
    if name == zone:
        return "@"
    if name.endswith("." + zone):
        return name[: -len(zone) - 1]
    return name + "."


def probe_zone(name, path):
    rc, out, _ = run(["named-checkzone", "-D", "-o", "-", name, path])
    records = []
    serial = None
    for line in out.splitlines():
        parts = line.split(None, 4)
        if len(parts) < 5 or parts[2] != "IN" or parts[3] not in RECORD_TYPES:
            continue
        owner, ttl, _, rtype, data = parts
        if rtype == "SOA":
            soa = data.split()
            if len(soa) > 2 and soa[2].isdigit():
                serial = int(soa[2])
        records.append({"name": _relative(owner, name)[:255], "type": rtype,
                        "ttl": int(ttl) if ttl.isdigit() else None, "data": data[:4096]})
    return {"name": name, "serial": serial, "records": records[:5000], "valid": rc == 0}


def probe_dns():
    if not os.path.exists(NAMED_CONF):
        return None
    zones = []
    forwarders = []
    for path, text in _named_files(NAMED_CONF):
        if os.path.abspath(path) == DEFAULT_ZONES_FILE:
            continue
        for name, body in _ZONE.findall(text):
            kind = re.search(r"\btype\s+(\w+)\s*;", body)
            file_ = re.search(r'\bfile\s+"([^"]+)"\s*;', body)
            if not kind or kind.group(1) not in {"primary", "master"} or not file_:
                continue
            zone_file = file_.group(1)
            if not zone_file.startswith("/"):
                zone_file = os.path.join("/var/cache/bind", zone_file)
            zones.append(probe_zone(name.rstrip(".").lower(), zone_file))
        block = re.search(r"\bforwarders\s*\{([^}]*)\}", text)
        if block:
            forwarders += [f.split()[0] for f in block.group(1).split(";") if f.strip()]
    zones.sort(key=lambda z: z["name"])
    return {"zones": zones[:200], "forwarders": forwarders[:16]}


# --------------------------------------------------------------------------- #
# samba
# --------------------------------------------------------------------------- #


def _yes(value, default):
    if value is None:
        return default
    return value.strip().lower() in {"yes", "true", "1", "on"}


def parse_smb_conf(text):
    """Sections of testparm -s output: {section: {key: value}} (keys lower case)."""
    sections = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[" ".join(key.lower().split())] = value.strip()
    return sections


def probe_samba():
    if shutil.which("testparm") is None:
        return None
    _, out, _ = run(["testparm", "-s"])
    sections = parse_smb_conf(out)
    shares = []
    for name, params in sections.items():
        if name.lower() == "global":
            continue
        read_only = params.get("read only")
        if read_only is None and "writeable" in params:
            read_only = "no" if _yes(params["writeable"], False) else "yes"
        valid = params.get("valid users", "").replace(",", " ").split()
        path = params.get("path", "")
        shares.append({
            "name": name[:255],
            "path": path[:512],
            "comment": params.get("comment", "")[:512],
            "read_only": _yes(read_only, True),
            "browseable": _yes(params.get("browseable", params.get("browsable")), True),
            "valid_users": [v for v in valid if not v.startswith(("@", "+", "&"))][:1000],
            "valid_groups": [v.lstrip("@+&") for v in valid if v.startswith(("@", "+", "&"))][:1000],
            "guest_ok": _yes(params.get("guest ok", params.get("public")), False),
            "path_exists": bool(path) and os.path.isdir(path),
        })
    shares.sort(key=lambda s: s["name"])
    rc, out, _ = run(["pdbedit", "-L"])
    accounts = sorted({line.split(":", 1)[0] for line in out.splitlines() if ":" in line}) \
        if rc == 0 else []
    return {
        "workgroup": sections.get("global", {}).get("workgroup", "WORKGROUP")[:512],
        "shares": shares[:500],
        "samba_users": accounts[:2000],
    }


# --------------------------------------------------------------------------- #
# mail
# --------------------------------------------------------------------------- #


def postconf(*names):
    rc, out, _ = run(["postconf", "-h", *names])
    if rc != 0:
        return None
    values = out.splitlines()
    return values + [""] * (len(names) - len(values))


def _int(value):
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def probe_mail():
    if shutil.which("postconf") is None:
        return None
    values = postconf("virtual_alias_domains", "relayhost", "message_size_limit",
                      "mailbox_size_limit", "virtual_alias_maps")
    if values is None:
        return None
    domains_raw, relay, message_limit, mailbox_limit, maps = values
    domains = [d.lower() for d in domains_raw.replace(",", " ").split()]
    mailboxes, aliases = [], []
    for table in maps.replace(",", " ").split():
        kind, _, source = table.partition(":")
        if kind not in {"hash", "btree", "lmdb", "cdb", "dbm", "texthash"} or not source:
            continue
        for line in (read_text(source) or "").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) < 2:
                continue
            address = parts[0].lower()
            targets = [t for t in parts[1].replace(",", " ").split() if t]
            if len(targets) == 1 and "@" not in targets[0]:
                mailboxes.append({"address": address[:255], "user": targets[0][:255]})
            else:
                aliases.append({"address": address[:255],
                                "destinations": [t.lower()[:255] for t in targets][:100]})
    return {
        "domains": domains[:200],
        "mailboxes": sorted(mailboxes, key=lambda m: m["address"])[:5000],
        "aliases": sorted(aliases, key=lambda a: a["address"])[:5000],
        "relay_host": relay.strip() or None,
        "message_size_limit": _int(message_limit),
        "mailbox_size_limit": _int(mailbox_limit),
    }


# --------------------------------------------------------------------------- #
# pki
# --------------------------------------------------------------------------- #


def _openssl_date(value):
    try:
        parsed = dt.datetime.strptime(value.strip().replace("  ", " "), "%b %d %H:%M:%S %Y %Z")
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.timezone.utc).isoformat()


def certificate_facts(path):
    rc, out, _ = run(["openssl", "x509", "-in", path, "-noout", "-nameopt", "RFC2253",
                      "-subject", "-issuer", "-startdate", "-enddate", "-fingerprint",
                      "-sha256", "-ext", "subjectAltName"])
    if rc != 0:
        return None
    facts = {"sans": []}
    lines = out.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("subject="):
            facts["subject"] = line[len("subject="):].strip()
        elif line.startswith("issuer="):
            facts["issuer"] = line[len("issuer="):].strip()
        elif line.startswith("notBefore="):
            facts["not_before"] = _openssl_date(line.split("=", 1)[1])
        elif line.startswith("notAfter="):
            facts["not_after"] = _openssl_date(line.split("=", 1)[1])
        elif "Fingerprint=" in line:
            facts["fingerprint"] = line.split("=", 1)[1].strip()
        elif "Subject Alternative Name" in line and index + 1 < len(lines):
            for entry in lines[index + 1].split(","):
                entry = entry.strip()
                for prefix in ("DNS:", "IP Address:", "IP:"):
                    if entry.startswith(prefix):
                        facts["sans"].append(entry[len(prefix):])
    cn = re.search(r"(?:^|,)CN=((?:[^,\\]|\\.)*)", facts.get("subject", ""))
    facts["common_name"] = cn.group(1) if cn else ""
    _, text, _ = run(["openssl", "x509", "-in", path, "-noout", "-text"])
    bits = re.search(r"Public-Key: \((\d+) bit\)", text)
    if "id-ecPublicKey" in text:
        facts["key_type"] = f"ec{bits.group(1)}" if bits else "ec"
    elif "rsaEncryption" in text:
        facts["key_type"] = f"rsa{bits.group(1)}" if bits else "rsa"
    else:
        facts["key_type"] = ""
    return facts


def _consumer_text():
    """Configuration text of each service that may read a certificate."""
    texts = {}
    values = postconf("smtpd_tls_cert_file", "smtpd_tls_key_file") if shutil.which(
        "postconf") else None
    if values:
        texts["mail"] = "\n".join(values)
    if shutil.which("testparm"):
        texts["samba"] = run(["testparm", "-s"])[1]
    if os.path.exists(NAMED_CONF):
        texts["dns"] = "\n".join(text for _, text in _named_files(NAMED_CONF))
    return texts


def probe_pki():
    if not os.path.isdir(TLS_DIR):
        return None
    ca_path = os.path.join(TLS_DIR, "ca.crt")
    ca = certificate_facts(ca_path) if os.path.exists(ca_path) else None
    consumers_text = _consumer_text()
    certificates = []
    for entry in sorted(os.listdir(TLS_DIR)):
        if not entry.endswith(".crt") or entry == "ca.crt" or entry.endswith(".chain.crt"):
            continue
        path = os.path.join(TLS_DIR, entry)
        facts = certificate_facts(path)
        if facts is None:
            continue
        name = entry[: -len(".crt")]
        chain = os.path.join(TLS_DIR, name + ".chain.crt")
        chains = ca is not None and run(["openssl", "verify", "-CAfile", ca_path, path])[0] == 0
        consumers = sorted(
            service for service, text in consumers_text.items()
            if path in text or chain in text
        )
        certificates.append({
            "name": name[:255],
            "common_name": facts["common_name"][:512],
            "sans": [s[:255] for s in facts["sans"]][:100],
            "key_type": facts["key_type"],
            "not_before": facts.get("not_before"),
            "not_after": facts.get("not_after"),
            "issuer": facts.get("issuer", "")[:512],
            "fingerprint_sha256": facts.get("fingerprint", ""),
            "chains_to_ca": chains,
            "consumers": consumers[:8],
        })
    return {
        "ca_common_name": ca["common_name"][:512] if ca else None,
        "ca_fingerprint_sha256": ca.get("fingerprint") if ca else None,
        "certificates": certificates[:200],
    }


# --------------------------------------------------------------------------- #
# services and facts
# --------------------------------------------------------------------------- #

SERVICES = {"named": ["named"], "smbd": ["smbd"], "postfix": ["master"],
            "dovecot": ["dovecot"]}


def running_commands():
    """Command names of the processes run by root or a system account (uid below
    UID_MIN): a local user's process named ``smbd`` does not make Samba look up."""
    running = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid >= UID_MIN:
                continue
        except OSError:
            continue  # the process ended
        comm = read_text(f"/proc/{pid}/comm", cap=4096)
        if comm:
            running.add(comm.strip())
    return running


def probe_services():
    if not os.path.isdir("/proc/self"):
        return [{"name": name, "status": "unknown", "message": "/proc is not mounted"}
                for name in SERVICES if shutil.which(name) or (name == "postfix"
                                                             and shutil.which("postconf"))]
    running = running_commands()
    out = []
    for name, comms in SERVICES.items():
        if not (shutil.which(name) or os.path.exists(f"/usr/sbin/{name}")
                or (name == "postfix" and shutil.which("postconf"))):
            continue
        status = "running" if running.intersection(comms) else "stopped"
        out.append({"name": name, "status": status, "message": ""})
    return out


def probe_facts():
    facts = {"hostname": socket.gethostname()[:512], "kernel": os.uname().release[:512],
             "python": sys.version.split()[0]}
    release = read_text("/etc/os-release") or ""
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', release, re.MULTILINE)
    if match:
        facts["os"] = match.group(1)[:512]
    text = (read_text("/etc/hostname") or "").strip()
    if text:
        facts["configured_hostname"] = text[:512]
    uptime = read_text("/proc/uptime")
    if uptime:
        facts["uptime_seconds"] = int(float(uptime.split()[0]))
    return facts


# --------------------------------------------------------------------------- #
# state: sequence, schedule
# --------------------------------------------------------------------------- #

MAX_SEQUENCE = 2**62


def _write_state(state_dir, name, text):
    """Durably replace ``state_dir/name`` with ``text`` (temp file, fsync, rename, fsync dir)."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=state_dir)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _stored_sequence(state_dir):
    current = (read_text(os.path.join(state_dir, "sequence"), cap=64) or "").strip()
    return int(current) if current.isdigit() else 0


def next_sequence(state_dir, above=0):
    """Store and return the next sequence: above both the stored one and ``above``."""
    value = max(_stored_sequence(state_dir), above) + 1
    if value > MAX_SEQUENCE:
        raise PermanentError(f"sequence {value} is beyond the API's range")
    _write_state(state_dir, "sequence", f"{value}\n")
    return value


def applied_revision(state_dir):
    text = (read_text(os.path.join(state_dir, "applied-revision"), cap=4096) or "").strip()
    return text if _REVISION.match(text) else None


def applied_run(state_dir):
    """The id of the run that wrote ``applied-revision`` (None when none recorded one)."""
    text = (read_text(os.path.join(state_dir, "applied-run"), cap=64) or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) <= MAX_SEQUENCE else None


def seconds_until_due(state_dir, now):
    """Seconds until the recorded next-due time; 0 when it has come, none is recorded or
    it is implausibly far away."""
    text = (read_text(os.path.join(state_dir, "next-due"), cap=64) or "").strip()
    try:
        due = float(text)
    except ValueError:
        return 0.0
    return 0.0 if due - now > MAX_DELAY else max(0.0, due - now)


def is_due(state_dir, now):
    return seconds_until_due(state_dir, now) == 0.0


def schedule(state_dir, seconds, *, now):
    """Record ``now + seconds`` (bounded to 5 s .. MAX_DELAY) as the next due time."""
    seconds = min(max(float(seconds), 5.0), MAX_DELAY)
    _write_state(state_dir, "next-due", f"{now + seconds:.3f}\n")
    return seconds


# --------------------------------------------------------------------------- #
# heartbeat
# --------------------------------------------------------------------------- #


def _probe(name, probe, unknown):
    """``probe()``, or None with ``unknown[name]`` saying why when it raises."""
    try:
        return probe()
    except Exception as exc:  # any failure of one probe must spare the others
        unknown[name] = f"{type(exc).__name__}: {exc}"[:512]
        log(f"probe {name} failed, reported as unknown: {unknown[name]}", level=4)
        return None


def build_heartbeat(state_dir):
    unknown = {}
    # the probes are looked up here, at call time, so a test can replace one
    probes = {"users": probe_users, "dns": probe_dns, "samba": probe_samba,
              "mail": probe_mail, "pki": probe_pki}
    observed = {name: _probe(name, probes[name], unknown) for name in PROBES}
    services = _probe("services", probe_services, unknown)
    facts = _probe("facts", probe_facts, unknown)
    if unknown:  # only then: an API that predates the field still takes a clean report
        observed["unknown"] = unknown
    heartbeat = {
        "sequence": next_sequence(state_dir),
        "sent_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "agent_version": AGENT_VERSION,
        "applied_revision": applied_revision(state_dir),
        "observed": observed,
        "services": services if services is not None else [],
        "facts": facts if facts is not None else {},
    }
    run_id = applied_run(state_dir)
    if run_id is not None:  # likewise only when known
        heartbeat["applied_run"] = run_id
    return heartbeat


# --------------------------------------------------------------------------- #
# talking to the API
# --------------------------------------------------------------------------- #


class ConfigError(Exception):
    """The configuration cannot be used (no URL, plain http to a remote host...)."""


class PermanentError(Exception):
    """The API refused the heartbeat; retrying the same one will not help."""


class StaleSequence(PermanentError):
    """409: the sequence is not above the last one the API stored."""


class RetryLater(Exception):
    """429 or 503 with a Retry-After: come back in ``seconds``."""

    def __init__(self, seconds, message):
        super().__init__(message)
        self.seconds = seconds


def is_loopback(host):
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_base(url):
    """The API URL without a trailing slash; https unless the host is loopback."""
    if not url:
        raise ConfigError("no api_url in the configuration")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"api_url must be an http(s) URL with a host: {url}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("api_url must not carry credentials")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"api_url must use https (plain http only to a loopback host): {url}")
    return url.rstrip("/")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's own handler copies Authorization onto the redirected request; the API
    never redirects, so any redirect is answered as the error it is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def make_opener(ca_file=None):
    """An opener that verifies TLS against ``ca_file`` (a private CA bundle) or the
    system's CAs, and follows no redirect."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load ca_file {ca_file}: {exc}") from None
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                       _RefuseRedirects())


def parse_retry_after(value):
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, int((when - dt.datetime.now(dt.timezone.utc)).total_seconds()))


def post(url, token, body, timeout=15, opener=None):
    opener = opener or make_opener()
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                 "User-Agent": AGENT_VERSION},
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            return json.loads(response.read(65536) or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:
            retry_after = parse_retry_after(exc.headers.get("Retry-After"))
        if 300 <= exc.code < 400:
            raise PermanentError(f"HTTP {exc.code} from {url}: redirects are refused, "
                                 "fix api_url") from None
        if exc.code == 409:
            raise StaleSequence(f"HTTP 409 from {url}") from None
        if exc.code in (429, 503) and retry_after is not None:
            raise RetryLater(retry_after, f"HTTP {exc.code} from {url}, "
                                          f"Retry-After {retry_after} s") from None
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise PermanentError(f"HTTP {exc.code} from {url}") from None
        raise
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            # the same certificate fails the same way: no point retrying in this run
            raise PermanentError(f"{url}: {exc.reason}") from None
        raise


def post_with_retries(url, token, body, attempts=6, base=1.0, cap=60.0, sleep=time.sleep,
                      opener=None):
    """POST until it succeeds; exponential backoff with full jitter between attempts, or
    the server's Retry-After when it gives one of at most RETRY_AFTER_INLINE seconds."""
    opener = opener or make_opener()
    for attempt in range(attempts):
        try:
            return post(url, token, body, opener=opener)
        except PermanentError:
            raise
        except RetryLater as exc:
            if exc.seconds > RETRY_AFTER_INLINE or attempt == attempts - 1:
                raise
            log(f"{exc}; retry in {exc.seconds} s", level=4)
            sleep(exc.seconds)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if attempt == attempts - 1:
                raise
            delay = random.uniform(0, min(cap, base * 2 ** attempt))  # noqa: S311
            log(f"post failed ({type(exc).__name__}: {exc}); retry in {delay:.1f} s", level=4)
            sleep(delay)
    return None


def reenrol(base, token, opener):
    """The last sequence the API stored for this appliance (0 when none)."""
    answer = post_with_retries(base + "/api/v1/heartbeat/reenrol", token, b"{}", opener=opener)
    last = (answer or {}).get("last_sequence")
    if not isinstance(last, int) or isinstance(last, bool) or not 0 <= last < MAX_SEQUENCE:
        raise PermanentError(f"re-enrolment answered no usable last_sequence: {last!r}")
    return last


def load_config(path):
    config = {"api_url": None, "token_file": "/etc/hearth/agent.token",
              "state_dir": "/var/lib/hearth-agent", "interval_seconds": 60, "ca_file": None}
    text = read_text(path)
    if text:
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} is not a JSON object")
        config.update(loaded)
    return config


def _body(heartbeat):
    return json.dumps(heartbeat, sort_keys=True).encode()


LOCK_WAIT = 120
"""Longest wait for another report of this box to finish (one report with its retries)."""


class report_lock:  # noqa: N801 - used as a context manager, named like one
    """One report at a time per state directory, across processes (``flock``).

    The timer's report and a run's own report (its last task) may start together;
    without this the later-built one could be posted first, the other then refused
    (409) and re-sent above it with what the box was before the run."""

    def __init__(self, state_dir, wait=LOCK_WAIT):
        self.state_dir, self.wait, self.fd = state_dir, wait, None

    def __enter__(self):
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self.fd = os.open(os.path.join(self.state_dir, "report.lock"),
                          os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise PermanentError("another report of this box is still running") \
                        from None
                time.sleep(0.1)

    def __exit__(self, *exc):
        os.close(self.fd)  # closing the descriptor releases the lock


def report_once(config, print_only, attempts=6):
    """Probe, then print or post one heartbeat; the API's answer (None when printing)."""
    if print_only:
        return _report_once(config, True, attempts)
    with report_lock(config["state_dir"]):
        return _report_once(config, False, attempts)


def _report_once(config, print_only, attempts):
    heartbeat = build_heartbeat(config["state_dir"])
    if print_only:
        sys.stdout.write(_body(heartbeat).decode() + "\n")
        return None
    base = api_base(config.get("api_url"))
    opener = make_opener(config.get("ca_file"))
    token = (read_text(config["token_file"], cap=4096) or "").strip()
    if not token:
        raise ConfigError(f"no token in {config['token_file']}")
    url = base + "/api/v1/heartbeat"
    try:
        ack = post_with_retries(url, token, _body(heartbeat), attempts=attempts, opener=opener)
    except StaleSequence:
        # The state directory was lost or restored: learn the API's last sequence with
        # the token and go on above it. Old heartbeats stay refused (the API never lowers
        # its baseline); a second 409 is a real conflict and ends the run.
        refused = heartbeat["sequence"]
        last = reenrol(base, token, opener)
        heartbeat["sequence"] = next_sequence(config["state_dir"], above=last)
        heartbeat["sent_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
        log(f"sequence {refused} refused, the API's last is {last}: "
            f"re-enrolled, sending {heartbeat['sequence']}", level=4)
        ack = post_with_retries(url, token, _body(heartbeat), attempts=attempts, opener=opener)
    log(f"heartbeat {heartbeat['sequence']} accepted")
    return ack


def _interval(config, ack):
    """Seconds until the next report: the API's next_interval_seconds, else the config's."""
    for value in ((ack or {}).get("next_interval_seconds"), config.get("interval_seconds")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 60


def report_and_schedule(config):
    """Post one heartbeat and record when the next is due; the process exit code."""
    started = time.time()
    state_dir = config["state_dir"]
    try:
        ack = report_once(config, False)
    except RetryLater as exc:
        log(f"{exc}: next report in {schedule(state_dir, exc.seconds, now=time.time()):.0f} s",
            level=4)
        return 1
    except (PermanentError, urllib.error.URLError, OSError) as exc:
        log(f"report failed: {exc}", level=3)
        schedule(state_dir, _interval(config, None), now=started)
        return 1
    # from the start of the run, so the timer's tick that falls on the interval finds it due
    jitter = random.uniform(0.95, 1.05)  # noqa: S311
    schedule(state_dir, _interval(config, ack) * jitter, now=started)
    return 0


def log(message, level=5):
    """One line on stderr; under systemd the ``<level>`` prefix sets its journal priority
    (the unit keeps notice and above, so routine lines are 6/info or less)."""
    prefix = f"<{level}>" if os.environ.get("JOURNAL_STREAM") else ""
    print(f"{prefix}hearth-agent: {message}", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hearth-agent", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    # --print wins over --once (``--once --print`` is how people and tests ask for a dump)
    parser.add_argument("--once", action="store_true", help="report once now and exit")
    parser.add_argument("--when-due", action="store_true",
                        help="report once if the next due time has come (the timer's mode)")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print the heartbeat instead of posting it")
    parser.add_argument("--attempts", type=int, default=6,
                        help="posts to try with --once (1: the run's own report, no backoff)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.print_only:
            report_once(config, True)
            return 0
        api_base(config.get("api_url"))  # refuse a bad URL before probing anything
        if args.when_due:
            if not is_due(config["state_dir"], time.time()):
                return 0
            return report_and_schedule(config)
        if args.once:
            try:
                report_once(config, False, attempts=max(1, args.attempts))
            except (PermanentError, RetryLater) as exc:
                log(str(exc), level=3)
                return 1
            except (urllib.error.URLError, OSError) as exc:
                log(f"giving up: {exc}", level=3)
                return 1
            return 0
        while True:
            wait = seconds_until_due(config["state_dir"], time.time())
            if wait == 0.0:
                report_and_schedule(config)
            else:
                time.sleep(min(wait, 60.0))  # re-read: a timer run may have reported meanwhile
    except ConfigError as exc:
        log(f"configuration: {exc}", level=3)
        return 2


if __name__ == "__main__":
    sys.exit(main())
