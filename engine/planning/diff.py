"""Compare one domain's canonical desired and observed forms and say what must change.

``diff_domain`` is the planner's inner step; ``build_plan`` (``plan.py``) runs it
per domain. The rules, in the order they apply:

0. The agent's probe for the domain failed (``observed.known`` is False): no
   items and no extras. There is no evidence either way, so nothing is claimed
   missing, nothing extra and nothing pruned; the next good heartbeat plans it.
1. Same canonical content, nothing to renew, no absent object present: no
   items (the fast path: one C-level dict comparison).
2. The domain's service is not running on the box: an ``add`` at the domain
   path ``()``, reason ``not running``; every desired object is then missing.
3. Each domain-wide setting that differs: ``modify`` at ``(setting,)``.
4. A desired object the box lacks: ``add`` (reason ``missing``) with the
   canonical object as ``after``. One it has with other values: a ``modify``
   per differing field (reason ``differs``). A certificate whose ``not_after``
   is inside ``renew_before``: ``modify`` of ``not_after`` (reason ``renewal
   due``).
5. An object the YAML marks absent (``state: absent``) that is present:
   ``remove``, reason ``absent``, whatever the prune policy.
6. A record, on the box, of a zone Hearth renders that the YAML does not list:
   ``remove``, reason ``not in zone``, whatever the prune policy (the zone file
   is written whole from the desired records; the plan says what the run does).
7. Any other observed object not desired: a ``remove`` (reason ``pruned``)
   only when it is in the inventory and ``prune`` is on; otherwise an extra,
   ``managed`` when the inventory holds it. Records of a zone that is itself
   removed or extra are covered by the zone's item and not listed.

Pure: values in, values out; ``now`` is a parameter.
"""

from __future__ import annotations

from datetime import datetime

from engine.planning.normalize import (
    FIELDS,
    CanonicalDomain,
    as_json,
    json_value,
    kind_of,
    renewal_due,
)
from schemas.plan import DiffItem, Domain, ObjectKey


def _needs_renewal(desired: CanonicalDomain, observed: CanonicalDomain, now: datetime) -> bool:
    return any(
        key in observed.objects and renewal_due(observed.deadlines.get(key), window, now=now)
        for key, window in desired.deadlines.items()
    )


def diff_domain(
    domain: Domain,
    desired: CanonicalDomain,
    observed: CanonicalDomain,
    *,
    managed: frozenset[ObjectKey],
    prune: bool,
    now: datetime,
) -> tuple[list[DiffItem], list[DiffItem]]:
    """``(items, extras)`` for one domain; see the module docstring for the rules."""
    if not observed.known:
        return [], []
    absent_present = [key for key in desired.absent if key in observed.objects]
    if (
        desired.same_content(observed)
        and not absent_present
        and not (desired.deadlines and _needs_renewal(desired, observed, now))
    ):
        return [], []

    items: list[DiffItem] = []
    extras: list[DiffItem] = []
    if not observed.running:
        items.append(DiffItem(domain=domain, operation="add", path=(), reason="not running"))

    for name, want in desired.settings.items():
        have = observed.settings.get(name)
        if want != have:
            items.append(DiffItem(domain=domain, operation="modify", path=(name,),
                                  before=json_value(have), after=json_value(want),
                                  reason="differs"))

    for key, want_values in desired.objects.items():
        have_values = observed.objects.get(key)
        if have_values is None:
            have_values = observed.implied.get(key)
        if have_values is None:
            items.append(DiffItem(domain=domain, operation="add", path=key,
                                  after=as_json(key, want_values), reason="missing"))
            continue
        if want_values != have_values:
            for name, want, have in zip(FIELDS[kind_of(key)], want_values, have_values,
                                        strict=True):
                if want != have:
                    items.append(DiffItem(domain=domain, operation="modify", path=(*key, name),
                                          before=json_value(have), after=json_value(want),
                                          reason="differs"))
        window = desired.deadlines.get(key)
        not_after = observed.deadlines.get(key)
        if window is not None and renewal_due(not_after, window, now=now):
            items.append(DiffItem(domain=domain, operation="modify", path=(*key, "not_after"),
                                  before=not_after.isoformat(), after=None,
                                  reason="renewal due"))

    for key in absent_present:
        items.append(DiffItem(domain=domain, operation="remove", path=key,
                              before=as_json(key, observed.objects[key]), reason="absent"))

    for key, have_values in observed.objects.items():
        if key in desired.objects or key in desired.absent:
            continue
        if len(key) > 2 and key[:2] not in desired.objects:
            continue  # a record of a zone that is itself removed or extra
        is_managed = key in managed
        before = as_json(key, have_values)
        if len(key) > 2:
            # A record of a zone Hearth renders: the zone file is written whole from the
            # desired records, so the run removes it whatever the prune policy.
            items.append(DiffItem(domain=domain, operation="remove", path=key, before=before,
                                  reason="not in zone"))
        elif is_managed and prune:
            items.append(DiffItem(domain=domain, operation="remove", path=key, before=before,
                                  reason="pruned"))
        else:
            extras.append(DiffItem(domain=domain, operation="remove", path=key, before=before,
                                   reason="extra", managed=is_managed))
    return items, extras

