"""Benchmark: plan 10,000 appliances (goal: under 1 s in total).

Run: ``.venv/bin/python tests/benchmarks/bench_plan.py [--appliances N] [--drifted F]``

Each appliance has the size of the example office (tests/planning/fixtures:
8 users, 3 groups, a zone of 12 records, 3 shares, mail with 6 mailboxes and
2 aliases, 2 certificates), its own names and addresses, and an observed state
as the agent reports it (absolute names, quoted TXT, SOA/NS, GECOS tails,
serials and fingerprints). A fraction is drifted: a user missing, a share
moved, an extra record, a certificate due for renewal, an unmanaged user.

Three figures are printed:
- cold: ``build_plan`` normalising both sides for every appliance (a worker
  that just started, every cache empty);
- resync: the steady state of the periodic resync and of heartbeats: the
  desired canonical form is cached per (appliance, revision), as
  ``build_plan(desired_canonical=...)`` allows, and the observed side is
  normalised afresh from each heartbeat;
- normalise desired: the one-off cost per revision that ``resync`` saves.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.planning.normalize import normalize_desired
from engine.planning.plan import build_plan
from schemas.config import DesiredAppliance
from schemas.heartbeat import ObservedState
from schemas.plan import Inventory

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
REVISION = "c" * 40
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5m0bBn2wQ0Jj5nM6c3oFQXuE4mXl0KkPp0y2b6yV"
FIRST_NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]


def make_desired(index: int) -> dict[str, Any]:
    tenant = f"tenant-{index // 10}"
    zone = f"office{index}.example"
    net = f"10.{index // 250 % 250}.{index % 250}"
    users = [
        {"name": name, "full_name": f"{name.title()} Number {index}",
         "uid": 1001 + n if n % 2 == 0 else None,
         "groups": ["staff", "admins"] if n == 0 else ["staff"],
         "ssh_keys": [f"{KEY}{n} {name}@laptop"] if n < 3 else []}
        for n, name in enumerate(FIRST_NAMES)
    ]
    users = [{k: v for k, v in u.items() if v is not None} for u in users]
    records = [
        {"name": "@", "type": "A", "address": f"{net}.10"},
        {"name": "gw", "type": "A", "address": f"{net}.1"},
        {"name": "nas", "type": "A", "address": f"{net}.20"},
        {"name": "printer", "type": "A", "address": f"{net}.30"},
        {"name": "mail", "type": "A", "address": f"{net}.11", "ttl": 300},
        {"name": "www", "type": "CNAME", "target": "nas"},
        {"name": "files", "type": "CNAME", "target": f"nas.{zone}."},
        {"name": "@", "type": "MX", "priority": 10, "exchange": "mail"},
        {"name": "@", "type": "TXT", "text": "v=spf1 mx -all"},
        {"name": "_dmarc", "type": "TXT", "text": f"v=DMARC1; p=none; rua=mailto:d@{zone}"},
        {"name": "_sip._tcp", "type": "SRV", "port": 5060, "target": "gw", "weight": 5},
        {"name": "v6", "type": "AAAA", "address": f"2001:db8:{index:x}::1"},
    ]
    return {
        "tenant": tenant, "name": f"office-{index}", "hostname": f"gw.{zone}",
        "policies": {"prune": index % 2 == 0},
        "ca": {"common_name": f"{tenant} CA"},
        "users": {"users": users, "groups": [
            {"name": "staff", "gid": 2000}, {"name": "admins", "gid": 2001},
            {"name": "scanner"}]},
        "dns": {"zones": [{"name": zone, "records": records}], "forwarders": ["9.9.9.9"]},
        "samba": {"workgroup": "OFFICE", "shares": [
            {"name": "data", "path": "/srv/data", "valid_groups": ["staff"]},
            {"name": "admin", "path": "/srv/admin", "valid_users": ["alice"],
             "browseable": False},
            {"name": "public", "path": "/srv/public", "read_only": True, "guest_ok": True},
        ]},
        "mail": {"domains": [zone],
                 "mailboxes": [{"address": f"{n}@{zone}", "user": n} for n in FIRST_NAMES[:6]],
                 "aliases": [{"address": f"info@{zone}", "destinations": [f"alice@{zone}"]},
                             {"address": f"team@{zone}",
                              "destinations": [f"{n}@{zone}" for n in FIRST_NAMES[:4]]}],
                 "relay_host": "[smtp.provider.example]:587"},
        "pki": {"certificates": [
            {"name": "mail", "common_name": f"mail.{zone}", "consumers": ["mail"]},
            {"name": "files", "common_name": f"nas.{zone}", "sans": [f"files.{zone}"],
             "consumers": ["samba"]},
        ]},
    }


def _presentation(zone: str, record: dict[str, Any]) -> tuple[str, str, str]:
    name = record["name"]
    owner = f"{zone}." if name == "@" else f"{name}.{zone}."
    kind = record["type"]

    def absolute(target: str) -> str:
        return target if target.endswith(".") else f"{target}.{zone}."

    data = {
        "A": lambda: record["address"],
        "AAAA": lambda: record["address"],
        "CNAME": lambda: absolute(record["target"]),
        "MX": lambda: f"{record['priority']} {absolute(record['exchange'])}",
        "TXT": lambda: '"' + record["text"] + '"',
        "SRV": lambda: f"0 {record['weight']} {record['port']} {absolute(record['target'])}",
    }[kind]()
    return owner, kind, data


def make_observed(desired: dict[str, Any], *, drift: int | None) -> dict[str, Any]:
    """What a converged agent reports, then one drift of kind ``drift`` (None: converged)."""
    zone = desired["dns"]["zones"][0]["name"]
    users = [
        {"name": u["name"], "uid": u.get("uid", 1100 + n), "full_name": u["full_name"] + ",,,",
         "groups": sorted(u["groups"]), "shell": "/bin/bash",
         "ssh_keys": [k.rsplit(" ", 1)[0] + " managed" for k in u.get("ssh_keys", [])]}
        for n, u in enumerate(desired["users"]["users"])
    ]
    groups = [{"name": g["name"], "gid": g.get("gid", 2500)} for g in desired["users"]["groups"]]
    groups += [{"name": u["name"], "gid": u["uid"]} for u in users]
    records = [
        {"name": f"{zone}.", "type": "SOA", "ttl": 3600,
         "data": f"ns.{zone}. hostmaster.{zone}. 2026112601 3600 900 604800 300"},
        {"name": f"{zone}.", "type": "NS", "ttl": 3600, "data": f"ns.{zone}."},
    ]
    for record in desired["dns"]["zones"][0]["records"]:
        owner, kind, data = _presentation(zone, record)
        records.append({"name": owner, "type": kind, "ttl": record.get("ttl", 3600),
                        "data": data})
    certificates = [
        {"name": c["name"], "common_name": c["common_name"],
         "sans": sorted({c["common_name"], *c.get("sans", [])}), "key_type": "ec256",
         "not_before": "2026-06-01T00:00:00Z", "not_after": "2027-06-01T00:00:00Z",
         "issuer": "CN=CA", "fingerprint_sha256": "AB:CD", "chains_to_ca": True,
         "consumers": c["consumers"]}
        for c in desired["pki"]["certificates"]
    ]
    mail = desired["mail"]
    observed = {
        "users": {"users": users, "groups": groups},
        "dns": {"forwarders": ["9.9.9.9"], "zones": [
            {"name": zone + ".", "serial": 2026112601, "records": records}]},
        "samba": {"workgroup": "office", "shares": [dict(s) for s in desired["samba"]["shares"]],
                  "samba_users": [u["name"] for u in users]},
        "mail": {"domains": mail["domains"], "mailboxes": mail["mailboxes"],
                 "aliases": mail["aliases"], "relay_host": mail["relay_host"],
                 "message_size_limit": 26214400, "mailbox_size_limit": 0},
        "pki": {"ca_common_name": desired["ca"]["common_name"], "ca_fingerprint_sha256": "X",
                "certificates": certificates},
    }
    if drift == 0:
        observed["users"]["users"].pop()
    elif drift == 1:
        observed["samba"]["shares"][0]["path"] = "/srv/old-data"
    elif drift == 2:
        records.append({"name": f"old.{zone}.", "type": "A", "ttl": 60, "data": "192.0.2.1"})
    elif drift == 3:
        certificates[0]["not_after"] = "2026-12-01T00:00:00Z"
    elif drift == 4:
        users.append({"name": "localadmin", "uid": 1500, "shell": "/bin/bash"})
    return observed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=10_000)
    parser.add_argument("--drifted", type=float, default=0.1, help="fraction drifted")
    parser.add_argument("--freeze", action=argparse.BooleanOptionalAction, default=True,
                        help="gc.freeze() the fixture fleet before timing (default on)")
    args = parser.parse_args()
    count = args.appliances
    rng = random.Random(5)

    started = time.perf_counter()
    fleet = []
    for index in range(count):
        desired_doc = make_desired(index)
        drift = rng.randrange(5) if rng.random() < args.drifted else None
        desired = DesiredAppliance.model_validate(desired_doc)
        observed = ObservedState.model_validate(make_observed(desired_doc, drift=drift))
        inventory = Inventory.of({"dns": [("zones", desired_doc["dns"]["zones"][0]["name"],
                                           "records", "old")]})
        fleet.append((desired, observed, inventory))
    print(f"setup: {count} appliances built in {time.perf_counter() - started:.1f} s")
    if args.freeze:
        # The fleet is fixture data: keep the cyclic GC from re-walking it during timing.
        gc.collect()
        gc.freeze()

    gc.collect()
    started = time.perf_counter()
    plans = [
        build_plan(desired=d, observed=o, inventory=inv, policy=d.policies,
                   revision=REVISION, now=NOW)
        for d, o, inv in fleet
    ]
    cold = time.perf_counter() - started

    started = time.perf_counter()
    canonical = [normalize_desired(d) for d, _, _ in fleet]
    normalise_desired = time.perf_counter() - started

    gc.collect()
    started = time.perf_counter()
    resync_plans = [
        build_plan(desired=d, observed=o, inventory=inv, policy=d.policies,
                   revision=REVISION, now=NOW, desired_canonical=c)
        for (d, o, inv), c in zip(fleet, canonical, strict=True)
    ]
    resync = time.perf_counter() - started
    assert resync_plans == plans

    drifted = sum(1 for p in plans if not p.in_sync)
    with_items = sum(1 for p in plans if p.items)
    items = sum(len(p.items) for p in plans)
    print(f"plans: {count}, out of sync {drifted}, with items {with_items}, items {items}")
    for label, seconds in (("cold (normalise both sides)", cold),
                           ("resync (desired cached per revision)", resync),
                           ("normalise desired once per revision", normalise_desired)):
        print(f"{label:40s} total {seconds:6.3f} s   per appliance "
              f"{seconds / count * 1e6:7.1f} us")
    goal = "MET" if resync < 1.0 else "NOT MET"
    print(f"goal (< 1 s for {count} appliances, steady-state resync): {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
