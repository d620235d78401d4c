"""A generated tenant with many appliances, for scale tests and benchmarks."""

from __future__ import annotations

import shutil
from pathlib import Path

APPLIANCE = """\
# yaml-language-server: $schema=../.schemas/appliance.json
apiVersion: hearth/v1
kind: Appliance
metadata:
  name: {name}
  labels:
    site: site-{site}
spec:
  hostname: {name}.fleet.example
  site: Site {site}
  users:
    groups: [dentists, reception]
    users: [itadmin]
  dns:
    forwarders: [9.9.9.9]
    zones:
      - name: {name}.fleet.example
        records:
          - {{name: "@", type: A, address: 10.{a}.{b}.10}}
          - {{name: printer, type: A, address: 10.{a}.{b}.40}}
          - {{name: files, type: CNAME, target: "@"}}
          - {{name: "@", type: MX, priority: 10, exchange: {name}.fleet.example.}}
          - {{name: "@", type: TXT, text: "v=spf1 mx -all"}}
  samba:
    workgroup: FLEET
    shares:
      - name: patients
        path: /srv/samba/patients
        comment: Patient records
        valid_groups: [dentists, reception]
      - name: forms
        path: /srv/samba/forms
        read_only: true
        guest_ok: true
  mail:
    domains: [{name}.fleet.example]
    mailboxes:
      - {{address: front-desk@{name}.fleet.example, user: jchen}}
    aliases:
      - address: hello@{name}.fleet.example
        destinations: [front-desk@{name}.fleet.example]
  pki:
    certificates:
      - name: main
        common_name: {name}.fleet.example
        sans: [10.{a}.{b}.10]
        consumers: [mail, samba]
"""


def appliance_yaml(index: int, *, site_suffix: str = "") -> str:
    name = f"box-{index:05d}"
    return APPLIANCE.format(name=name, site=f"{index % 97}{site_suffix}", a=index // 250,
                            b=index % 250)


def write_fleet(example_repo: Path, target: Path, count: int) -> Path:
    """The example tenant's shared files plus ``count`` generated appliances."""
    shutil.copytree(example_repo, target, ignore=shutil.ignore_patterns("appliances"))
    appliances = target / "appliances"
    appliances.mkdir()
    for index in range(count):
        (appliances / f"box-{index:05d}.yaml").write_text(appliance_yaml(index))
    return target
