"""Dynamic inventory: a tenant's appliances, as Hearth's API lists them.

``inventory/appliances.yml`` configures it. It asks
``GET {api_url}/api/v1/tenants/{tenant}/appliances`` with a bearer token read
from an environment variable (never from the file), and adds one host per
appliance, named by appliance name (the name ``hearth.appliances`` is keyed
by), reached at its registered management address (``address``, recorded at
registration, never a value from the tenant's repository) as the unprivileged
management user with ``become``. Appliances without an address are skipped
with a warning. The engine does not use this for roots on the control
machine: it writes a static inventory per run (chroot connection).
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
name: hearth_appliances
short_description: Appliances of a Hearth tenant
description: Lists a tenant's appliances from Hearth's REST API.
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: [hearth_appliances]
  api_url:
    description: Base URL of Hearth's API.
    env: [{name: HEARTH_API_URL}]
    default: http://127.0.0.1:8000
  tenant:
    description: Tenant name.
    env: [{name: HEARTH_TENANT}]
    required: true
  token_env:
    description: Name of the environment variable holding the API token.
    default: HEARTH_API_TOKEN
  ssh_user:
    description: Management user Ansible logs in as (it becomes root with sudo).
    default: hearth
  timeout:
    description: HTTP timeout in seconds.
    type: int
    default: 15
"""

EXAMPLES = r"""
# inventory/appliances.yml; the token is read from $HEARTH_API_TOKEN, never from the file.
plugin: hearth_appliances
api_url: https://hearth.example
tenant: brightsmile
token_env: HEARTH_API_TOKEN
ssh_user: hearth
"""


class InventoryModule(BaseInventoryPlugin):
    NAME = "hearth_appliances"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("appliances.yml", "appliances.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        api_url = self.get_option("api_url").rstrip("/")
        tenant = self.get_option("tenant")
        token = os.environ.get(self.get_option("token_env"), "")
        if not token:
            raise AnsibleParserError(f"set {self.get_option('token_env')} to a Hearth API token")
        if urllib.parse.urlsplit(api_url).scheme not in {"http", "https"}:
            raise AnsibleParserError(f"api_url must be http(s): {api_url}")
        url = f"{api_url}/api/v1/tenants/{urllib.parse.quote(tenant, safe='')}/appliances"
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.get_option("timeout")) as resp:  # noqa: S310
                items = json.loads(resp.read())
        except Exception as exc:
            raise AnsibleParserError(f"cannot list appliances from {url}: {exc}") from exc
        if isinstance(items, dict):
            items = items.get("items", [])
        group = f"tenant_{tenant.replace('-', '_')}"
        self.inventory.add_group(group)
        for item in items:
            name, address = item.get("name"), item.get("address")
            if not name:
                continue
            if not address:
                self.display.warning(f"appliance {name} has no registered address; skipped")
                continue
            self.inventory.add_host(name, group=group)
            self.inventory.set_variable(name, "ansible_host", address)
            self.inventory.set_variable(name, "ansible_user", self.get_option("ssh_user"))
            self.inventory.set_variable(name, "ansible_become", True)
            self.inventory.set_variable(name, "hearth_appliance_id", str(item.get("id", "")))
