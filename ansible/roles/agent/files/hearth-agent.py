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

The sequence number is persisted in the state directory (atomic write) and
strictly increases across restarts. Posting retries with exponential backoff
and full jitter; 4xx answers other than 408 and 429 are not retried. The token
is read from a file and never printed or logged.

Usage: hearth-agent [--config /etc/hearth/agent.json] [--once] [--print]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

AGENT_VERSION = "hearth-agent/1.0"
DEFAULT_CONFIG = "/etc/hearth/agent.json"
TLS_DIR = "/etc/hearth/tls"
NAMED_CONF = "/etc/bind/named.conf"
DEFAULT_ZONES_FILE = "/etc/bind/named.conf.default-zones"
UID_MIN, UID_MAX = 1000, 60000
RECORD_TYPES = {"A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "NS", "SOA"}
_REVISION = re.compile(r"^[0-9a-f]{40}$")


def log(message):
    print(f"hearth-agent: {message}", file=sys.stderr)


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


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


# --------------------------------------------------------------------------- #
# users
# --------------------------------------------------------------------------- #


def _getent(database, fallback):
    rc, out, _ = run(["getent", database])
    if rc != 0:
        out = read_text(fallback) or ""
    return [line.split(":") for line in out.splitlines() if line and not line.startswith("#")]


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
        keys = []
        text = read_text(os.path.join(home, ".ssh", "authorized_keys")) or ""
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.append(line[:16384])
        secret = shadow.get(name, "")
        users.append({
            "name": name[:255],
            "uid": uid,
            "full_name": gecos[:512],
            "groups": sorted(members.get(name, []))[:256],
            "shell": shell[:512],
            "ssh_keys": keys[:64],
            "has_password": bool(secret) and secret[0] not in "!*",
        })
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


def probe_services():
    if not os.path.isdir("/proc/self"):
        return [{"name": name, "status": "unknown", "message": "/proc is not mounted"}
                for name in SERVICES if shutil.which(name) or name == "postfix"
                and shutil.which("postconf")]
    running = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            comm = read_text(f"/proc/{pid}/comm")
            if comm:
                running.add(comm.strip())
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
# heartbeat, sequence, posting
# --------------------------------------------------------------------------- #


def next_sequence(state_dir):
    """Read, increment and durably store the sequence number (atomic replace)."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, "sequence")
    current = read_text(path)
    value = int(current.strip()) + 1 if current and current.strip().isdigit() else 1
    fd, tmp = tempfile.mkstemp(prefix=".sequence-", dir=state_dir)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{value}\n")
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
    return value


def applied_revision(state_dir):
    text = (read_text(os.path.join(state_dir, "applied-revision")) or "").strip()
    return text if _REVISION.match(text) else None


def build_heartbeat(state_dir):
    observed = {
        "users": probe_users(),
        "dns": probe_dns(),
        "samba": probe_samba(),
        "mail": probe_mail(),
        "pki": probe_pki(),
    }
    return {
        "sequence": next_sequence(state_dir),
        "sent_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "agent_version": AGENT_VERSION,
        "applied_revision": applied_revision(state_dir),
        "observed": observed,
        "services": probe_services(),
        "facts": probe_facts(),
    }


class PermanentError(Exception):
    """The API refused the heartbeat; retrying the same one will not help."""


def post(url, token, body, timeout=15):
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                 "User-Agent": AGENT_VERSION},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise PermanentError(f"HTTP {exc.code} from {url}") from None
        raise


def post_with_retries(url, token, body, attempts=6, base=1.0, cap=60.0, sleep=time.sleep):
    """POST until it succeeds; exponential backoff with full jitter between attempts."""
    for attempt in range(attempts):
        try:
            return post(url, token, body)
        except PermanentError:
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if attempt == attempts - 1:
                raise
            delay = random.uniform(0, min(cap, base * 2 ** attempt))  # noqa: S311
            log(f"post failed ({type(exc).__name__}: {exc}); retry in {delay:.1f} s")
            sleep(delay)
    return None


def load_config(path):
    config = {"api_url": None, "token_file": "/etc/hearth/agent.token",
              "state_dir": "/var/lib/hearth-agent", "interval_seconds": 60}
    text = read_text(path)
    if text:
        config.update(json.loads(text))
    return config


def report_once(config, print_only):
    heartbeat = build_heartbeat(config["state_dir"])
    body = json.dumps(heartbeat, sort_keys=True).encode()
    if print_only:
        sys.stdout.write(body.decode() + "\n")
        return None
    if not config.get("api_url"):
        raise SystemExit("hearth-agent: no api_url in the configuration")
    token = (read_text(config["token_file"]) or "").strip()
    if not token:
        raise SystemExit(f"hearth-agent: no token in {config['token_file']}")
    url = config["api_url"].rstrip("/") + "/api/v1/heartbeat"
    ack = post_with_retries(url, token, body)
    log(f"heartbeat {heartbeat['sequence']} accepted")
    return ack


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hearth-agent", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--once", action="store_true", help="report once and exit")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print the heartbeat instead of posting it")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.once or args.print_only:
        try:
            report_once(config, args.print_only)
        except PermanentError as exc:
            log(str(exc))
            return 1
        except (urllib.error.URLError, OSError) as exc:
            log(f"giving up: {exc}")
            return 1
        return 0
    while True:
        interval = int(config.get("interval_seconds") or 60)
        try:
            ack = report_once(config, False) or {}
            interval = int(ack.get("next_interval_seconds") or interval)
        except (PermanentError, urllib.error.URLError, OSError) as exc:
            log(f"report failed: {exc}")
        time.sleep(max(5, interval) * random.uniform(0.9, 1.1))  # noqa: S311


if __name__ == "__main__":
    sys.exit(main())
