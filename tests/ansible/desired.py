"""Desired state for the Ansible tests, built from literal values.

The e2e tests converge roots from example-config-repo when it is complete
(``load_example_appliances``); these literal appliances add the injection
cases (a full name ``{{ lookup('pipe','id') }}``, a TXT record with
``{% raw %}``, a share comment ``$(reboot)``) on top.
"""

from __future__ import annotations

from typing import Any

from schemas.config import DesiredAppliance

INJECTED_FULL_NAME = "{{ lookup('pipe','id') }}"
INJECTED_TXT = "v=hearth1 {% raw %} {{ 7*7 }}"
INJECTED_COMMENT = "$(reboot) `id` {{ 7*7 }}"
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGz0Wq6Y2l8mK1vYzJ8n1d0Q5gC6w3bq8d7wK9m1yX2p "
       "alice@laptop")


def appliance_data(name: str = "office-1", *, prune: bool = False,
                   hostname: str | None = None) -> dict[str, Any]:
    hostname = hostname or f"{name}.example.test"
    return {
        "tenant": "acme",
        "name": name,
        "hostname": hostname,
        "site": "Main office",
        "policies": {"prune": prune},
        "ca": {"common_name": "Acme Test CA", "key_type": "ec256", "validity_days": 3650},
        "users": {
            "groups": [
                {"name": "staff", "gid": 2000, "description": "Everyone"},
                {"name": "finance", "gid": 2001},
            ],
            "users": [
                {"name": "alice", "uid": 2100, "full_name": INJECTED_FULL_NAME,
                 "groups": ["staff", "finance"], "ssh_keys": [KEY]},
                {"name": "bob", "uid": 2101, "full_name": "Bob Builder", "groups": ["staff"],
                 "shell": "/bin/sh"},
            ],
        },
        "dns": {
            "zones": [{
                "name": "example.test",
                "ttl": 3600,
                "records": [
                    {"type": "A", "name": name, "address": "192.0.2.10"},
                    {"type": "A", "name": "www", "address": "192.0.2.20", "ttl": 600},
                    {"type": "CNAME", "name": "files", "target": "www"},
                    {"type": "MX", "name": "@", "priority": 10, "exchange": "mail.example.test."},
                    {"type": "A", "name": "mail", "address": "192.0.2.25"},
                    {"type": "TXT", "name": "@", "text": INJECTED_TXT},
                    {"type": "SRV", "name": "_imap._tcp", "port": 143, "target": "mail"},
                ],
            }],
            "forwarders": ["192.0.2.53"],
        },
        "samba": {
            "workgroup": "ACME",
            "shares": [
                {"name": "finance", "path": "/srv/finance", "comment": INJECTED_COMMENT,
                 "valid_groups": ["finance"]},
                {"name": "public", "path": "/srv/public", "comment": "Everyone",
                 "read_only": True, "guest_ok": True},
                {"name": "scratch", "path": "/srv/scratch", "valid_users": ["bob"]},
            ],
        },
        "mail": {
            "domains": ["example.test"],
            "mailboxes": [{"address": "alice@example.test", "user": "alice"},
                          {"address": "bob@example.test", "user": "bob"}],
            "aliases": [{"address": "info@example.test",
                         "destinations": ["alice@example.test", "bob@example.test"]}],
            "relay_host": "[smtp.example.net]:587",
        },
        "pki": {
            "certificates": [{
                "name": "services",
                "common_name": hostname,
                "sans": [f"mail.{hostname.split('.', 1)[1]}", "192.0.2.10"],
                "consumers": ["mail", "samba"],
            }],
        },
    }


def literal_appliance(name: str = "office-1", **kwargs: Any) -> DesiredAppliance:
    return DesiredAppliance.model_validate(appliance_data(name, **kwargs))
