"""The address Hearth's control plane connects to for an appliance (its management address).

Ansible reaches an appliance at the address recorded when the appliance was
registered, never at a value from the tenant's repository: a tenant's YAML
``hostname`` is the name the box gives itself, and a tenant could otherwise aim
the control plane's login at any host, another tenant's appliance included
(docs/architecture.md, "Reaching appliances"). The address is an IPv4 or IPv6
address or a DNS name; it can never start with ``-`` (it ends up as an ``ssh``
argument) and holds nothing but the characters of those forms.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field

_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def check_management_address(value: str) -> str:
    """``value`` in canonical form (IP addresses compressed, names lower case), or ValueError."""
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        pass
    if not _DNS_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is neither an IP address nor a DNS name")
    return value.lower()


ManagementAddress = Annotated[str, Field(min_length=1, max_length=253),
                              AfterValidator(check_management_address)]
