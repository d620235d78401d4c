"""Filters of the pki role: subject alternative names in one canonical form.

Why: the desired names arrive as typed in the tenant's YAML (``IP:2001:DB8::0:1``)
while ``community.crypto.x509_certificate_info`` reads them back from the
certificate in Python's canonical form (``IP:2001:db8::1``). Compared as
strings they always differ, and the certificate was re-signed on every run.
Both sides go through ``hearth_canonical_sans`` before they are compared.

Contract: a list of ``DNS:<name>`` / ``IP:<address>`` strings in, the same
entries out with addresses compressed and lower-cased (``ipaddress``) and DNS
names lower-cased (DNS names compare case-insensitively); other entries are
returned unchanged. The result is sorted and without duplicates, so two lists
naming the same set compare equal.
"""

from __future__ import annotations

import ipaddress


def canonical_san(entry):
    kind, sep, value = str(entry).partition(":")
    if not sep:
        return str(entry)
    if kind.upper() in {"IP", "IP ADDRESS"}:
        try:
            return f"IP:{ipaddress.ip_address(value.strip())}"
        except ValueError:
            return str(entry)
    if kind.upper() == "DNS":
        return f"DNS:{value.strip().lower()}"
    return str(entry)


def canonical_sans(entries):
    return sorted({canonical_san(entry) for entry in entries or []})


class FilterModule:
    def filters(self):
        return {"hearth_canonical_sans": canonical_sans}
